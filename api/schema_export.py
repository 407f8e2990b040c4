"""Write the committed ``schema.graphql`` (what ``strawberry export-schema api.schema:schema``
prints). ``python -m api.schema_export [path]``; CI's drift test compares the file."""

from __future__ import annotations

import sys
from pathlib import Path

from strawberry.printer import print_schema

from api.schema import schema

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema.graphql"


def render() -> str:
    return print_schema(schema) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else SCHEMA_PATH
    path.write_text(render(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
