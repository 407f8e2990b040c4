"""The GraphQL endpoint: Strawberry's ASGI view, completed to the GraphQL-over-HTTP spec.

What Strawberry does not do, and this adds:
- content negotiation: ``Accept: application/graphql-response+json`` gets that media
  type; ``application/json``, ``*/*`` or no Accept get ``application/json``; anything
  else is 406;
- with ``application/graphql-response+json``, a request error (parse, validation,
  variable coercion: no ``data``) is a 400 and the body has no ``data`` entry; with
  ``application/json`` every well-formed request is a 200, as the spec asks;
- a mutation over GET is 405 (with ``Allow: POST``), an unsupported body type is 415,
  and transport errors carry a GraphQL-shaped JSON body;
- bad credentials are a 401 with ``WWW-Authenticate``, before anything executes;
- file uploads per the GraphQL multipart request spec (``multipart/form-data``, for
  ``AttachmentInput.file``), bounded: a body larger than 20 attachments of 3 MB is a
  413, more file parts than attachments a 400. A multipart request must carry a
  preflight header (``GraphQL-Require-Preflight``, or Apollo's
  ``Apollo-Require-Preflight`` / ``X-Apollo-Operation-Name``): a browser cannot add one
  to a cross-site form post without a CORS preflight, so no other site can make a
  user's browser upload to us (Strawberry leaves that protection to the integration).
WebSockets (graphql-transport-ws) authenticate in ``connection_init`` (payload
``{"authorization": "Bearer ..."}``) or, failing that, from the handshake headers.
"""

from __future__ import annotations

import json
from typing import Any

from cross_web import HTTPException, StarletteRequestAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.async_base_view import AsyncHTTPRequestAdapter
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from api import http_request
from api.auth import AuthenticationFailed, Authenticator
from api.context import Context, build_context
from api.dependencies import ApiDependencies
from api.graphiql import graphiql_page
from api.http_request import BadRequest, GraphQLRequest
from api.inputs.attachments import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS
from api.response_cache import ResponseCache, cache_key
from api.ws_protocol import CheckedTransportWSHandler

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"
MULTIPART_FORM_DATA = "multipart/form-data"
PREFLIGHT_HEADERS = ("graphql-require-preflight", "apollo-require-preflight", "x-apollo-operation-name")
# The non-file parts (``operations``, ``map``) of a multipart request, each.
MAX_MULTIPART_FIELD_BYTES = 1024 * 1024
# Every attachment at its largest, the two fields, and room for the parts' headers.
MAX_MULTIPART_BYTES = MAX_ATTACHMENTS * MAX_ATTACHMENT_BYTES + 2 * MAX_MULTIPART_FIELD_BYTES + 64 * 1024


def negotiate_media_type(accept: str | None) -> str | None:
    """The response media type for an Accept header, or None (406)."""
    if not accept:
        return APPLICATION_JSON
    best_rank: tuple[float, int, int] | None = None
    chosen = None
    for position, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if q <= 0:
            continue
        if media == GRAPHQL_RESPONSE_JSON:
            candidate = GRAPHQL_RESPONSE_JSON
        elif media in (APPLICATION_JSON, "application/*", "*/*"):
            candidate = APPLICATION_JSON
        else:
            continue
        # Higher q wins; on a tie the spec's own media type, then the client's order.
        rank = (q, 1 if candidate == GRAPHQL_RESPONSE_JSON else 0, -position)
        if best_rank is None or rank > best_rank:
            best_rank, chosen = rank, candidate
    return chosen


def _is_request_error(result: ExecutionResult) -> bool:
    """No execution happened: parse/validation errors, or variables that did not coerce
    (graphql-core reports those without a path and with no data)."""
    if isinstance(result, PreExecutionError):
        return True
    return result.data is None and bool(result.errors) and all(e.path is None for e in result.errors or ())


def _error_body(message: str, code: str | None = None) -> bytes:
    error: dict[str, Any] = {"message": message}
    if code:
        error["extensions"] = {"code": code}
    return json.dumps({"errors": [error]}, separators=(",", ":")).encode()


def _body_media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _is_multipart(request: Request) -> bool:
    return request.method == "POST" and _body_media_type(request) == MULTIPART_FORM_DATA


class _BodyTooLarge(Exception):
    """Raised by ``_BoundedReceive`` into whatever is reading the body."""


class _BoundedReceive:
    """An ASGI ``receive`` that stops a request body past ``limit`` bytes, whatever its
    Content-Length said (a chunked body has none)."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._size = 0

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._size += len(message.get("body", b""))
            if self._size > self._limit:
                raise _BodyTooLarge()
        return message


def _check_multipart_headers(request: Request) -> None:
    """Refuse, before reading anything, a multipart request without a preflight header
    (a declared size past the limit was refused in ``__call__`` already)."""
    if not any(request.headers.get(name, "").strip() for name in PREFLIGHT_HEADERS):
        raise HTTPException(400, "a multipart request needs a GraphQL-Require-Preflight header (CSRF protection)")


async def _parse_multipart_form(request: Request) -> None:
    """Parse the parts now, within bounds; Strawberry's own parsing then reuses the parsed
    form (Starlette keeps it on the request). Files go to temporary files, not memory."""
    try:
        await request.form(max_files=MAX_ATTACHMENTS, max_fields=2, max_part_size=MAX_MULTIPART_FIELD_BYTES)
    except _BodyTooLarge:
        raise HTTPException(413, "request body too large") from None
    except MultiPartException as exc:
        raise HTTPException(400, f"invalid multipart body: {exc.message}") from None
    except StarletteHTTPException as exc:  # the same, as Starlette reports it inside an app
        raise HTTPException(400, f"invalid multipart body: {exc.detail}") from None


class _OperationNotAllowed(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers

    @classmethod
    def of(cls, operation: OperationType, method: str) -> _OperationNotAllowed:
        if operation is OperationType.SUBSCRIPTION:
            return cls(400, "subscriptions are served over a WebSocket at /graphql (graphql-transport-ws), "
                       "not over HTTP", {})
        return cls(405, f"{operation.value}s are not allowed with {method}: use POST", {"Allow": "POST"})


async def _read_request(request: Request) -> GraphQLRequest | None:
    """The request's GraphQL parameters, read and type-checked once (``api.http_request``);
    None for the GraphiQL page (a browser's GET without a query)."""
    if request.method == "GET":
        if "query" not in request.query_params and "text/html" in request.headers.get("accept", ""):
            return None
        return http_request.from_query_params(request.query_params)
    if request.method != "POST":
        return None  # Strawberry answers 405
    if _body_media_type(request) != APPLICATION_JSON:
        raise BadRequest(415, "send the request as application/json (or multipart/form-data with files)")
    try:
        return http_request.from_json_body(await request.body())
    except _BodyTooLarge:
        raise BadRequest(413, "request body too large") from None


class _RequestAdapter(StarletteRequestAdapter):
    @property
    def starlette_request(self) -> Request:
        return self._request


class GraphQLView(GraphQL[Context, None]):
    request_adapter_class = _RequestAdapter
    graphql_transport_ws_handler_class = CheckedTransportWSHandler

    def __init__(
        self, runtime: ApiDependencies, authenticator: Authenticator, response_cache: ResponseCache | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("multipart_uploads_enabled", True)
        super().__init__(**kwargs)
        self.runtime = runtime
        self.authenticator = authenticator
        self.response_cache = response_cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        multipart = _is_multipart(request)
        limit = MAX_MULTIPART_BYTES if multipart else self.runtime.settings.max_request_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refused before a byte is read
            response = self._error_response(413, "request body too large", APPLICATION_JSON)
            await response(scope, receive, send)
            return
        request = Request(scope, _BoundedReceive(receive, limit))
        media_type = negotiate_media_type(request.headers.get("accept"))
        wants_html = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        if media_type is None and not wants_html:
            response: Response = self._error_response(406, "no acceptable media type", APPLICATION_JSON)
            await response(scope, receive, send)
            return
        request.state.media_type = media_type or APPLICATION_JSON
        request.state.cache_ref = None
        try:
            response = await self._respond(request, multipart)
            await response(scope, receive, send)
        finally:
            if multipart:
                await request.close()  # the uploads' temporary files

    async def _respond(self, request: Request, multipart: bool) -> Response:
        try:
            if multipart:
                _check_multipart_headers(request)
                request.state.graphql = None  # Strawberry parses the parts (see ``parse_http_body``)
            else:
                request.state.graphql = await _read_request(request)
            request.state.viewer = await self.authenticator.from_headers(request.headers)
            if multipart:
                await _parse_multipart_form(request)
            body = self._cached_body(request)
            if body is not None:
                return Response(body, status_code=200, media_type=request.state.media_type)
            return await self.run(request)
        except BadRequest as exc:
            return self._error_response(exc.status, exc.message, request.state.media_type)
        except _OperationNotAllowed as exc:
            response = self._error_response(exc.status, exc.message, request.state.media_type)
            response.headers.update(exc.headers)
            return response
        except HTTPException as exc:
            return self._transport_error(request, exc)
        except AuthenticationFailed as exc:
            response = self._error_response(401, exc.reason, request.state.media_type, code="UNAUTHENTICATED")
            response.headers["WWW-Authenticate"] = 'Bearer realm="emailsync", ApiKey realm="emailsync"'
            return response

    def _cached_body(self, request: Request) -> bytes | None:
        """The fast path: a cached shared read answered from its encoded body, without
        parsing, validating or executing the document."""
        viewer, graphql = request.state.viewer, request.state.graphql
        if self.response_cache is None or graphql is None or viewer is None or viewer.sub_account_id is None:
            return None
        key = cache_key(graphql.query, graphql.operation_name, graphql.variables)
        request.state.cache_ref = (viewer.sub_account_id, key)
        return self.response_cache.get_body(viewer.sub_account_id, key)

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:  # type: ignore[override]
        """The request read once in ``_respond``; a multipart request's operations are
        parsed here by Strawberry and type-checked the same way."""
        graphql = request.starlette_request.state.graphql  # type: ignore[attr-defined]
        if graphql is None:
            parsed = await super().parse_http_body(request)
            if isinstance(parsed, list):
                raise BadRequest(400, "batches are not supported")
            graphql = http_request.from_mapping({"query": parsed.query, "variables": parsed.variables,
                                                 "operationName": parsed.operation_name,
                                                 "extensions": parsed.extensions})
        return GraphQLRequestData(query=graphql.query, variables=graphql.variables,
                                  operation_name=graphql.operation_name, extensions=graphql.extensions)

    async def execute_single(  # type: ignore[override]
        self, request: Request, request_adapter: AsyncHTTPRequestAdapter, sub_response: Response, context: Context,
        root_value: None, request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, less subscriptions (they need the WebSocket), with its exceptions
        mapped by type to the answers of the GraphQL-over-HTTP spec."""
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        try:
            return await self.schema.execute(
                request_data.query, root_value=root_value, variable_values=request_data.variables,
                context_value=context, operation_name=request_data.operation_name,
                allowed_operation_types=allowed, operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as exc:
            raise _OperationNotAllowed.of(exc.operation_type, request.method) from exc
        except CannotGetOperationTypeError as exc:
            raise BadRequest(400, exc.as_http_error_reason()) from exc
        except MissingQueryError as exc:
            raise BadRequest(400, "no GraphQL query found in the request") from exc

    async def parse_multipart(self, request: AsyncHTTPRequestAdapter) -> dict[str, str]:
        try:
            return await super().parse_multipart(request)
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            # Strawberry reports a missing file part itself; a ``map`` whose paths do not
            # fit ``operations`` (a list index that is not a number, a path through a
            # string...) would otherwise be a 500.
            raise HTTPException(400, "the multipart map does not fit the operations") from exc

    def _transport_error(self, request: Request, exc: HTTPException) -> Response:
        status, reason = exc.status_code, exc.reason
        headers = {"Allow": "GET, POST"} if status == 405 else {}
        response = self._error_response(status, reason, request.state.media_type)
        response.headers.update(headers)
        return response

    @staticmethod
    def _error_response(status: int, message: str, media_type: str, code: str | None = None) -> Response:
        return Response(_error_body(message, code), status_code=status, media_type=media_type)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with its assets served by this service, under a same-origin CSP:
        it works offline and no request leaves the machine (api/graphiql.py)."""
        return graphiql_page(request)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        if isinstance(request, WebSocket):
            return await build_context(self.runtime, self.authenticator, request, response)
        return await build_context(
            self.runtime, self.authenticator, request, response, self.response_cache, viewer=request.state.viewer
        )

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        # Carried to create_response, which is not given the request.
        sub_response.negotiated_media_type = request.state.media_type  # type: ignore[attr-defined]
        sub_response.cache_ref = request.state.cache_ref  # type: ignore[attr-defined]
        return sub_response

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        processed: GraphQLHTTPResponse = {}
        # A request error has no "data" entry at all (GraphQL-over-HTTP); create_response
        # turns that into a 400 for application/graphql-response+json.
        if not _is_request_error(result):
            processed["data"] = result.data
        if result.errors:
            processed["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            processed["extensions"] = result.extensions
        return processed

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        media_type = getattr(sub_response, "negotiated_media_type", APPLICATION_JSON)
        response.headers["content-type"] = media_type
        if isinstance(response_data, dict) and "data" not in response_data and media_type == GRAPHQL_RESPONSE_JSON:
            response.status_code = 400
        cache_ref = getattr(sub_response, "cache_ref", None)
        if (cache_ref is not None and self.response_cache is not None and isinstance(response_data, dict)
                and response.status_code == 200 and set(response_data) == {"data"}):
            self.response_cache.attach_body(cache_ref[0], cache_ref[1], response_data["data"], response.body)
        return response

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        params = context.connection_params or {}
        authorization = params.get("authorization") or params.get("Authorization")
        try:
            if isinstance(authorization, str) and authorization:
                context.viewer = await self.authenticator.from_authorization(authorization)
            else:
                context.viewer = await self.authenticator.from_headers(context.request.headers)
        except AuthenticationFailed as exc:
            raise ConnectionRejectionError() from exc
        if context.viewer is None:
            raise ConnectionRejectionError()
        # The session is closed (4403) when its token expires or its API key is
        # revoked; credentials that ended already are refused (api/ws_sessions.py).
        if not isinstance(context.request, WebSocket) or not self.authenticator.sessions.admit(
            context.request, context.viewer
        ):
            raise ConnectionRejectionError()
        return UNSET


__all__ = ["GraphQLView", "negotiate_media_type"]
