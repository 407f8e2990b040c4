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
from dataclasses import dataclass
from urllib.parse import urlsplit

from db.models import ApiKey, SubAccount, User
from db.repositories import api_keys, tenancy
from db.repositories.writes import AlreadyExists
from sync_engine.crypto import sha256_hex
from sync_engine.rules.addresses import normalize_email
from sync_engine.services.collaborators import SessionFactory
from sync_engine.services.contacts import validate_display_name, validate_email_address
from sync_engine.services.errors import NotFound, ServiceError
from vocabulary import Role

API_KEY_PREFIX = "esk_"
ROLES = tuple(Role)


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


def _duplicate_user(email: str) -> ServiceError:
    return ServiceError(AccountErrorCode.DUPLICATE_EMAIL, f"a user with email {email} already exists", "email")


@dataclass(frozen=True)
class AccountService:
    sessions: SessionFactory
    public_base_url: str  # the BCC sync addresses' domain comes from it

    async def create_sub_account(self, *, agency_id: str, name: str) -> SubAccount:
        name = _require_name(name)
        agency_id = agency_id.strip()
        if not agency_id or len(agency_id) > 64:
            raise ServiceError("INVALID", "agency id must be 1 to 64 characters", "agencyId")
        sub_account = SubAccount(agency_id=agency_id, name=name,
                                 bcc_sync_address=new_bcc_sync_address(self.public_base_url))
        async with self.sessions.begin() as session:
            await tenancy.add_sub_account(session, sub_account)
        return sub_account

    async def create_user(self, *, sub_account_id: uuid.UUID, email: str, name: str | None, role: str,
                          agency_id: str | None = None) -> User:
        """``agency_id``, when given, must own the sub-account (agency-level callers)."""
        email = validate_email_address(email)
        name = validate_display_name(name)
        if role not in ROLES:
            raise ServiceError(AccountErrorCode.INVALID_ROLE, f"role must be one of {', '.join(ROLES)}", "role")
        normalized = normalize_email(email)
        try:
            async with self.sessions.begin() as session:
                if not await tenancy.sub_account_exists(session, sub_account_id, agency_id=agency_id):
                    raise NotFound("sub-account", "subAccountId")
                if await tenancy.user_email_taken(session, sub_account_id, normalized):
                    raise _duplicate_user(email)
                user = User(sub_account_id=sub_account_id, email=email, email_normalized=normalized, name=name,
                            role=Role(role))
                await tenancy.add_user(session, user)
        except AlreadyExists as exc:
            raise _duplicate_user(email) from exc
        return user

    async def create_api_key(self, *, name: str, sub_account_id: uuid.UUID | None = None,
                             agency_id: str | None = None) -> tuple[ApiKey, str]:
        """A new key scoped to ``sub_account_id`` (checked to belong to ``agency_id`` when both
        are given) or, with only ``agency_id``, to the agency. Returns the row and the secret,
        which is never retrievable again."""
        name = _require_name(name)
        if sub_account_id is None and agency_id is None:
            raise ServiceError("INVALID", "a key is scoped to a sub-account or an agency", "subAccountId")
        async with self.sessions.begin() as session:
            if sub_account_id is not None and not await tenancy.sub_account_exists(session, sub_account_id,
                                                                                   agency_id=agency_id):
                raise NotFound("sub-account", "subAccountId")
            key = f"{API_KEY_PREFIX}{secrets.token_urlsafe(32)}"
            row = ApiKey(
                name=name,
                key_hash=hash_api_key(key),
                prefix=key[: len(API_KEY_PREFIX) + 6],
                sub_account_id=sub_account_id,
                # A sub-account key is not an agency key, even when an agency minted it.
                agency_id=agency_id if sub_account_id is None else None,
            )
            await api_keys.add_api_key(session, row)
        return row, key

    async def set_labs_feature(self, *, sub_account_id: uuid.UUID, two_way_sync: bool) -> SubAccount:
        async with self.sessions.begin() as session:
            sub_account = await tenancy.set_two_way_sync(session, sub_account_id, two_way_sync)
            if sub_account is None:
                raise NotFound("sub-account")
        return sub_account
