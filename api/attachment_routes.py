"""``GET /attachments/{attachment_id}``: the bytes of a stored attachment, for a signed URL.

No Authorization header: the URL itself is the credential (GraphQL
``Attachment.downloadUrl``), checked by ``sync_engine.services.attachments``. A bad or
expired signature answers 403; a valid one for an attachment its sub-account does not
have answers 404, like an unknown id.

The bytes come from strangers' mail: they are served as a download, never rendered as a
page of our origin (attachment disposition, ``nosniff``, a sandboxing CSP), and never
stored by caches (the URL is a credential).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from api.dependencies import ApiDependencies
from sync_engine.services.attachments import verified_sub_account

_NEVER_RENDERED = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
}
# A bare ``type/subtype`` of RFC 9110 tokens; anything else is served as octet-stream.
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_SIGNATURE_PARAM = re.compile(r"(signature=)[^&\s\"]*")


async def download_attachment(request: Request) -> Response:
    rt: ApiDependencies = request.app.state.runtime
    attachment_id = request.path_params["attachment_id"]  # a UUID (the route's convertor)
    params = request.query_params
    sub_account_id = verified_sub_account(
        rt.settings, attachment_id, params.get("sub_account"), params.get("expires"), params.get("signature")
    )
    if sub_account_id is None:
        return Response("invalid or expired link", status_code=403, media_type="text/plain", headers=_NEVER_RENDERED)
    found = await rt.services.attachments.attachment_for_download(sub_account_id, attachment_id)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain", headers=_NEVER_RENDERED)
    return Response(found.content, headers={
        **_NEVER_RENDERED,
        # Set as a header, not ``media_type``: Starlette would append a charset to text/*.
        "Content-Type": _served_media_type(found.content_type),
        "Content-Disposition": content_disposition(found.filename),
    })


def content_disposition(filename: str) -> str:
    """``attachment`` with the name as RFC 6266/8187 ``filename*`` (UTF-8, percent-encoded,
    so no name can break the header) and a plain-ASCII ``filename`` for old clients."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename) or "attachment"
    encoded = quote(filename.encode("utf-8", "replace"), safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _served_media_type(declared: str) -> str:
    media_type = declared.split(";", 1)[0].strip().lower()
    return media_type if _MEDIA_TYPE.fullmatch(media_type) else "application/octet-stream"


class RedactSignatures(logging.Filter):
    """Access logs print the request URL: the signature in it must never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SIGNATURE_PARAM.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


# On uvicorn's access logger itself, which every server of this app logs requests to
# (a logger's filters survive uvicorn's logging set-up, which replaces only handlers).
logging.getLogger("uvicorn.access").addFilter(RedactSignatures())
