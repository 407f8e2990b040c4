# emailsync: one image for every process of a deployment (`serve`, `worker`, `migrate`).
# See README "Running at scale" and compose.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EMAILSYNC_LOG_FORMAT=json

WORKDIR /app
# The package as pyproject.toml describes it (its dependencies and package data), nothing else.
COPY pyproject.toml README.md ./
COPY emailsync ./emailsync
COPY vocabulary ./vocabulary
COPY api ./api
COPY sync_engine ./sync_engine
COPY db ./db
COPY sandbox ./sandbox
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app emailsync

USER emailsync
EXPOSE 8000
# No HEALTHCHECK here: the same image runs workers, which serve no /readyz. compose.yaml
# gives each service its own (API: GET /readyz; worker: its metrics endpoint).
CMD ["emailsync", "serve", "--host", "0.0.0.0", "--port", "8000"]
