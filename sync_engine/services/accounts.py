"""Tenancy administration: sub-accounts, users, partner API keys, labs flags.

API keys are shown once, at creation; only their SHA-256 is stored (a key is a
random 256-bit secret, so a plain hash is enough: there is nothing to brute-force).
A sub-account key acts with admin rights in that sub-account; an agency key may
only administer the agency (create sub-accounts, users and keys).
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from db.models import ApiKey, SubAccount, User
from sync_engine.crypto import sha256_hex
from sync_engine.rules.addresses import normalize_email
from sync_engine.runtime import Runtime
from sync_engine.services.contacts import validate_display_name, validate_email_address
from sync_engine.services.errors import NotFound, ServiceError

API_KEY_PREFIX = "esk_"
ROLES = ("admin", "user")


class AccountErrorCode:
    INVALID_NAME = "INVALID_NAME"
    INVALID_ROLE = "INVALID_ROLE"
    DUPLICATE_EMAIL = "DUPLICATE_EMAIL"


def hash_api_key(key: str) -> str:
    return sha256_hex(key)


def _require_name(value: str, field: str = "name") -> str:
    name = validate_display_name(value, field)
    if not name:
        raise ServiceError(AccountErrorCode.INVALID_NAME, "name is required", field)
    return name


def bcc_sync_domain(public_base_url: str) -> str:
    """The domain of BCC sync addresses: the service's public host name. An IP address or
    a bare ``localhost`` is not a mail domain, so development setups get a placeholder."""
    host = (urlsplit(public_base_url).hostname or "").lower()
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = False
    if not host or is_ip or "." not in host:
        return "bcc.emailsync.localhost"
    return host


def new_bcc_sync_address(public_base_url: str) -> str:
    return f"sync-{secrets.token_hex(8)}@{bcc_sync_domain(public_base_url)}"


async def create_sub_account(rt: Runtime, *, agency_id: str, name: str) -> SubAccount:
    name = _require_name(name)
    agency_id = agency_id.strip()
    if not agency_id or len(agency_id) > 64:
        raise ServiceError("INVALID", "agency id must be 1 to 64 characters", "agencyId")
    async with rt.sessions() as session:
        sub_account = SubAccount(
            agency_id=agency_id, name=name, bcc_sync_address=new_bcc_sync_address(rt.settings.public_base_url)
        )
        session.add(sub_account)
        await session.commit()
        return sub_account


async def create_user(
    rt: Runtime,
    *,
    sub_account_id: uuid.UUID,
    email: str,
    name: str | None,
    role: str,
    agency_id: str | None = None,
) -> User:
    """``agency_id``, when given, must own the sub-account (agency-level callers)."""
    email = validate_email_address(email)
    name = validate_display_name(name)
    if role not in ROLES:
        raise ServiceError(AccountErrorCode.INVALID_ROLE, f"role must be one of {', '.join(ROLES)}", "role")
    normalized = normalize_email(email)
    async with rt.sessions() as session:
        stmt = select(SubAccount.id).where(SubAccount.id == sub_account_id)
        if agency_id is not None:
            stmt = stmt.where(SubAccount.agency_id == agency_id)
        if await session.scalar(stmt) is None:
            raise NotFound("sub-account", "subAccountId")
        taken = await session.scalar(
            select(User.id).where(User.sub_account_id == sub_account_id, User.email_normalized == normalized)
        )
        if taken is not None:
            raise ServiceError(AccountErrorCode.DUPLICATE_EMAIL, f"a user with email {email} already exists", "email")
        user = User(sub_account_id=sub_account_id, email=email, email_normalized=normalized, name=name, role=role)
        session.add(user)
        try:
            await session.commit()
        except IntegrityError as exc:
            raise ServiceError(
                AccountErrorCode.DUPLICATE_EMAIL, f"a user with email {email} already exists", "email"
            ) from exc
        return user


async def create_api_key(
    rt: Runtime,
    *,
    name: str,
    sub_account_id: uuid.UUID | None = None,
    agency_id: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key scoped to ``sub_account_id`` (checked to belong to ``agency_id`` when both
    are given) or, with only ``agency_id``, to the agency. Returns the row and the secret,
    which is never retrievable again."""
    name = _require_name(name)
    if sub_account_id is None and agency_id is None:
        raise ServiceError("INVALID", "a key is scoped to a sub-account or an agency", "subAccountId")
    async with rt.sessions() as session:
        if sub_account_id is not None:
            stmt = select(SubAccount.id).where(SubAccount.id == sub_account_id)
            if agency_id is not None:
                stmt = stmt.where(SubAccount.agency_id == agency_id)
            if await session.scalar(stmt) is None:
                raise NotFound("sub-account", "subAccountId")
        secret = secrets.token_urlsafe(32)
        key = f"{API_KEY_PREFIX}{secret}"
        row = ApiKey(
            name=name,
            key_hash=hash_api_key(key),
            prefix=key[: len(API_KEY_PREFIX) + 6],
            sub_account_id=sub_account_id,
            # A sub-account key is not an agency key, even when an agency minted it.
            agency_id=agency_id if sub_account_id is None else None,
        )
        session.add(row)
        await session.commit()
        return row, key


async def set_labs_feature(rt: Runtime, *, sub_account_id: uuid.UUID, two_way_sync: bool) -> SubAccount:
    async with rt.sessions() as session:
        sub_account = await session.get(SubAccount, sub_account_id)
        if sub_account is None:
            raise NotFound("sub-account")
        sub_account.labs_two_way_sync = two_way_sync
        await session.commit()
        return sub_account

