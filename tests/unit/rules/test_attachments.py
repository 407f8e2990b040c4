import io
import zipfile

import pytest

from sync_engine.rules.attachments import (
    MAX_ATTACHMENT_BYTES,
    AttachmentProblem,
    check_content,
    check_declared,
)


def docx_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


@pytest.mark.parametrize(
    "name,data",
    [
        ("a.jpg", b"\xff\xd8\xff\xe0" + b"0" * 20),
        ("a.JPEG", b"\xff\xd8\xff\xdb" + b"0" * 20),
        ("a.png", b"\x89PNG\r\n\x1a\n" + b"0" * 20),
        ("a.mp4", b"\x00\x00\x00\x18ftypmp42" + b"0" * 20),
        ("a.mpeg", b"\x00\x00\x01\xba" + b"0" * 20),
        ("a.zip", b"PK\x03\x04" + b"0" * 20),
        ("a.rar", b"Rar!\x1a\x07\x00" + b"0" * 20),
        ("a.pdf", b"%PDF-1.7\n"),
        ("a.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"0" * 20),
        ("a.docx", docx_bytes()),
        ("a.txt", "héllo\n".encode()),
    ],
)
def test_allowed_types_pass(name, data):
    assert check_content(name, data).ok


def test_extension_not_allowed():
    assert check_content("run.exe", b"MZ...").problem is AttachmentProblem.TYPE_NOT_ALLOWED
    assert check_declared("noext", 10).problem is AttachmentProblem.TYPE_NOT_ALLOWED


def test_content_must_match_name():
    assert check_content("invoice.pdf", b"MZ\x90\x00executable").problem is AttachmentProblem.CONTENT_MISMATCH
    assert check_content("fake.docx", b"PK\x03\x04garbage").problem is AttachmentProblem.CONTENT_MISMATCH
    assert check_content("bin.txt", b"\x00\x01\x02").problem is AttachmentProblem.CONTENT_MISMATCH


def test_size_limit_is_3_mb():
    assert check_declared("a.pdf", MAX_ATTACHMENT_BYTES).ok
    assert check_declared("a.pdf", MAX_ATTACHMENT_BYTES + 1).problem is AttachmentProblem.TOO_LARGE
