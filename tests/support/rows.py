"""Minimal rows for repository-level tests: a sub-account with one user."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import SubAccount, User


async def account_with_user(session: AsyncSession, *, bcc: str, email: str = "u@x.test",
                            role: str = "admin") -> tuple[SubAccount, User]:
    account = SubAccount(agency_id="a", name="n", bcc_sync_address=bcc)
    session.add(account)
    await session.flush()
    user = User(sub_account_id=account.id, email=email, email_normalized=email.lower(), role=role)
    session.add(user)
    await session.flush()
    return account, user
