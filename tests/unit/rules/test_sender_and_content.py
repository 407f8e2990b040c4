from sync_engine.content import sanitize_html, snippet


def test_html_is_sanitized():
    dirty = '<p onclick="x()">Hi<script>alert(1)</script><a href="javascript:alert(1)">l</a><img src="cid:a"></p>'
    clean = sanitize_html(dirty)
    assert "script" not in clean and "onclick" not in clean and "javascript:" not in clean
    assert "Hi" in clean and 'src="cid:a"' in clean


def test_snippet_from_html_when_no_text():
    assert snippet(None, "<style>p{}</style><p>Hello&nbsp;<b>there</b></p>") == "Hello there"
    assert len(snippet("x" * 500, None)) == 200
