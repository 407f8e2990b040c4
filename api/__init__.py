"""The edge: Starlette app, GraphQL schema, auth, webhooks and OAuth callbacks.

Resolvers validate input, call a service through the context's facades
(``info.context.services``, built by the composition root) or a read query
(``db.repositories``), and map the result; no business rule lives here. What the edge
needs from the process is ``dependencies.ApiDependencies``.
"""
