"""schema.graphql at the repository root is the exported schema: regenerate it with
``python -m api.schema_export`` when the schema changes."""

from api.schema_export import SCHEMA_PATH, render


def test_committed_schema_matches_the_code() -> None:
    assert SCHEMA_PATH.exists(), "schema.graphql is missing: run python -m api.schema_export"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render(), (
        "schema.graphql is out of date: run python -m api.schema_export and commit it"
    )
