"""GraphQL input objects shared by several mutations."""
