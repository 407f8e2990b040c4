"""Developer tooling: the ``emailsync dev`` stack and its demo data."""
