"""WebSocket sessions end with their credentials.

A graphql-transport-ws connection authenticates once, in ``connection_init``, and may
then stay open for days. Without this, a subscription would outlive the token it was
opened with, or the API key someone revoked because it leaked. Each session is closed
with 4403 ("Forbidden", what an authentication failure answers in that protocol):

- a token's session when its ``exp`` passes: one timer per session (a token whose
  ``exp`` has passed, though still within the verification leeway, is refused at
  ``connection_init``);
- an API key's session when the key is revoked: at once when the revocation happens in
  this process (``revokeApiKey`` calls ``key_revoked``); when it happens in another API
  process, within ``REVOCATION_POLL_SECONDS``: while sessions with keys are open, one
  query per interval asks which of their keys still authenticate. That needs no message
  between processes, so a Redis outage cannot make a revoked key's session live on,
  and costs one indexed read per interval whatever the number of sessions.

Sessions are held weakly: a connection that ended is forgotten with its socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketState

from api.dependencies import ApiDependencies
from db.repositories import api_keys

if TYPE_CHECKING:
    from api.auth import Viewer

log = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
REVOCATION_POLL_SECONDS = 2.0


class SessionWatch:
    def __init__(self, rt: ApiDependencies, *, poll_seconds: float = REVOCATION_POLL_SECONDS) -> None:
        self._rt = rt
        self._poll_seconds = poll_seconds
        self._by_key: dict[uuid.UUID, weakref.WeakSet[WebSocket]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # referenced until done

    def admit(self, websocket: WebSocket, viewer: Viewer) -> bool:
        """Watch ``websocket`` for the end of ``viewer``'s credentials; False if they
        have ended already (the connection is refused)."""
        if viewer.expires_at is not None:
            delay = viewer.expires_at - time.time()
            if delay <= 0:
                return False
            handle = asyncio.get_running_loop().call_later(
                delay, self._end, weakref.ref(websocket), "token expired"
            )
            # A 12-hour token's timer must not keep a closed connection alive, nor
            # linger once the connection is gone.
            weakref.finalize(websocket, handle.cancel)
        if viewer.api_key_id is not None:
            self._by_key.setdefault(viewer.api_key_id, weakref.WeakSet()).add(websocket)
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll_revocations())
        return True

    def key_revoked(self, key_id: uuid.UUID) -> None:
        """Close this process's sessions of a key that was just revoked."""
        for websocket in list(self._by_key.pop(key_id, ())):
            self._end(weakref.ref(websocket), "API key revoked")

    def _end(self, ref: weakref.ref[WebSocket], reason: str) -> None:
        websocket = ref()
        if websocket is None or not _open(websocket):
            return
        task = asyncio.create_task(_close(websocket, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _poll_revocations(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            for key_id, sockets in list(self._by_key.items()):
                if not any(_open(ws) for ws in sockets):
                    del self._by_key[key_id]
            if not self._by_key:
                return  # started again by the next session with a key
            watched = list(self._by_key)
            try:
                async with self._rt.engine.connect() as conn:
                    valid = await api_keys.valid_api_key_ids(conn, watched)
            except Exception:  # the database is away: try again next interval
                log.warning("could not check API key revocations", exc_info=True)
                continue
            for key_id in watched:
                if key_id not in valid:
                    self.key_revoked(key_id)


def _open(websocket: WebSocket) -> bool:
    return (
        websocket.application_state is WebSocketState.CONNECTED
        and websocket.client_state is WebSocketState.CONNECTED
    )


async def _close(websocket: WebSocket, reason: str) -> None:
    try:
        await websocket.close(code=CLOSE_FORBIDDEN, reason=reason)
    except (RuntimeError, OSError):  # it closed meanwhile
        pass
