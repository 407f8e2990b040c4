"""What our code relies on in Strawberry beyond its documented API (pinned in pyproject.toml).

The GraphQL view (api/graphql_http.py) overrides hooks of Strawberry's ASGI view and its
graphql-transport-ws handler (api/ws_protocol.py); the executor, the document caches and
the response cache read Strawberry's internal markers and execution-context fields. Each
test drives one reliance through our own code; a failure names the module to revisit
after upgrading Strawberry.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import strawberry
from graphql.validation import ValidationRule
from httpx_ws import WebSocketDisconnect, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport
from strawberry.asgi import GraphQL
from strawberry.extensions import AddValidationRules, MaxTokensLimiter
from strawberry.file_uploads import Upload

from api.auth import AuthenticationFailed
from api.document_cache import DocumentCaches
from api.executor import _plain_reader
from api.graphql_http import GRAPHQL_RESPONSE_JSON, GraphQLView
from api.introspection import IntrospectionSetting
from api.response_cache import CachedSharedReads, cache_key
from api.schema import EmailSyncSchema
from api.subscriptions import _selected_loads

DEADLINE = 5.0


@strawberry.type
class Probe:
    """Carries which of the event's loaded fields (api/subscriptions.py) were selected."""

    loads: list[str]
    thread: str | None = None
    message: str | None = None
    email_connection: str | None = None


@strawberry.type
class Query:
    greeting: str = "hello"

    @strawberry.field
    def hello(self) -> str:
        return "world"

    @strawberry.field
    def echo(self, text: str) -> str:
        return text

    @strawberry.field
    def probe(self, info: strawberry.Info) -> Probe:
        return Probe(loads=sorted(_selected_loads(info)))  # type: ignore[arg-type]


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def upload_size(self, file: Upload) -> int:
        return len(await file.read())  # type: ignore[attr-defined]


tiny = strawberry.Schema(query=Query, mutation=Mutation)


# ---- api/graphql_http.py and api/ws_protocol.py: the view's and the handler's hooks

VIEW_HOOKS = ["parse_http_body", "execute_single", "parse_multipart", "render_graphql_ide", "get_context",
              "get_sub_response", "process_result", "create_response", "on_ws_connect"]


@pytest.mark.parametrize("name", VIEW_HOOKS)
def test_view_hooks_keep_their_names_and_parameters(name: str) -> None:
    """Strawberry calls several of these with keyword arguments: a renamed parameter breaks
    the call, a renamed hook silently bypasses our override."""
    theirs = getattr(GraphQL, name, None)
    assert theirs is not None, f"Strawberry's GraphQL view has no `{name}` any more: api/graphql_http.py overrides it"
    ours = inspect.signature(getattr(GraphQLView, name))
    assert list(ours.parameters) == list(inspect.signature(theirs).parameters), (
        f"GraphQL.{name}{inspect.signature(theirs)} changed: update GraphQLView.{name} in api/graphql_http.py"
    )


@pytest.mark.parametrize("name", ["request_adapter_class", "graphql_transport_ws_handler_class"])
def test_view_class_attributes_are_still_read(name: str) -> None:
    assert hasattr(GraphQL, name), f"Strawberry's GraphQL view no longer reads `{name}`: api/graphql_http.py sets it"


class Credentials:
    """The view's authenticator: anonymous over HTTP; over a WebSocket only `Bearer good`."""

    def __init__(self) -> None:
        self.sessions = SimpleNamespace(admit=lambda websocket, viewer: True)

    async def from_headers(self, headers: Any) -> None:
        return None

    async def from_authorization(self, value: str) -> Any:
        if value != "Bearer good":
            raise AuthenticationFailed("bad credentials")
        return SimpleNamespace(sub_account_id=None)


def _view() -> GraphQLView:
    runtime = SimpleNamespace(settings=SimpleNamespace(max_request_bytes=1 << 20, introspection=False))
    return GraphQLView(runtime, Credentials(), schema=tiny, graphql_ide="graphiql",  # type: ignore[arg-type]
                       subscription_protocols=("graphql-transport-ws",))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # A hook that raises is a 500 here, so the assertions below say which module to revisit.
    transport = httpx.ASGITransport(app=_view(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_a_request_goes_through_our_adapter_and_sub_response(http: httpx.AsyncClient) -> None:
    response = await http.post("/", json={"query": "{ hello }"}, headers={"accept": GRAPHQL_RESPONSE_JSON})
    assert response.status_code == 200 and response.json() == {"data": {"hello": "world"}}
    assert response.headers["content-type"] == GRAPHQL_RESPONSE_JSON, (
        "Strawberry no longer hands create_response the object get_sub_response made, which carries the "
        "negotiated media type (api/graphql_http.py)"
    )


async def test_a_request_error_has_no_data_and_is_a_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/", json={"query": "{ hello "}, headers={"accept": GRAPHQL_RESPONSE_JSON})
    assert response.status_code == 400 and "data" not in response.json() and response.json()["errors"], (
        "GraphQLView.process_result/create_response (api/graphql_http.py) are no longer called by Strawberry"
    )


async def test_a_mutation_over_get_is_a_405(http: httpx.AsyncClient) -> None:
    response = await http.get("/", params={"query": "mutation { __typename }"})
    assert (response.status_code, response.headers.get("allow")) == (405, "POST"), (
        "GraphQLView.execute_single (api/graphql_http.py) is no longer called by Strawberry, or its "
        f"InvalidOperationTypeError lost `operation_type`: {response.status_code} {response.text}"
    )


async def test_the_graphiql_page_is_ours(http: httpx.AsyncClient) -> None:
    response = await http.get("/", headers={"accept": "text/html"})
    assert response.status_code == 200 and "content-security-policy" in response.headers, (
        "GraphQLView.render_graphql_ide (api/graphql_http.py) is no longer called by Strawberry"
    )


async def test_uploads_reuse_the_parsed_form_and_a_bad_map_is_a_400(http: httpx.AsyncClient) -> None:
    """api/graphql_http.py parses the multipart body itself, within bounds; Strawberry's
    parse_multipart must then read that form (through the request adapter) and not the
    body again, and its errors on a map that does not fit are ours to answer."""
    operations = json.dumps({"query": "mutation ($file: Upload!) { uploadSize(file: $file) }",
                             "variables": {"file": None}})
    headers = {"GraphQL-Require-Preflight": "1"}
    files = {"0": ("a.txt", b"hello")}
    fits = await http.post("/", data={"operations": operations, "map": json.dumps({"0": ["variables.file"]})},
                           files=files, headers=headers)
    assert fits.json() == {"data": {"uploadSize": 5}}, f"multipart uploads through api/graphql_http.py: {fits.text}"
    misfit = await http.post("/", data={"operations": operations, "map": json.dumps({"0": ["variables.file.x"]})},
                             files=files, headers=headers)
    assert misfit.status_code == 400 and "does not fit" in misfit.text, (
        "GraphQLView.parse_multipart (api/graphql_http.py) no longer sees the errors of Strawberry's map "
        f"handling: {misfit.status_code} {misfit.text}"
    )


async def _closed(init: dict[str, Any], then: object | None = None) -> tuple[int, str] | None:
    """Send ``init`` (and ``then``); the close code and reason, or None if acknowledged and open."""
    async with (
        httpx.AsyncClient(transport=ASGIWebSocketTransport(app=_view()), base_url="http://api") as client,
        aconnect_ws("http://api/", client, subprotocols=["graphql-transport-ws"]) as ws,
    ):
        try:
            await ws.send_json(init)
            if (await ws.receive_json(timeout=DEADLINE))["type"] != "connection_ack":
                return None
            if then is None:
                return None
            await ws.send_json(then)
            await ws.receive_json(timeout=DEADLINE)
        except WebSocketDisconnect as closed:
            return closed.code, closed.reason or ""
    return None


async def test_on_ws_connect_sees_the_connection_params() -> None:
    accepted = await _closed({"type": "connection_init", "payload": {"authorization": "Bearer good"}})
    assert accepted is None, (
        "Strawberry no longer puts the connection_init payload in `context.connection_params` for "
        f"GraphQLView.on_ws_connect (api/graphql_http.py): {accepted}"
    )
    assert await _closed({"type": "connection_init", "payload": {"authorization": "Bearer bad"}}) == (
        4403, "Forbidden"), (
        "GraphQLView.on_ws_connect (api/graphql_http.py) is no longer called with the connection_init payload "
        "in `context.connection_params`, or ConnectionRejectionError no longer closes with 4403"
    )


async def test_every_message_is_checked_before_strawberry_handles_it() -> None:
    closed = await _closed({"type": "connection_init", "payload": {"authorization": "Bearer good"}},
                           then={"type": "subscribe", "id": 1, "payload": {"query": "{ hello }"}})
    assert closed == (4400, "`id` must be a non-empty string"), (
        "CheckedTransportWSHandler.handle_message/handle_invalid_message (api/ws_protocol.py) no longer "
        f"override Strawberry's graphql-transport-ws handler: {closed}"
    )


# ---- api/executor.py: Strawberry's markers of a plain field


def test_plain_fields_are_recognised_by_strawberrys_markers() -> None:
    """``resolve._is_default``, ``extensions['strawberry-definition']`` with ``is_basic_field``,
    ``default_resolver`` and ``python_name``, and no ``is_type_of`` on a type definition."""
    fields = tiny._schema.type_map["Query"].fields  # type: ignore[union-attr]
    reader = _plain_reader(fields["greeting"])
    assert reader is not None, (
        "api/executor.py (_plain_reader) no longer recognises a Strawberry field without a resolver: the lean "
        "executor never takes its shortcuts"
    )
    assert reader[0](Query(greeting="hi"), reader[1]) == "hi"
    assert _plain_reader(fields["hello"]) is None and _plain_reader(fields["echo"]) is None, (
        "api/executor.py (_plain_reader) takes a field with a resolver for a plain one"
    )
    definition = tiny._schema.type_map["Probe"].extensions["strawberry-definition"]  # type: ignore[union-attr]
    assert definition.is_type_of is None, "api/executor.py skips the whole-object shortcut for types with is_type_of"


# ---- api/document_cache.py and api/introspection.py: execution-context fields


class CountValidations(ValidationRule):
    runs = 0

    def enter_document(self, *_args: object) -> None:
        type(self).runs += 1


def test_strawberry_uses_the_cached_document_and_validation() -> None:
    """The cache sets ``graphql_document`` in on_parse and ``pre_execution_errors`` in
    on_validate; Strawberry must then skip its own parse and validation, take the token
    limit from ``parse_options`` (set in on_operation) and validate with the tuple of
    ``validation_rules`` (api/introspection.py extends it per request)."""
    caches = DocumentCaches(max_entries=8, max_bytes=1 << 20, max_document_chars=10_000)
    schema = strawberry.Schema(query=Query, extensions=[
        lambda: MaxTokensLimiter(max_token_count=20), lambda: AddValidationRules([CountValidations]),
        IntrospectionSetting, caches.parser_extension, caches.validation_extension,
    ])
    context = SimpleNamespace(runtime=SimpleNamespace(settings=SimpleNamespace(introspection=False)))
    CountValidations.runs = 0
    for _ in range(2):
        result = schema.execute_sync("{ hello }", context_value=context)
        assert result.errors is None, f"api/document_cache.py no longer works with Strawberry: {result.errors}"
    assert len(caches.parsed) == 1 and CountValidations.runs == 1, (
        "Strawberry parses or validates again what api/document_cache.py cached (graphql_document / "
        f"pre_execution_errors no longer honoured): validated {CountValidations.runs} times"
    )
    refused = schema.execute_sync("{ __schema { queryType { name } } }", context_value=context)
    assert refused.errors and "introspection" in refused.errors[0].message, (
        "api/introspection.py: validation rules added in on_operation are no longer applied"
    )
    too_long = schema.execute_sync("{ " + "hello " * 30 + "}", context_value=context)
    assert too_long.errors and "tokens" in too_long.errors[0].message, (
        "api/document_cache.py parses with `parse_options` before Strawberry does: MaxTokensLimiter no longer "
        "puts the limit there, and cached parsing would bypass it"
    )


# ---- api/response_cache.py: the operation name as the client sent it


class RecordingCache:
    def __init__(self) -> None:
        self.keys: list[Any] = []

    def generation(self, sub_account_id: uuid.UUID) -> int:
        return 0

    async def after_flight(self, sub_account_id: uuid.UUID, key: Any) -> Any:
        return None

    def take_off(self, sub_account_id: uuid.UUID, key: Any) -> None:
        return None

    def land(self, sub_account_id: uuid.UUID, key: Any, flight: None) -> None:
        return None

    def put(self, sub_account_id: uuid.UUID, key: Any, value: Any, generation: int) -> None:
        self.keys.append(key)


async def test_the_response_cache_keys_on_the_operation_name_as_sent() -> None:
    """The HTTP view looks a body up by the raw request's operation name; the extension that
    fills the cache reads it from Strawberry's private ``_provided_operation_name`` (the
    public ``operation_name`` infers one from the document, so the keys would differ)."""
    schema = strawberry.Schema(query=Query, extensions=[CachedSharedReads])
    query = "query Named { __typename }"
    for sent in (None, "Named"):
        cache = RecordingCache()
        context = SimpleNamespace(response_cache=cache, viewer=SimpleNamespace(sub_account_id=uuid.uuid4()))
        result = await schema.execute(query, context_value=context, operation_name=sent)
        assert result.errors is None
        assert cache.keys == [cache_key(query, sent, None)], (
            "api/response_cache.py (CachedSharedReads) reads ExecutionContext._provided_operation_name, which "
            f"no longer holds the operation name as sent: stored {cache.keys}"
        )


# ---- api/schema.py: process_errors; api/subscriptions.py: selected fields


@strawberry.input
class Login:
    name: str
    password: str


@strawberry.type
class LoginQuery:
    @strawberry.field
    def login(self, credentials: Login) -> str:
        return credentials.name


def test_process_errors_is_still_called_on_request_errors() -> None:
    schema = EmailSyncSchema(query=LoginQuery)
    result = schema.execute_sync("query ($c: Login!) { login(credentials: $c) }",
                                 variable_values={"c": {"password": "hunter2"}})
    assert result.errors and "hunter2" not in result.errors[0].message, (
        "EmailSyncSchema.process_errors (api/schema.py) is no longer called for a variable that does not "
        f"coerce, and the value (secrets included) reaches the client: {result.errors}"
    )


def test_selected_fields_name_fields_as_the_schema_does() -> None:
    """api/subscriptions.py preloads what a subscription selects, by GraphQL field name,
    through fragments too (``SelectedField`` and fragments' ``selections``)."""
    result = tiny.execute_sync(
        "{ probe { loads thread ...F ... on Probe { message } } } fragment F on Probe { emailConnection }"
    )
    assert result.errors is None
    assert result.data == {"probe": {"loads": ["emailConnection", "message", "thread"], "thread": None,
                                     "message": None, "emailConnection": None}}, (
        f"Strawberry's info.selected_fields changed shape: revisit _selected_loads in api/subscriptions.py: {result.data}"
    )



class Executions:
    count = 0


@strawberry.type
class CountingQuery:
    @strawberry.field
    def threads(self) -> int:  # a shared root field's name: the extension considers it
        Executions.count += 1
        return Executions.count


class SharedResultCache(RecordingCache):
    def __init__(self, shared: Any) -> None:
        super().__init__()
        self.shared = shared

    async def after_flight(self, sub_account_id: uuid.UUID, key: Any) -> Any:
        return self.shared


async def test_a_result_set_by_an_extension_is_served_without_executing() -> None:
    """Single flight (api/response_cache.py): a waiter sets ``execution_context.result`` to
    the result another request computed, in ``on_execute`` before yielding; Strawberry must
    then execute nothing and answer with that result."""
    schema = strawberry.Schema(query=CountingQuery, extensions=[CachedSharedReads])
    viewer = SimpleNamespace(sub_account_id=uuid.uuid4())
    computed = await schema.execute("{ threads }", context_value=SimpleNamespace(response_cache=None, viewer=viewer))
    assert computed.data == {"threads": 1}
    context = SimpleNamespace(response_cache=SharedResultCache(computed), viewer=viewer)
    served = await schema.execute("{ threads }", context_value=context)
    assert served.data == {"threads": 1} and Executions.count == 1, (
        "api/response_cache.py: Strawberry executed the operation although on_execute set the result"
    )
