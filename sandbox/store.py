"""Provider-neutral mail store: mailboxes, messages and a per-mailbox change log.

Every simulated provider reads and writes the same objects; each renders them in
its own wire format (Graph JSON, Gmail resources). The change log is the single
source for incremental sync: Graph delta links and Gmail history ids are both
positions (``seq``) in it, and webhook notifiers subscribe to its events.

Concurrency: the store is mutated from the server's event loop, but tests may
poke at it from their own thread, so mutations hold a re-entrant lock. Listeners
run after the lock is released and must not block (they schedule work).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox import ids

FOLDERS = ("inbox", "sentitems", "drafts", "deleteditems")
# Gmail only: a message without INBOX/SENT/DRAFT/TRASH ("archived", only in All Mail).
# Graph never sees it, so it is not one of FOLDERS (which Graph lists).
ARCHIVE = "archive"
PROVIDERS = ("outlook", "gmail")
# Gmail system labels that mirror the folder and the read state.
FOLDER_LABELS = {"inbox": "INBOX", "sentitems": "SENT", "drafts": "DRAFT", "deleteditems": "TRASH"}
SANDBOX_TENANT_ID = "5a4d0b3e-0c1f-4e55-9b8a-5a4db0c5a4db"


@dataclass
class Address:
    address: str
    name: str = ""

    def same(self, other: str) -> bool:
        return self.address.lower() == other.lower()


@dataclass
class Attachment:
    id: str
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    is_inline: bool = False
    last_modified: datetime = field(default_factory=ids.utcnow)


@dataclass
class Message:
    id: str  # immutable id: never changes for the life of the message
    # Outlook's default ("REST") id changes when the message moves folder; for
    # Gmail it simply equals ``id``.
    rest_id: str
    conversation_id: str
    internet_message_id: str
    folder: str
    # RFC 5322 bytes: as received for raw inbound mail, otherwise rendered from
    # the fields on first use (rendering is the costly part of seeding large
    # mailboxes) and reset to None whenever a draft's content changes.
    raw: bytes | None = None
    labels: set[str] = field(default_factory=set)
    is_read: bool = False
    is_draft: bool = False
    subject: str = ""
    from_: Address | None = None
    sender: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    body_html: str | None = None
    body_text: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    custom_headers: list[tuple[str, str]] = field(default_factory=list)
    importance: str = "normal"
    categories: list[str] = field(default_factory=list)
    flag_status: str = "notFlagged"
    created: datetime = field(default_factory=ids.utcnow)
    last_modified: datetime = field(default_factory=ids.utcnow)
    sent: datetime | None = None
    received: datetime | None = None
    change_key: str = field(default_factory=ids.change_key)
    # seq of the last change-log entry that touched this message (Gmail's
    # per-message historyId is derived from it)
    history_seq: int = 0

    @property
    def mime(self) -> bytes:
        """The canonical RFC 5322 bytes (Gmail raw/full views derive from them)."""
        if self.raw is None:
            from sandbox.mime import render  # mime builds on this module's types

            self.raw = render(self)
        return self.raw

    def attachment(self, attachment_id: str) -> Attachment | None:
        return next((a for a in self.attachments if a.id == attachment_id), None)


@dataclass(frozen=True)
class Change:
    """One entry of a mailbox's change log.

    ``folder_before``/``labels_before`` describe the message just before this
    change (None/empty for ``added``), ``*_after`` just after (None/empty for
    ``deleted``), so a reader anchored at any seq can tell whether a message was
    in a folder (or had a label) at that point.
    """

    seq: int
    message_id: str
    kind: str  # "added" | "updated" | "deleted"
    folder_before: str | None
    folder_after: str | None
    labels_before: frozenset[str]
    labels_after: frozenset[str]
    changed: frozenset[str]  # attribute names of Message that changed
    rest_id_before: str | None
    at: datetime
    conversation_id: str = ""  # Gmail history names the thread even of deleted messages


@dataclass
class Mailbox:
    provider: str
    address: str
    name: str
    user_id: str = field(default_factory=ids.new_guid)
    tenant_id: str = SANDBOX_TENANT_ID
    messages: dict[str, Message] = field(default_factory=dict)  # by immutable id
    changes: list[Change] = field(default_factory=list)
    seq: int = 0
    # Cursors (delta links, history ids) anchored below this seq are expired.
    cursor_floor: int = 0
    # Bumped when cursors are expired: delta tokens issued in an earlier epoch are gone.
    cursor_epoch: int = 0
    revoked: bool = False
    # Set by the control API: the next incremental-sync page is served twice.
    replay_next_page: bool = False
    folder_ids: dict[str, str] = field(default_factory=dict)
    created: datetime = field(default_factory=ids.utcnow)
    _aliases: dict[str, str] = field(default_factory=dict, repr=False)  # rest id -> id
    # lower-cased Message-ID -> ids of the messages carrying it (threading is a
    # lookup per delivered message, so it must not scan the mailbox)
    _by_imid: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.folder_ids:
            self.folder_ids = {name: ids.graph_folder_id() for name in FOLDERS}

    def folder_name(self, ref: str) -> str | None:
        """Resolve a well-known folder name (any case, Graph spellings) or a folder id."""
        lowered = ref.lower()
        aliases = {"sent": "sentitems", "sentitems": "sentitems", "draft": "drafts", "trash": "deleteditems"}
        lowered = aliases.get(lowered, lowered)
        if lowered in FOLDERS or (lowered == ARCHIVE and self.provider == "gmail"):
            return lowered
        return next((name for name, fid in self.folder_ids.items() if fid == ref), None)

    def get(self, any_id: str) -> Message | None:
        message = self.messages.get(any_id)
        if message is None and any_id in self._aliases:
            message = self.messages.get(self._aliases[any_id])
        return message

    def in_folder(self, folder: str) -> list[Message]:
        return [m for m in self.messages.values() if m.folder == folder]

    def by_internet_message_id(self, internet_message_id: str) -> list[Message]:
        found = self._by_imid.get(internet_message_id.strip().lower(), [])
        return [self.messages[i] for i in found if i in self.messages]

    def changes_since(self, seq: int) -> Iterator[Change]:
        # seqs are dense and start at 1, so entry i holds seq i+1.
        return iter(self.changes[max(seq, 0):])

    def to_summary(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "address": self.address,
            "name": self.name,
            "userId": self.user_id,
            "tenantId": self.tenant_id,
            "revoked": self.revoked,
            "messageCount": len(self.messages),
            "seq": self.seq,
        }


@dataclass(frozen=True)
class MessageEvent:
    mailbox: Mailbox
    change: Change
    message: Message | None  # None once deleted


@dataclass(frozen=True)
class MailboxEvent:
    mailbox: Mailbox
    kind: str  # "created" | "revoked" | "tokens_expired" | "cursors_expired"


Listener = Callable[[MessageEvent | MailboxEvent], None]


def _system_labels(message: Message) -> set[str]:
    labels = {label for label in message.labels if label not in FOLDER_LABELS.values() and label != "UNREAD"}
    if message.folder in FOLDER_LABELS:
        labels.add(FOLDER_LABELS[message.folder])
    if not message.is_read:
        labels.add("UNREAD")
    return labels


class Store:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._mailboxes: dict[str, Mailbox] = {}
        self._listeners: list[Listener] = []

    # -- listeners -------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, event: MessageEvent | MailboxEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    # -- mailboxes -------------------------------------------------------
    def create_mailbox(self, provider: str, address: str, name: str = "") -> tuple[Mailbox, bool]:
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}")
        with self._lock:
            existing = self._mailboxes.get(address.lower())
            if existing is not None:
                return existing, False
            mailbox = Mailbox(provider=provider, address=address, name=name or address.split("@")[0])
            self._mailboxes[address.lower()] = mailbox
        self._emit(MailboxEvent(mailbox, "created"))
        return mailbox, True

    def mailbox(self, address: str) -> Mailbox | None:
        return self._mailboxes.get(address.strip().lower())

    def mailbox_by_user_id(self, user_id: str) -> Mailbox | None:
        return next((m for m in self._mailboxes.values() if m.user_id == user_id), None)

    def mailboxes(self, provider: str | None = None) -> list[Mailbox]:
        return [m for m in self._mailboxes.values() if provider is None or m.provider == provider]

    def reset(self) -> None:
        with self._lock:
            self._mailboxes.clear()

    def mailbox_event(self, mailbox: Mailbox, kind: str) -> None:
        """Flag changes that providers react to (revocation, expiries)."""
        with self._lock:
            if kind == "revoked":
                mailbox.revoked = True
            elif kind == "cursors_expired":
                mailbox.cursor_floor = mailbox.seq + 1
                mailbox.cursor_epoch += 1
        self._emit(MailboxEvent(mailbox, kind))

    # -- messages --------------------------------------------------------
    def _record(
        self,
        mailbox: Mailbox,
        message: Message,
        kind: str,
        before: tuple[str | None, frozenset[str], str | None],
        changed: Iterable[str],
    ) -> Change:
        mailbox.seq += 1
        alive = kind != "deleted"
        change = Change(
            seq=mailbox.seq,
            message_id=message.id,
            kind=kind,
            folder_before=before[0],
            folder_after=message.folder if alive else None,
            labels_before=before[1],
            labels_after=frozenset(message.labels) if alive else frozenset(),
            changed=frozenset(changed),
            rest_id_before=before[2],
            at=ids.utcnow(),
            conversation_id=message.conversation_id,
        )
        message.history_seq = change.seq
        mailbox.changes.append(change)
        return change

    def add_message(self, mailbox: Mailbox, message: Message) -> Message:
        with self._lock:
            message.labels = _system_labels(message)
            mailbox.messages[message.id] = message
            mailbox._aliases[message.rest_id] = message.id
            mailbox._by_imid.setdefault(message.internet_message_id.lower(), []).append(message.id)
            change = self._record(mailbox, message, "added", (None, frozenset(), None), ())
        self._emit(MessageEvent(mailbox, change, message))
        return message

    def update_message(self, mailbox: Mailbox, message: Message, **values: Any) -> Change | None:
        """Set attributes of a message; records a change only if something differs."""
        with self._lock:
            before = (message.folder, frozenset(message.labels), message.rest_id)
            changed = [name for name, value in values.items() if getattr(message, name) != value]
            if not changed:
                return None
            if "internet_message_id" in changed:
                old = mailbox._by_imid.get(message.internet_message_id.lower(), [])
                if message.id in old:
                    old.remove(message.id)
                mailbox._by_imid.setdefault(str(values["internet_message_id"]).lower(), []).append(message.id)
            for name in changed:
                setattr(message, name, values[name])
            if "folder" in changed and mailbox.provider == "outlook":
                # Outlook's default ids are folder-bound: a move mints a new one.
                mailbox._aliases.pop(message.rest_id, None)
                message.rest_id = ids.graph_rest_id()
                mailbox._aliases[message.rest_id] = message.id
            message.labels = _system_labels(message)
            message.last_modified = ids.utcnow()
            message.change_key = ids.change_key()
            change = self._record(mailbox, message, "updated", before, changed)
        self._emit(MessageEvent(mailbox, change, message))
        return change

    def delete_message(self, mailbox: Mailbox, message: Message) -> Change:
        with self._lock:
            before = (message.folder, frozenset(message.labels), message.rest_id)
            mailbox.messages.pop(message.id, None)
            mailbox._aliases.pop(message.rest_id, None)
            same_imid = mailbox._by_imid.get(message.internet_message_id.lower(), [])
            if message.id in same_imid:
                same_imid.remove(message.id)
            change = self._record(mailbox, message, "deleted", before, ())
        self._emit(MessageEvent(mailbox, change, None))
        return change


def new_message(mailbox: Mailbox, folder: str, **fields: Any) -> Message:
    """A message object with ids in the mailbox provider's style (not yet stored)."""
    immutable = ids.new_message_id(mailbox.provider)
    rest = ids.graph_rest_id() if mailbox.provider == "outlook" else immutable
    # Gmail names a thread after its first message.
    fields.setdefault("conversation_id", immutable if mailbox.provider == "gmail" else ids.new_conversation_id(mailbox.provider))
    fields.setdefault("internet_message_id", ids.internet_message_id())
    return Message(id=immutable, rest_id=rest, folder=folder, **fields)
