"""RFC 5322 rendering and parsing with the standard library's ``email`` package.

Rendering produces the canonical bytes stored on every message (Graph ``$value``
and Gmail ``format=raw`` serve them; Gmail ``format=full`` parses them), so the
threading headers (Message-ID, In-Reply-To, References) must be present.
Parsing is deliberately forgiving: inbound mail in the wild is often malformed,
and a simulator that rejects it would hide the adapters' own parsing bugs.
"""

from __future__ import annotations

import email
import email.header
import email.policy
import email.utils
import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage, Message as StdMessage

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


def _addresses(raw_values: list[str]) -> list[Address]:
    pairs = email.utils.getaddresses([str(v) for v in raw_values])
    return [Address(address=addr, name=name) for name, addr in pairs if addr]


def _header(msg: StdMessage, name: str) -> str | None:
    try:
        value = msg.get(name)
    except Exception:  # malformed header: the policy may raise while parsing it
        value = None
    return None if value is None else str(value).strip()


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
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def parse(raw: bytes) -> ParsedMail:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    parsed = ParsedMail(subject=_decode_words(_header(msg, "Subject") or ""))
    froms = _addresses(msg.get_all("From", []))
    parsed.from_ = froms[0] if froms else None
    senders = _addresses(msg.get_all("Sender", []))
    parsed.sender = senders[0] if senders else parsed.from_
    parsed.to = _addresses(msg.get_all("To", []))
    parsed.cc = _addresses(msg.get_all("Cc", []))
    parsed.bcc = _addresses(msg.get_all("Bcc", []))
    parsed.reply_to = _addresses(msg.get_all("Reply-To", []))
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
    parsed.custom_headers = [(k, str(v)) for k, v in msg.items() if k.lower().startswith("x-")]
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        filename = part.get_filename()
        ctype = part.get_content_type()
        if filename or disposition == "attachment" or not ctype.startswith("text/"):
            content_id = (part.get("Content-ID") or "").strip().strip("<>") or None
            parsed.attachments.append(
                ParsedAttachment(
                    filename=_decode_words(filename or "attachment"),
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

