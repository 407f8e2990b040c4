"""The GraphQL-over-HTTP spec, checked by graphql-http's own server audit (the reference
implementation's test suite for servers), run with Node against the real endpoint.

`scripts/test` installs the audit (tests/audit, `npm ci`); introspection is on here, as
in `emailsync dev`, because the audit's variable checks query `__type`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.integration.api.conftest import Api

AUDIT = Path(__file__).resolve().parents[2] / "audit"


async def test_the_graphql_http_server_audit_passes(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed to run the graphql-http audit"
    assert (AUDIT / "node_modules" / "graphql-http").is_dir(), "run scripts/test (it installs tests/audit)"
    monkeypatch.setattr(api.rt.settings, "introspection", True)
    process = await asyncio.create_subprocess_exec(
        node, str(AUDIT / "audit.mjs"), f"{api.base_url}/graphql", api.token("user_a"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    results = json.loads(out)
    assert len(results) > 50  # the whole audit ran
    problems = [(r["status"], r["id"], r["name"], r["reason"]) for r in results if r["status"] in ("error", "warn")]
    assert problems == []
