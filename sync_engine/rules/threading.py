"""Which CRM thread a mailbox message belongs to.

A message joins a thread when the provider groups it with a synced message
(Graph ``conversationId`` / Gmail ``threadId`` recorded on the CRM thread), or
when its In-Reply-To / References name a message already in the thread. The
provider's grouping is tried first because it survives clients that drop
References; Message-ID matching covers providers that split conversations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from sync_engine.domain import MailMessage

T = TypeVar("T")

_MSGID = re.compile(r"<[^<>\s]+>")


def normalize_message_id(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    found = _MSGID.search(value)
    if found:
        return found.group(0)
    return f"<{value.strip('<>')}>" if value.strip("<>") else None


def parse_references(value: str | None) -> list[str]:
    """Message-IDs of a References / In-Reply-To header, in order."""
    if not value:
        return []
    return _MSGID.findall(value)


def referenced_ids(message: MailMessage) -> list[str]:
    """Ids the message refers to, most specific first: In-Reply-To, then References newest first."""
    out: list[str] = []
    for candidate in [message.in_reply_to, *reversed(message.references)]:
        mid = normalize_message_id(candidate)
        if mid and mid not in out:
            out.append(mid)
    return out


def match_thread(
    message: MailMessage,
    threads_by_key: Mapping[str, T],
    threads_by_message_id: Mapping[str, T],
) -> T | None:
    """Pick the thread for ``message`` from the candidates the caller looked up."""
    if message.thread_key and message.thread_key in threads_by_key:
        return threads_by_key[message.thread_key]
    for mid in referenced_ids(message):
        if mid in threads_by_message_id:
            return threads_by_message_id[mid]
    return None


def reply_subject(subject: str) -> str:
    """The subject of a reply: one ``Re:`` prefix, as mail clients do to keep threads."""
    stripped = subject.strip()
    if re.match(r"^(re|aw|sv)\s*:", stripped, re.IGNORECASE):
        return stripped
    return f"Re: {stripped}" if stripped else "Re:"


def references_for_reply(parent_message_id: str | None, parent_references: list[str]) -> list[str]:
    """RFC 5322 section 3.6.4: the parent's References followed by the parent's Message-ID."""
    refs = list(parent_references)
    if parent_message_id and parent_message_id not in refs:
        refs.append(parent_message_id)
    return refs
