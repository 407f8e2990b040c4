"""GraphQL object types, one domain per module. Types are built from plain database
rows (``from_row`` functions), never from ORM objects."""
