"""Which attachments may sync (DESIGN.md rule 6): size and type, checked by content.

A message whose attachment fails these checks does not sync; it becomes a sync
skip with the reason. The name's extension must be allowed *and* the bytes must
look like that type, so ``invoice.pdf`` that is really an executable is refused.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import PurePosixPath

from vocabulary import AttachmentProblem as AttachmentProblem

MAX_ATTACHMENT_BYTES = 3 * 1024 * 1024

ALLOWED_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "mp4", "mpeg", "zip", "rar", "pdf", "doc", "docx", "txt"})


@dataclass(frozen=True, slots=True)
class AttachmentVerdict:
    problem: AttachmentProblem | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None


def extension_of(filename: str) -> str:
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower().lstrip(".")


def check_declared(filename: str, size: int) -> AttachmentVerdict:
    """What can be decided before downloading: size and extension."""
    if size > MAX_ATTACHMENT_BYTES:
        return AttachmentVerdict(AttachmentProblem.TOO_LARGE, f"{filename}: {size} bytes > {MAX_ATTACHMENT_BYTES}")
    ext = extension_of(filename)
    if ext not in ALLOWED_EXTENSIONS:
        return AttachmentVerdict(AttachmentProblem.TYPE_NOT_ALLOWED, f"{filename}: .{ext or '(none)'} is not allowed")
    return AttachmentVerdict(None)


def check_content(filename: str, content: bytes) -> AttachmentVerdict:
    """Full check once the bytes are known."""
    declared = check_declared(filename, len(content))
    if not declared.ok:
        return declared
    ext = extension_of(filename)
    if not _SNIFFERS[ext](content):
        return AttachmentVerdict(AttachmentProblem.CONTENT_MISMATCH, f"{filename}: content is not {ext.upper()}")
    return AttachmentVerdict(None)


def _is_jpeg(b: bytes) -> bool:
    return b.startswith(b"\xff\xd8\xff")


def _is_png(b: bytes) -> bool:
    return b.startswith(b"\x89PNG\r\n\x1a\n")


def _is_mp4(b: bytes) -> bool:
    return len(b) >= 12 and b[4:8] == b"ftyp"


def _is_mpeg(b: bytes) -> bool:
    # MPEG program/video stream, or MPEG audio (ID3 tag or a frame sync).
    if b.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"ID3")):
        return True
    return len(b) >= 2 and b[0] == 0xFF and (b[1] & 0xE0) == 0xE0


def _is_zip(b: bytes) -> bool:
    return b.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def _is_rar(b: bytes) -> bool:
    return b.startswith((b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00"))


def _is_pdf(b: bytes) -> bool:
    return b[:1024].lstrip().startswith(b"%PDF-")


def _is_doc(b: bytes) -> bool:
    return b.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")


def _is_docx(b: bytes) -> bool:
    if not _is_zip(b):
        return False
    try:
        with zipfile.ZipFile(BytesIO(b)) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        return False
    return "[Content_Types].xml" in names and any(n.startswith("word/") for n in names)


def _is_text(b: bytes) -> bool:
    if b"\x00" in b:
        return False
    for encoding in ("utf-8", "utf-16"):
        try:
            b.decode(encoding)
            return True
        except UnicodeDecodeError:
            continue
    # Latin-1 text: printable bytes, tabs and newlines only.
    return all(c >= 0x20 or c in (9, 10, 12, 13) for c in b)


_SNIFFERS = {
    "jpg": _is_jpeg,
    "jpeg": _is_jpeg,
    "png": _is_png,
    "mp4": _is_mp4,
    "mpeg": _is_mpeg,
    "zip": _is_zip,
    "rar": _is_rar,
    "pdf": _is_pdf,
    "doc": _is_doc,
    "docx": _is_docx,
    "txt": _is_text,
}
