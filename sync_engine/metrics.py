"""Prometheus metrics of one process (API or worker), exposed at ``/metrics``.

Counters are incremented where the thing happens; gauges whose truth is in the
database or the queue (queue depth, sync lag) are read when scraped, so they are
right in every process and cost nothing between scrapes.
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
SUBSCRIBERS = Gauge("emailsync_subscribers", "Live GraphQL subscriptions in this process.")
BUS_RECONNECTS = Counter("emailsync_event_bus_reconnects_total", "Times the event bus reconnected to Redis.")
WORKER_RESTARTS = Counter("emailsync_worker_restarts_total", "Times the job worker restarted its queue loop.")


# --- Read at scrape time (added for /metrics; see OperationsCollector) ---------------------


@dataclass(frozen=True)
class OperationsReading:
    """What one scrape read from the database and the queue. ``None``: not readable now
    (no Redis in this deployment, or the dependency did not answer in time)."""

    database_up: bool
    redis_up: bool | None = None
    queue_depth: int | None = None
    # (connection id, seconds since its last sync, sync requests not yet served)
    connection_lag: tuple[tuple[str, float, int], ...] = ()
    connections_by_status: dict[str, int] = field(default_factory=dict)


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
            lag = GaugeMetricFamily("emailsync_sync_lag_seconds",
                                    "Seconds since a live mailbox connection last finished a sync.", labels=["connection"])
            pending = GaugeMetricFamily("emailsync_sync_pending_requests",
                                        "Sync requests of a live mailbox connection not yet served.", labels=["connection"])
            for connection_id, seconds, requests in r.connection_lag:
                lag.add_metric([connection_id], seconds)
                pending.add_metric([connection_id], requests)
            yield lag
            yield pending
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
