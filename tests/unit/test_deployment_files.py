"""compose.yaml and the Dockerfile describe a deployment that can run: the services the
README promises, settings that exist, health checks on the right endpoints, and an image
that holds every package pyproject.toml installs. (No image can be pulled here, so this
checks structure; ``docker compose config`` is not available offline.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from sync_engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {"serve", "worker", "migrate"}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _running(services: dict, command: str) -> dict[str, dict]:
    return {name: s for name, s in services.items() if s.get("command", [None, None])[:2] == ["emailsync", command]}


def _replicas(service: dict) -> int:
    return int(service.get("deploy", {}).get("replicas", 1))


def test_compose_has_the_deployment_shape() -> None:
    services = _compose()["services"]
    assert {"postgres", "redis", "migrate"} <= set(services)
    for name, service in services.items():
        if "command" in service and service["command"][0] == "emailsync":
            assert service["command"][1] in COMMANDS, name
    apis, workers = _running(services, "serve"), _running(services, "worker")
    assert sum(_replicas(s) for s in apis.values()) >= 2 and sum(_replicas(s) for s in workers.values()) >= 2
    assert services["migrate"]["restart"] == "no"  # one-shot

    published = []
    for name, api in apis.items():
        health = " ".join(api["healthcheck"]["test"])
        assert "/readyz" in health and ":8000/" in health and "--port 8000" in " ".join(api["command"]), name
        published += [port.rsplit(":", 1)[0] for port in api["ports"]]
    assert len(published) == len(set(published)), published  # one host port per replica

    for name, service in {**apis, **workers}.items():
        after = service["depends_on"]
        assert after["migrate"]["condition"] == "service_completed_successfully", name
        assert after["postgres"]["condition"] == after["redis"]["condition"] == "service_healthy", name
    for name, worker in workers.items():
        port = worker["environment"]["EMAILSYNC_WORKER_METRICS_PORT"]
        assert f":{port}/metrics" in " ".join(worker["healthcheck"]["test"]), name
    # PostgreSQL is healthy once it accepts TCP connections, as the services make them
    # (during initialisation it answers on its Unix socket only).
    postgres = services["postgres"]["healthcheck"]["test"]
    assert postgres[:2] == ["CMD", "pg_isready"] and postgres[postgres.index("-h") + 1] == "127.0.0.1", postgres
    assert postgres[postgres.index("-U") + 1] == services["postgres"]["environment"]["POSTGRES_USER"], postgres
    assert postgres[postgres.index("-d") + 1] == services["postgres"]["environment"]["POSTGRES_DB"], postgres
    # Redis is healthy when PING answers PONG (not the LOADING error it gives while reading its AOF).
    redis = " ".join(services["redis"]["healthcheck"]["test"])
    assert "redis-cli" in redis and "ping" in redis and "PONG" in redis, redis


def test_compose_sets_only_real_settings() -> None:
    fields = set(Settings.model_fields)
    for name, service in _compose()["services"].items():
        for key in service.get("environment") or {}:
            if key.startswith("EMAILSYNC_"):
                assert key.removeprefix("EMAILSYNC_").lower() in fields, (name, key)
        env = service.get("environment") or {}
        if service.get("command", [""])[0] == "emailsync":
            assert env["EMAILSYNC_DATABASE_URL"].startswith("postgresql+asyncpg://"), name
            assert env["EMAILSYNC_REDIS_URL"].startswith("redis://"), name
            # Secrets come from the operator's .env, never from this file.
            for secret in ("EMAILSYNC_ENCRYPTION_KEYS", "EMAILSYNC_JWT_KEY"):
                assert re.fullmatch(r"\$\{" + secret + r":\?[^}]+\}", env[secret]), (name, secret)


def test_the_image_installs_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert re.search(rf"^COPY {package} \./{package}$", dockerfile, re.MULTILINE), package
        assert package not in ignored, package
    assert re.search(r"^COPY pyproject\.toml README\.md \./$", dockerfile, re.MULTILINE)  # readme = "README.md"
    assert re.search(r"^RUN pip install \. ", dockerfile, re.MULTILINE)
    assert '"emailsync", "serve", "--host", "0.0.0.0"' in dockerfile
