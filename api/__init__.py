"""The edge: Starlette app, GraphQL schema, auth, webhooks and OAuth callbacks.

Resolvers validate input, call a service (``sync_engine.services``) or a read query
(``db.repositories``), and map the result; no business rule lives here.
"""
