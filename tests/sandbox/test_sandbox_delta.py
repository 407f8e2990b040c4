"""Graph delta query: paging, incremental rounds, @removed, replay, 410."""

from __future__ import annotations

from urllib.parse import urlsplit

IMMUTABLE = 'IdType="ImmutableId"'


def _inbound(control, to: str, subject: str) -> dict:
    response = control.post(f"/mailboxes/{to}/inbound", json={"from": "bob@external.test", "subject": subject, "text": subject})
    assert response.status_code == 201
    return response.json()


async def _round(graph, url: str, page_size: int | None = None) -> tuple[list[list[dict]], str, list]:
    """Follow nextLinks to the deltaLink; returns (pages, deltaLink, responses)."""
    prefer = [IMMUTABLE] + ([f"odata.maxpagesize={page_size}"] if page_size else [])
    pages, responses = [], []
    while True:
        response = await graph.get(url, headers={"Prefer": ", ".join(prefer)})
        assert response.status_code == 200, response.text
        responses.append(response)
        body = response.json()
        pages.append(body["value"])
        if "@odata.deltaLink" in body:
            return pages, body["@odata.deltaLink"], responses
        url = body["@odata.nextLink"]


async def test_first_round_pages_and_preferences(outlook, control):
    alice = outlook()
    created = [_inbound(control, alice.address, f"m{i}")["id"] for i in range(5)]
    async with alice.graph() as graph:
        pages, delta_link, responses = await _round(graph, "/me/mailFolders/inbox/messages/delta", page_size=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(m["id"] for p in pages for m in p) == sorted(created)
    applied = responses[0].headers["Preference-Applied"]
    assert "odata.maxpagesize=2" in applied and IMMUTABLE in applied
    body = responses[-1].json()
    assert body["@odata.context"].endswith("$metadata#Collection(message)")
    assert "mailfolders('" in delta_link and "$deltatoken=" in urlsplit(delta_link).query
    assert all(m["@odata.type"] == "#microsoft.graph.message" for p in pages for m in p)


async def test_default_page_size_is_ten(outlook, control):
    alice = outlook()
    for i in range(12):
        _inbound(control, alice.address, f"m{i}")
    async with alice.graph() as graph:
        first = (await graph.get("/me/mailfolders('inbox')/messages/delta")).json()
    assert len(first["value"]) == 10 and "@odata.nextLink" in first


async def test_incremental_round_reports_adds_updates_and_removals(outlook, control):
    alice = outlook()
    keep, read, gone, moved = (_inbound(control, alice.address, s) for s in ("keep", "read", "gone", "moved"))
    async with alice.graph() as graph:
        _, delta_link, _ = await _round(graph, "/me/mailFolders/inbox/messages/delta")
        empty, delta_link, _ = await _round(graph, delta_link)
        assert empty == [[]]
        control.patch(f"/mailboxes/{alice.address}/messages/{read['id']}", json={"isRead": True})
        control.delete(f"/mailboxes/{alice.address}/messages/{gone['id']}")
        control.delete(f"/mailboxes/{alice.address}/messages/{moved['id']}?to_trash=true")
        new = _inbound(control, alice.address, "new")
        pages, delta_link, _ = await _round(graph, delta_link)
    items = {m["id"]: m for p in pages for m in p}
    assert set(items) == {read["id"], gone["id"], moved["id"], new["id"]}
    assert items[read["id"]]["isRead"] is True
    assert items[gone["id"]] == {"@odata.type": "#microsoft.graph.message", "id": gone["id"], "@removed": {"reason": "deleted"}}
    assert items[moved["id"]]["@removed"] == {"reason": "changed"}
    assert items[new["id"]]["subject"] == "new" and "@removed" not in items[new["id"]]
    assert keep["id"] not in items


async def test_sent_items_delta_and_select(outlook, control):
    alice = outlook()
    sent = control.post(f"/mailboxes/{alice.address}/send", json={"to": "bob@external.test", "subject": "Hi", "text": "x"}).json()
    _inbound(control, alice.address, "inbox only")
    async with alice.graph() as graph:
        url = "/me/mailFolders/sentitems/messages/delta?$select=subject,isRead,sender"
        pages, _, _ = await _round(graph, url)
    (item,) = pages[0]
    assert item["id"] == sent["id"] and item["subject"] == "Hi"
    assert set(item) == {"@odata.type", "@odata.etag", "id", "subject", "isRead", "sender"}


async def test_replay_serves_the_same_page_again(outlook, control):
    alice = outlook()
    for i in range(3):
        _inbound(control, alice.address, f"m{i}")
    async with alice.graph() as graph:
        control.post(f"/mailboxes/{alice.address}/replay-next-delta")
        pages, delta_link, _ = await _round(graph, "/me/mailFolders/inbox/messages/delta", page_size=2)
        assert [len(p) for p in pages] == [2, 2, 1]
        assert [m["id"] for m in pages[0]] == [m["id"] for m in pages[1]]
        later = _inbound(control, alice.address, "later")
        control.post(f"/mailboxes/{alice.address}/replay-next-delta")
        pages, _, _ = await _round(graph, delta_link)
    assert [[m["id"] for m in p] for p in pages] == [[later["id"]], [later["id"]]]


async def test_expired_or_unknown_cursor_is_410(outlook, control):
    alice = outlook()
    _inbound(control, alice.address, "m")
    async with alice.graph() as graph:
        first = (await graph.get("/me/mailFolders/inbox/messages/delta", headers={"Prefer": "odata.maxpagesize=1"})).json()
        _inbound(control, alice.address, "m2")
        _, delta_link, _ = await _round(graph, "/me/mailFolders/inbox/messages/delta")
        assert control.post(f"/mailboxes/{alice.address}/expire-cursors").status_code == 200
        for url in (delta_link, first["@odata.deltaLink"] if "@odata.deltaLink" in first else first["@odata.nextLink"]):
            gone = await graph.get(url)
            assert gone.status_code == 410 and gone.json()["error"]["code"] == "SyncStateNotFound"
        garbage = await graph.get("/me/mailFolders/inbox/messages/delta?$deltatoken=bogus")
        assert garbage.status_code == 410
        # a fresh round works again, and so does the deltaLink it ends with (no resync loop)
        pages, fresh_link, _ = await _round(graph, "/me/mailFolders/inbox/messages/delta")
        assert len([m for p in pages for m in p]) == 2
        assert (await graph.get(fresh_link)).status_code == 200


async def test_string_boolean_quirk_and_latest_token(outlook, control):
    alice = outlook()
    message = _inbound(control, alice.address, "m")
    control.patch("/config", json={"delta_string_booleans": True})
    async with alice.graph() as graph:
        latest = (await graph.get("/me/mailFolders/inbox/messages/delta?$deltatoken=latest")).json()
        assert latest["value"] == [] and "@odata.deltaLink" in latest
        control.patch(f"/mailboxes/{alice.address}/messages/{message['id']}", json={"isRead": True})
        pages, _, _ = await _round(graph, latest["@odata.deltaLink"])
    (item,) = pages[0]
    assert item["isRead"] == "true"  # as in graph_delta_removed.json


async def test_rest_ids_in_delta_without_immutable_preference(outlook, control):
    alice = outlook()
    message = _inbound(control, alice.address, "m")
    async with alice.graph() as graph:
        first = (await graph.get("/me/mailFolders/inbox/messages/delta")).json()
        rest_id = first["value"][0]["id"]
        assert rest_id == message["restId"] != message["id"]
        control.delete(f"/mailboxes/{alice.address}/messages/{message['id']}?to_trash=true")
        second = (await graph.get(first["@odata.deltaLink"])).json()
    assert second["value"] == [{"@odata.type": "#microsoft.graph.message", "id": rest_id, "@removed": {"reason": "changed"}}]
