"""The worker's own Prometheus endpoint: a worker serves no HTTP, so when
``EMAILSYNC_WORKER_METRICS_PORT`` is set it gets a small one (prometheus_client's, in a
thread) exposing this process's counters (job runs, events, bus reconnects, restarts).

Queue depth and sync lag are not repeated here: they are the deployment's, read by the
API's ``/metrics`` from the database and the queue.
"""

from __future__ import annotations

import threading

from prometheus_client import start_http_server

# Imported for its side effect: the counters it defines are registered before the endpoint
# serves its first scrape (the worker's own modules load after the endpoint is up).
from sync_engine import metrics  # noqa: F401
from sync_engine.settings import Settings

_lock = threading.Lock()
_serving: tuple[str, int] | None = None


def start_worker_metrics(settings: Settings) -> tuple[str, int] | None:
    """Serve ``/metrics`` on the configured port (nothing when it is 0). Once per process:
    calling it again (a restarted queue loop) keeps the endpoint already serving."""
    global _serving
    if not settings.worker_metrics_port:
        return None
    with _lock:
        if _serving is None:
            start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
            _serving = (settings.worker_metrics_host, settings.worker_metrics_port)
    return _serving
