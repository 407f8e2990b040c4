"""Which mailbox messages sync into the CRM (DESIGN.md section 1, rules 1–5).

Pure: the caller looks up the facts (users' addresses, known contacts, the
thread the message would join) and this module decides.

Order matters:
1. Confidentiality first — mail exchanged with another user of the sub-account
   is never synced, not even into an existing thread, and nothing of it is kept.
2. A message of a thread the CRM already has always syncs (CRM-initiated threads).
3. With the labs flag off nothing else syncs.
4. Inbound from a known contact starts a thread. Inbound with no sender address at all
   (no usable From, which mail systems mostly refuse but mailbox imports and relays let
   through) cannot be told apart from a contact's mail: it is reported as a skip
   (``NO_SENDER``) rather than dropped unseen like a stranger's mail.
5. Outbound with the sub-account's BCC sync address in Cc/Bcc starts a thread and
   makes the recipients contacts.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass, field

from sync_engine.domain import MailMessage
from sync_engine.rules.addresses import participants
from vocabulary import Folder, SkipReason


class Verdict(enum.StrEnum):
    SYNC = "sync"
    # The verdicts recorded as sync skips carry the skip reason's value.
    CONFIDENTIAL = SkipReason.CONFIDENTIAL.value
    NOT_RELEVANT = "not_relevant"
    NO_SENDER = SkipReason.NO_SENDER.value  # inbound without a sender address


@dataclass(frozen=True, slots=True)
class SelectionFacts:
    owner_address: str
    user_addresses: Collection[str]  # normalized addresses of the sub-account's users
    contact_addresses: Collection[str]  # normalized participants that are already contacts
    bcc_sync_address: str
    labs_two_way_sync: bool
    in_existing_thread: bool


@dataclass(frozen=True, slots=True)
class Selection:
    verdict: Verdict
    # The contact the (new) thread is about.
    contact_address: str | None = None
    # Addresses that must become contacts first (BCC rule).
    new_contacts: tuple[str, ...] = field(default_factory=tuple)


def select(message: MailMessage, facts: SelectionFacts) -> Selection:
    owner = facts.owner_address.lower()
    bcc = facts.bcc_sync_address.lower()
    people = [a.normalized for a in participants(message)]
    others = [a for a in people if a not in (owner, bcc)]

    if any(a in facts.user_addresses for a in others):
        return Selection(Verdict.CONFIDENTIAL)

    counterpart = _counterparts(message, owner, bcc)
    known = [a for a in counterpart if a in facts.contact_addresses]

    if facts.in_existing_thread:
        return Selection(Verdict.SYNC, contact_address=known[0] if known else None)
    if not facts.labs_two_way_sync:
        return Selection(Verdict.NOT_RELEVANT)

    if message.folder is Folder.INBOX:
        sender = message.sender.normalized if message.sender else None
        if not sender:
            return Selection(Verdict.NO_SENDER)
        if sender in facts.contact_addresses and sender != owner:
            return Selection(Verdict.SYNC, contact_address=sender)
        return Selection(Verdict.NOT_RELEVANT)

    copied = {a.normalized for a in (*message.cc, *message.bcc)}
    if bcc in copied and counterpart:
        new = tuple(a for a in counterpart if a not in facts.contact_addresses)
        return Selection(Verdict.SYNC, contact_address=counterpart[0], new_contacts=new)
    return Selection(Verdict.NOT_RELEVANT)


def _counterparts(message: MailMessage, owner: str, bcc: str) -> list[str]:
    """The people on the other side: the sender of inbound mail, the recipients of outbound."""
    if message.folder is Folder.INBOX:
        addrs = [message.sender] if message.sender else []
    else:
        addrs = [*message.to, *message.cc, *message.bcc]
    out: list[str] = []
    for a in addrs:
        n = a.normalized
        if n and n not in (owner, bcc) and n not in out:
            out.append(n)
    return out
