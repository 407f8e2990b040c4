from sync_engine.content import sanitize_html, snippet
from sync_engine.rules.sender import EmailKind, SenderRoute, route_for


def test_sender_mapping():
    assert route_for(EmailKind.INDIVIDUAL, "me@x.com") is SenderRoute.MAILBOX
    assert route_for(EmailKind.INDIVIDUAL, None) is SenderRoute.SUB_ACCOUNT
    assert route_for(EmailKind.BULK, "me@x.com", "ME@x.com") is SenderRoute.MAILBOX
    assert route_for(EmailKind.BULK, "me@x.com", None) is SenderRoute.SUB_ACCOUNT
    assert route_for(EmailKind.BULK, "me@x.com", "other@x.com") is SenderRoute.SUB_ACCOUNT
    assert route_for(EmailKind.WORKFLOW, "me@x.com") is SenderRoute.SUB_ACCOUNT


def test_html_is_sanitized():
    dirty = '<p onclick="x()">Hi<script>alert(1)</script><a href="javascript:alert(1)">l</a><img src="cid:a"></p>'
    clean = sanitize_html(dirty)
    assert "script" not in clean and "onclick" not in clean and "javascript:" not in clean
    assert "Hi" in clean and 'src="cid:a"' in clean


def test_snippet_from_html_when_no_text():
    assert snippet(None, "<style>p{}</style><p>Hello&nbsp;<b>there</b></p>") == "Hello there"
    assert len(snippet("x" * 500, None)) == 200
