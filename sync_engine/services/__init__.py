"""Use cases the API and the jobs call. Each takes the ``Runtime`` first and the
sub-account it is scoped to; resolvers never hold business rules."""
