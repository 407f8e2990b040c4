"""Contacts CRUD for a sub-account.

A contact's email is unique per sub-account case-insensitively (the
``email_normalized`` column carries the unique constraint). Addresses and names end
up in outbound headers, so anything that could inject a header (CR/LF, other
control characters) is refused here, at the door.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from db.models import Contact
from db.repositories import contacts as repo
from db.repositories.writes import AlreadyExists
from sync_engine.rules.addresses import is_valid_email, normalize_email
from sync_engine.services.collaborators import SessionFactory
from sync_engine.services.errors import NotFound, ServiceError
from vocabulary import ContactSource


class ContactErrorCode:
    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_NAME = "INVALID_NAME"
    DUPLICATE_EMAIL = "DUPLICATE_EMAIL"


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def validate_email_address(value: str, field: str = "email") -> str:
    """The address, trimmed, or ``ServiceError(INVALID_EMAIL)``."""
    if _CONTROL_CHARS.search(value):
        raise ServiceError(ContactErrorCode.INVALID_EMAIL, "email address must not contain line breaks", field)
    email = value.strip()
    # The same notion of a valid address as the send path, so every contact is sendable.
    if not is_valid_email(email):
        raise ServiceError(ContactErrorCode.INVALID_EMAIL, f"{email!r} is not a valid email address", field)
    return email


def validate_display_name(value: str | None, field: str = "name") -> str | None:
    if value is None:
        return None
    if _CONTROL_CHARS.search(value):
        raise ServiceError(ContactErrorCode.INVALID_NAME, "name must not contain line breaks", field)
    name = value.strip()
    if len(name) > 200:
        raise ServiceError(ContactErrorCode.INVALID_NAME, "name is longer than 200 characters", field)
    return name or None


def _duplicate(email: str) -> ServiceError:
    return ServiceError(ContactErrorCode.DUPLICATE_EMAIL, f"a contact with email {email} already exists", "email")


@dataclass(frozen=True)
class ContactService:
    sessions: SessionFactory

    async def create_contact(self, *, sub_account_id: uuid.UUID, email: str, name: str | None = None,
                             source: ContactSource = ContactSource.CRM) -> Contact:
        email = validate_email_address(email)
        name = validate_display_name(name)
        normalized = normalize_email(email)
        try:
            async with self.sessions.begin() as session:
                if await repo.email_taken(session, sub_account_id, normalized):
                    raise _duplicate(email)
                contact = Contact(sub_account_id=sub_account_id, email=email, email_normalized=normalized, name=name,
                                  source=source)
                await repo.add_contact(session, contact)
        except AlreadyExists as exc:  # lost a race with a concurrent insert of the same address
            raise _duplicate(email) from exc
        return contact

    async def update_contact(self, *, sub_account_id: uuid.UUID, contact_id: uuid.UUID, email: str | None = None,
                             name: str | None = None, clear_name: bool = False) -> Contact:
        """Change the email and/or the name; ``clear_name`` removes the name."""
        new_email = validate_email_address(email) if email is not None else None
        new_name = validate_display_name(name)
        try:
            async with self.sessions.begin() as session:
                contact = await repo.contact_in_sub_account(session, sub_account_id, contact_id)
                if contact is None:
                    raise NotFound("contact", "id")
                if new_email is not None and normalize_email(new_email) != contact.email_normalized:
                    normalized = normalize_email(new_email)
                    if await repo.email_taken(session, sub_account_id, normalized):
                        raise _duplicate(new_email)
                    contact.email_normalized = normalized
                if new_email is not None:
                    contact.email = new_email
                if clear_name:
                    contact.name = None
                elif new_name is not None:
                    contact.name = new_name
                await repo.save_contact(session, contact)
        except AlreadyExists as exc:  # only a new address can collide (the unique key is the email)
            raise _duplicate(new_email or "") from exc
        return contact

    async def delete_contact(self, *, sub_account_id: uuid.UUID, contact_id: uuid.UUID) -> uuid.UUID:
        """Threads keep their messages; their contact link is cleared by the foreign key."""
        async with self.sessions.begin() as session:
            contact = await repo.contact_in_sub_account(session, sub_account_id, contact_id)
            if contact is None:
                raise NotFound("contact", "id")
            await repo.delete_contact(session, contact)
        return contact_id
