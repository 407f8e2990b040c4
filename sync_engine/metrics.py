"""Prometheus metrics of one process (API or worker), exposed at ``/metrics``.

Counters are incremented where the thing happens; gauges whose truth is in the
database or the queue (queue depth, sync lag) are read when scraped, so they are
right in every process and cost nothing between scrapes. One such reading serves every
scrape for a few seconds (``api.health``), and it names at most
``CONNECTION_SERIES_LIMIT`` connections (aggregates cover the rest), so the size of a
scrape stays bounded however many mailboxes there are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REQUESTS = Counter("emailsync_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
REQUEST_SECONDS = Histogram("emailsync_http_request_seconds", "Time to answer an HTTP request.", ["route"])
JOB_RUNS = Counter("emailsync_job_runs_total", "Job runs by outcome (ok, retry, failed).", ["job", "outcome"])
EVENTS_RECORDED = Counter("emailsync_events_recorded_total", "Domain events written to the event log.")
EVENTS_RELAYED = Counter("emailsync_events_relayed_total", "Domain events relayed to subscribers' processes.")
EVENTS_DELIVERED = Counter("emailsync_events_delivered_total", "Events yielded to GraphQL subscribers.")
SUBSCRIPTION_EXECUTIONS = Counter(
    "emailsync_subscription_executions_total",
    "Executions of a subscription document for one event; subscribers who would get the same answer share one.")
SUBSCRIBERS = Gauge("emailsync_subscribers", "Live GraphQL subscriptions in this process.")
BUS_RECONNECTS = Counter("emailsync_event_bus_reconnects_total", "Times the event bus reconnected to Redis.")
WORKER_RESTARTS = Counter("emailsync_worker_restarts_total", "Times the job worker restarted its queue loop.")
OPERATIONS_READINGS = Counter("emailsync_operations_readings_total",
                              "Times /metrics read the database and the queue (scrapes in between share a reading).")

# Per-connection series shown at most (the furthest behind); the aggregates cover them all.
CONNECTION_SERIES_LIMIT = 1000


# --- Read at scrape time (added for /metrics; see OperationsCollector) ---------------------


@dataclass(frozen=True)
class OperationsReading:
    """What one scrape read from the database and the queue. ``None``: not readable now
    (no Redis in this deployment, or the dependency did not answer in time)."""

    database_up: bool
    redis_up: bool | None = None
    queue_depth: int | None = None
    # (connection id, seconds since its last sync, sync requests not yet served), for the
    # CONNECTION_SERIES_LIMIT connections furthest behind only
    connection_lag: tuple[tuple[str, float, int], ...] = ()
    connections_by_status: dict[str, int] = field(default_factory=dict)
    # Over every live connection: how many, the longest lag, the sync requests not yet served.
    live_connections: int = 0
    max_lag_seconds: float = 0.0
    pending_requests: int = 0


class OperationsCollector(Collector):
    """Gauges whose truth is in the database or the queue, built from one reading."""

    def __init__(self, reading: OperationsReading) -> None:
        self._reading = reading

    def collect(self) -> Iterator[Metric]:
        r = self._reading
        up = GaugeMetricFamily("emailsync_dependency_up", "Whether a dependency answered this scrape (1) or not (0).",
                               labels=["dependency"])
        up.add_metric(["database"], 1 if r.database_up else 0)
        if r.redis_up is not None:
            up.add_metric(["redis"], 1 if r.redis_up else 0)
        yield up
        if r.queue_depth is not None:
            yield GaugeMetricFamily("emailsync_queue_depth", "Jobs in the Redis queue (waiting, deferred or running).",
                                    value=r.queue_depth)
        if r.database_up:
            cap = f"only the {CONNECTION_SERIES_LIMIT:,} live connections furthest behind"
            lag = GaugeMetricFamily("emailsync_sync_lag_seconds",
                                    f"Seconds since a live mailbox connection last finished a sync ({cap}; "
                                    "see emailsync_sync_lag_max_seconds).", labels=["connection"])
            pending = GaugeMetricFamily("emailsync_sync_pending_requests",
                                        f"Sync requests of a live mailbox connection not yet served ({cap}; "
                                        "see emailsync_sync_backlog_requests).", labels=["connection"])
            for connection_id, seconds, requests in r.connection_lag:
                lag.add_metric([connection_id], seconds)
                pending.add_metric([connection_id], requests)
            yield lag
            yield pending
            yield GaugeMetricFamily("emailsync_live_connections", "Live mailbox connections (all of them).",
                                    value=r.live_connections)
            yield GaugeMetricFamily("emailsync_sync_lag_max_seconds",
                                    "Longest time since a live mailbox connection last finished a sync (all of them).",
                                    value=r.max_lag_seconds)
            yield GaugeMetricFamily("emailsync_sync_backlog_requests",
                                    "Sync requests not yet served, over all live mailbox connections.",
                                    value=r.pending_requests)
            by_status = GaugeMetricFamily("emailsync_connections", "Current mailbox connections by status.",
                                          labels=["status"])
            for status, count in sorted(r.connections_by_status.items()):
                by_status.add_metric([status], count)
            yield by_status


def exposition(reading: OperationsReading | None = None) -> bytes:
    """This process's metrics in the Prometheus text format, plus one scrape's readings."""
    body = generate_latest(REGISTRY)
    if reading is not None:
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(OperationsCollector(reading))
        body += generate_latest(scrape)
    return body
