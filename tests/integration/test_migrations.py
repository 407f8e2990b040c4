"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from db.base import Base
from db.engine import create_engine


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)  # the fixture's database is migrated to head
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    finally:
        await engine.dispose()
    assert diff == []
