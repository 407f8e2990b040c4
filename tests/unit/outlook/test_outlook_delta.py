"""Delta sync over the published delta pages: cursor progression, change kinds, resume."""

from __future__ import annotations

import copy
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sync_engine.domain import ChangeKind, CursorExpiredError, Folder, TokenSet
from sync_engine.providers.outlook.graph_client import GraphClient
from sync_engine.providers.outlook.sync import DeltaSync
from tests.support.sleeps import RecordingSleep

BASE = "https://graph.microsoft.com/v1.0"
SENT_DELTA = f"{BASE}/me/mailFolders('sent')/messages/delta?$deltatoken=SENT1"


def client_for(handler):
    return GraphClient(
        BASE,
        TokenSet("at", "rt", None),
        refresher=None,
        on_tokens_refreshed=None,
        transport=httpx.MockTransport(handler),
        sleep=RecordingSleep(),  # a retry would not really wait
    )


def empty_sent_page():
    return {"value": [], "@odata.deltaLink": SENT_DELTA}


async def collect(sync, cursor):
    return [page async for page in sync.pages(cursor)]


async def test_full_round_streams_pages_and_carries_the_cursor(sample):
    page1, page2, final = sample("graph_delta_page1.json"), sample("graph_delta_page2.json"), sample("graph_delta_final.json")
    requests = []

    def handler(request):
        requests.append(request)
        url = str(request.url)
        if "/mailFolders/inbox/messages/delta" in url:
            return httpx.Response(200, json=page1)
        if url == page1["@odata.nextLink"]:
            return httpx.Response(200, json=page2)
        if url == page2["@odata.nextLink"]:
            return httpx.Response(200, json=final)
        if "/mailFolders/sentitems/messages/delta" in url:
            return httpx.Response(200, json=empty_sent_page())
        raise AssertionError(url)

    pages = await collect(DeltaSync(client_for(handler), 250), None)

    # Sent Items come first (a BCC'd sent message creates the thread an inbox reply joins).
    assert "/mailFolders/sentitems/" in str(requests[0].url)
    first = requests[1]
    select = parse_qs(urlsplit(str(first.url)).query)["$select"][0].split(",")
    assert {"internetMessageHeaders", "body", "conversationId", "internetMessageId", "isRead"} <= set(select)
    assert first.headers["prefer"] == 'IdType="ImmutableId", odata.maxpagesize=250'
    # Links are followed as given (their query already encodes the $select).
    assert str(requests[2].url) == page1["@odata.nextLink"]

    assert [len(p.changes) for p in pages] == [0, 2, 2, 1]
    assert [p.complete for p in pages] == [False, False, False, True]
    assert pages[0].cursor["folders"]["sentitems"] == {"next": None, "delta": SENT_DELTA}
    assert pages[1].cursor["folders"]["inbox"] == {"next": page1["@odata.nextLink"], "delta": None}
    assert pages[2].cursor["folders"]["inbox"] == {"next": page2["@odata.nextLink"], "delta": None}
    assert pages[3].cursor["folders"]["inbox"] == {"next": None, "delta": final["@odata.deltaLink"]}
    assert pages[3].cursor["folders"]["sentitems"] == {"next": None, "delta": SENT_DELTA}
    # Each page's cursor is its own snapshot, not a shared dict mutated later.
    assert pages[0].cursor["folders"]["inbox"] == {"next": None, "delta": None}
    assert pages[1].changes[0].provider_id == "AAMkADNkNAAASq35xAAA="


async def test_resume_mid_round_and_incremental_removed(sample):
    page2, removed = sample("graph_delta_page2.json"), sample("graph_delta_removed.json")
    requested = []

    def handler(request):
        url = str(request.url)
        requested.append(url)
        if url == page2["@odata.nextLink"]:
            return httpx.Response(200, json=removed)
        if url == SENT_DELTA:
            return httpx.Response(200, json=empty_sent_page())
        raise AssertionError(url)

    cursor = {
        "v": 1,
        "folders": {
            "inbox": {"next": page2["@odata.nextLink"], "delta": "https://graph.microsoft.com/v1.0/old-delta"},
            "sentitems": {"next": None, "delta": SENT_DELTA},
        },
    }
    original = copy.deepcopy(cursor)
    pages = await collect(DeltaSync(client_for(handler), 100), cursor)
    assert requested == [SENT_DELTA, page2["@odata.nextLink"]]
    assert cursor == original  # the caller's cursor is not mutated
    kinds = [(c.kind, c.provider_id, c.is_read) for c in pages[1].changes]
    assert kinds == [
        (ChangeKind.REMOVED, "AAMkADk0MGFkODE3LWE4MmYtNDRhOS0Dh_6qB-pB2Sa2pUum19a6YAAKnLuxoAAA=", None),
        (ChangeKind.READ_STATE, "AAMkADNkNAAASq35xAAA=", True),
    ]
    assert pages[1].cursor["folders"]["inbox"] == {"next": None, "delta": removed["@odata.deltaLink"]}


async def test_full_messages_get_attachment_metadata_and_folder(sample):
    message = dict(sample("graph_message.json"), hasAttachments=True)

    def handler(request):
        path = request.url.path
        if path.endswith("/mailFolders/inbox/messages/delta"):
            return httpx.Response(200, json={"value": [], "@odata.deltaLink": f"{BASE}/inbox-delta"})
        if path.endswith("/mailFolders/sentitems/messages/delta"):
            return httpx.Response(200, json={"value": [message], "@odata.deltaLink": SENT_DELTA})
        if path.endswith("/me/messages/AAMkADhMGAAA=/attachments"):
            assert request.url.params["$select"] == "id,name,contentType,size,isInline"
            return httpx.Response(
                200,
                json={"value": [{"id": "att1", "name": "q.pdf", "contentType": "application/pdf", "size": 2048, "isInline": False}]},
            )
        raise AssertionError(str(request.url))

    pages = await collect(DeltaSync(client_for(handler), 100), None)
    (change,) = pages[0].changes
    assert change.kind is ChangeKind.UPSERT
    assert change.message.folder is Folder.SENT
    (att,) = change.message.attachments
    assert (att.provider_attachment_id, att.filename, att.size, att.content) == ("att1", "q.pdf", 2048, None)


async def test_entry_too_partial_is_fetched(sample):
    full = sample("graph_message.json")

    def handler(request):
        path = request.url.path
        if path.endswith("/mailFolders/inbox/messages/delta"):
            return httpx.Response(200, json={"value": [{"id": "AAMkADhMGAAA="}], "@odata.deltaLink": f"{BASE}/d"})
        if path.endswith("/mailFolders/sentitems/messages/delta"):
            return httpx.Response(200, json=empty_sent_page())
        if path.endswith("/me/messages/AAMkADhMGAAA="):
            return httpx.Response(200, json=full)
        raise AssertionError(str(request.url))

    pages = await collect(DeltaSync(client_for(handler), 100), None)
    (change,) = pages[1].changes
    assert change.kind is ChangeKind.UPSERT and change.message.subject == "9/9/2018: concert"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(410, json={"error": {"code": "SyncStateNotFound", "message": "gone"}}),
        httpx.Response(400, json={"error": {"code": "resyncRequired", "message": "resync"}}),
    ],
)
async def test_expired_delta_token_is_cursor_expired(response):
    def handler(request):
        return response

    cursor = {"v": 1, "folders": {"inbox": {"next": None, "delta": f"{BASE}/old"}, "sentitems": {"next": None, "delta": None}}}
    with pytest.raises(CursorExpiredError):
        await collect(DeltaSync(client_for(handler), 100), cursor)


async def test_unknown_cursor_shape_is_cursor_expired():
    with pytest.raises(CursorExpiredError):
        await collect(DeltaSync(client_for(lambda r: httpx.Response(500)), 100), {"v": 99})
