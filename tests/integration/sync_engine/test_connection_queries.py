"""Connection queries of the sync engine: the retire safety net, colleagues' addresses."""

from __future__ import annotations

from db.engine import create_engine, create_sessionmaker
from db.models import EmailConnection
from db.repositories.connections import unretired_connection_ids
from db.repositories.tenancy import user_addresses
from tests.support.rows import account_with_user


async def test_only_non_current_connections_still_holding_tokens(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions.begin() as session:
            account, user = await account_with_user(session, bcc="sync-retire@bcc.test")

            def connection(address: str, *, current: bool, tokens: str | None) -> EmailConnection:
                conn = EmailConnection(sub_account_id=account.id, user_id=user.id, provider="outlook", address=address,
                                       status="active" if current else "disconnected", is_current=current,
                                       token_ciphertext=tokens)
                session.add(conn)
                return conn

            lost = connection("old@x.test", current=False, tokens="ciphertext")
            connection("retired@x.test", current=False, tokens=None)
            connection("new@x.test", current=True, tokens="ciphertext")
            await session.flush()
            lost_id = lost.id
        async with sessions() as session:
            assert await unretired_connection_ids(session) == [lost_id]
    finally:
        await engine.dispose()


async def test_colleague_mailbox_addresses_fold_case_beyond_ascii(database_url: str) -> None:
    """Confidentiality matches colleagues' mailboxes case-insensitively, "Ü" included
    (SQLite's lower() folds ASCII only)."""

    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions.begin() as session:
            account, user = await account_with_user(session, bcc="sync-fold@bcc.test", email="Ursula@X.test", role="user")
            session.add(EmailConnection(sub_account_id=account.id, user_id=user.id, provider="gmail",
                                        address="ÜRSULA@Müller.example", status="active", is_current=True))
            account_id = account.id
        async with sessions() as session:
            assert await user_addresses(session, account_id) == {"ursula@x.test", "ürsula@müller.example"}
    finally:
        await engine.dispose()
