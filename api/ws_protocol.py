"""graphql-transport-ws messages checked like HTTP requests before Strawberry sees them.

Strawberry's handler trusts a message's shape once it is JSON: a `subscribe` whose
`query` is not a string, whose `variables` is a list, whose `id` is a number, or a
message that is not an object at all, fails somewhere inside it. Here every message
must be an object with a string `type`; a `subscribe` must carry a string `id` and a
payload that passes the same checks as an HTTP request (``api.http_request``, lone
surrogates and nesting depth included). Anything else closes the socket with 4400, as
the protocol asks for an invalid message.
"""

from __future__ import annotations

from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler

from api.http_request import BadRequest, from_mapping


def message_problem(message: Any) -> str | None:
    """Why ``message`` is not a well-formed graphql-transport-ws message, or None."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message must be a JSON object with a string `type`"
    if "id" in message and not (isinstance(message["id"], str) and message["id"]):
        return "`id` must be a non-empty string"
    if message["type"] == "subscribe":
        payload = message.get("payload")
        if "id" not in message or not isinstance(payload, dict):
            return "`subscribe` needs an `id` and a `payload` object"
        try:
            from_mapping(payload)
        except BadRequest as exc:
            return exc.message
    return None


class CheckedTransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    async def handle_message(self, message: Any) -> None:
        problem = message_problem(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)
