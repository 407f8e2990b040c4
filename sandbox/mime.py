"""RFC 5322 rendering and parsing with the standard library's ``email`` package.

Rendering produces the canonical bytes stored on every message (Graph ``$value``
and Gmail ``format=raw`` serve them; Gmail ``format=full`` parses them), so the
threading headers (Message-ID, In-Reply-To, References) must be present.
Parsing is deliberately forgiving: inbound mail in the wild is often malformed,
and a simulator that rejects it would hide the adapters' own parsing bugs. What it
extracts follows what Exchange and Gmail show of such mail:
- raw 8-bit header bytes are read as UTF-8 (RFC 6532), else as Windows-1252;
- an attached message (``message/rfc822``, even with a transfer encoding it may not
  carry) is one attachment, its text never the outer message's body;
- a multipart whose parts cannot be found (no delimiter in the body) shows its
  content as plain text rather than as a nameless attachment;
- an unknown charset label (``x-mac-cyrillic``) falls back to its plain name, then UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.header
import email.policy
import email.utils
import html
import quopri
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.message import Message as StdMessage

from sandbox.store import Address, Message

_TAG = re.compile(r"<[^>]+>")
_STYLE = re.compile(r"<(style|script|head)[^>]*>.*?</\1>", re.S | re.I)
_BREAKS = re.compile(r"<\s*(br|/p|/div|/tr|/h\d)\s*/?>", re.I)


def html_to_text(markup: str) -> str:
    """Crude but dependable HTML-to-text, used for bodyPreview and text bodies."""
    text = _STYLE.sub("", markup)
    text = _BREAKS.sub("\n", text)
    text = html.unescape(_TAG.sub("", text))
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()


def preview(text: str | None, markup: str | None) -> str:
    """The first 255 characters of the body as plain text, whitespace collapsed."""
    plain = text if text is not None else html_to_text(markup or "")
    return " ".join(plain.split())[:255]


def _one_line(value: str) -> str:
    """Header values never carry CR/LF: no header injection, no policy errors."""
    return " ".join(value.replace("\r", "\n").split("\n"))


def format_address(addr: Address) -> str:
    name, address = _one_line(addr.name), _one_line(addr.address)
    return email.utils.formataddr((name, address)) if name else address


def render(message: Message, *, include_bcc: bool = True) -> bytes:
    """Build the RFC 5322 bytes of a message from its fields.

    Bcc is kept by default: only the sender's copy has a Bcc list at all
    (delivered copies are stored without one), and that copy does show it.
    """
    out = EmailMessage(policy=email.policy.SMTP)
    if message.from_:
        out["From"] = format_address(message.from_)
    if message.sender and message.from_ and not message.sender.same(message.from_.address):
        out["Sender"] = format_address(message.sender)
    for header, people in (("To", message.to), ("Cc", message.cc), ("Reply-To", message.reply_to)):
        if people:
            out[header] = ", ".join(format_address(a) for a in people)
    if include_bcc and message.bcc:
        out["Bcc"] = ", ".join(format_address(a) for a in message.bcc)
    out["Subject"] = _one_line(message.subject)
    out["Date"] = email.utils.format_datetime(message.sent or message.created)
    out["Message-ID"] = message.internet_message_id
    if message.in_reply_to:
        out["In-Reply-To"] = message.in_reply_to
    if message.references:
        out["References"] = " ".join(message.references)
    for name, value in message.custom_headers:
        out[_one_line(name)] = _one_line(value)
    text = message.body_text if message.body_text is not None else html_to_text(message.body_html or "")
    out.set_content(text or "", subtype="plain", charset="utf-8")
    if message.body_html is not None:
        out.add_alternative(message.body_html, subtype="html", charset="utf-8")
    for att in message.attachments:
        maintype, _, subtype = (att.content_type or "application/octet-stream").partition("/")
        out.add_attachment(
            att.data,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=att.filename,
            disposition="inline" if att.is_inline else "attachment",
            cid=f"<{att.content_id}>" if att.content_id else None,
        )
    return out.as_bytes()


@dataclass
class ParsedAttachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    is_inline: bool = False


@dataclass
class ParsedMail:
    from_: Address | None = None
    sender: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    subject: str = ""
    text: str | None = None
    html: str | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    date: datetime | None = None
    custom_headers: list[tuple[str, str]] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)


def _readable(value: object) -> str:
    """A header value as text: the parser keeps raw 8-bit bytes as surrogate escapes."""
    text = str(value)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _raw_all(msg: StdMessage, name: str) -> list[str]:
    """Every value of a header as it came (``get`` would turn raw 8-bit bytes into U+FFFD)."""
    wanted = name.lower()
    return [value for key, value in msg.raw_items() if key.lower() == wanted]


def _addresses(msg: StdMessage, name: str) -> list[Address]:
    pairs = email.utils.getaddresses([_readable(v) for v in _raw_all(msg, name)])
    return [Address(address=addr, name=_decode_words(name) if name else name) for name, addr in pairs if addr]


def _header(msg: StdMessage, name: str) -> str | None:
    values = _raw_all(msg, name)
    return _readable(values[0]).strip() if values else None


def _message_ids(value: str | None) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value or "")


def _decode_part(part: StdMessage) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    return payload if isinstance(payload, bytes) else b""


def _text_of(part: StdMessage) -> str:
    data = _decode_part(part)
    charset = part.get_content_charset() or "utf-8"
    for name in (charset, charset.removeprefix("x-"), "utf-8"):
        try:
            return data.decode(name, errors="replace")
        except LookupError:
            continue
    return data.decode("utf-8", errors="replace")


def _attached_message(part: StdMessage) -> ParsedAttachment:
    """A ``message/rfc822`` part as the one attachment it is: its bytes (transfer-decoded
    when a mailer encoded it anyway), named by its file name or its own Subject."""
    inner = part.get_payload()
    data = inner[0].as_bytes() if isinstance(inner, list) and inner else _decode_part(part)
    encoding = (_header(part, "Content-Transfer-Encoding") or "").lower()
    if encoding in ("base64", "quoted-printable"):
        # The parser read the encoded text as if it were a message: decode that text.
        data = _transfer_decoded(data, encoding)
    subject = ""
    if isinstance(inner, list) and inner:
        subject = _decode_words(_header(inner[0], "Subject") or "")
    if encoding in ("base64", "quoted-printable"):
        subject = _decode_words(_header(email.message_from_bytes(data, policy=email.policy.compat32), "Subject") or "")
    disposition = (_header(part, "Content-Disposition") or "").split(";")[0].strip().lower()
    return ParsedAttachment(
        filename=_filename_of(part) or subject or "message",
        content_type="message/rfc822",
        data=data,
        content_id=(_header(part, "Content-ID") or "").strip("<>") or None,
        is_inline=disposition == "inline",
    )


def _transfer_decoded(raw: bytes, encoding: str) -> bytes:
    try:
        return base64.b64decode(raw) if encoding == "base64" else quopri.decodestring(raw)
    except (binascii.Error, ValueError):
        return raw


def _filename_of(part: StdMessage) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # malformed RFC 2231 parameters
        return None
    return _decode_words(_readable(name)) if name else None


def _leaves(msg: StdMessage, depth: int = 0) -> list[StdMessage]:
    """Leaf parts in order, not descending into attached messages (nor past a hostile depth)."""
    payload = msg.get_payload()
    if msg.get_content_type() == "message/rfc822" or not isinstance(payload, list) or depth > 32:
        return [msg]
    return [leaf for child in payload for leaf in _leaves(child, depth + 1)]


def parse(raw: bytes) -> ParsedMail:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    parsed = ParsedMail(subject=_decode_words(_header(msg, "Subject") or ""))
    froms = _addresses(msg, "From")
    parsed.from_ = froms[0] if froms else None
    senders = _addresses(msg, "Sender")
    parsed.sender = senders[0] if senders else parsed.from_
    parsed.to = _addresses(msg, "To")
    parsed.cc = _addresses(msg, "Cc")
    parsed.bcc = _addresses(msg, "Bcc")
    parsed.reply_to = _addresses(msg, "Reply-To")
    ids_ = _message_ids(_header(msg, "Message-ID"))
    # RFC 5322 caps a line at 998 characters; overlong ids are not trusted.
    parsed.message_id = ids_[0] if ids_ and len(ids_[0]) <= 998 else None
    reply_ids = _message_ids(_header(msg, "In-Reply-To"))
    parsed.in_reply_to = reply_ids[0] if reply_ids else None
    parsed.references = _message_ids(_header(msg, "References"))
    date = _header(msg, "Date")
    if date:
        try:
            parsed.date = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError):
            parsed.date = None
    parsed.custom_headers = [(k, _readable(v)) for k, v in msg.raw_items() if k.lower().startswith("x-")]
    for part in _leaves(msg):
        ctype = part.get_content_type()
        if ctype == "message/rfc822" and part is not msg:
            parsed.attachments.append(_attached_message(part))
            continue
        if part.get_content_maintype() in ("multipart", "message") and not part.is_multipart():
            # Its parts could not be found (no delimiter): what it holds is shown as text.
            if parsed.text is None:
                parsed.text = _text_of(part)
            continue
        disposition = (_header(part, "Content-Disposition") or "").split(";")[0].strip().lower()
        filename = _filename_of(part)
        if filename or disposition == "attachment" or not ctype.startswith("text/"):
            content_id = (_header(part, "Content-ID") or "").strip("<>") or None
            parsed.attachments.append(
                ParsedAttachment(
                    filename=filename or "attachment",
                    content_type=ctype,
                    data=_decode_part(part),
                    content_id=content_id,
                    is_inline=disposition == "inline",
                )
            )
        elif ctype == "text/html" and parsed.html is None:
            parsed.html = _text_of(part)
        elif ctype == "text/plain" and parsed.text is None:
            parsed.text = _text_of(part)
    return parsed


def _decode_words(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        return value

