"""Prometheus metrics of the engine and workers (HTTP metrics: ``stockd.api.http_metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCH_SIZE = Histogram(
    "stockd_batch_size",
    "Commands decided and committed together in one engine batch.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
)
EXPIRED_RESERVATIONS = Counter(
    "stockd_expired_reservations_total", "Reservations whose stock the expiry sweeper gave back."
)
WORKER_FAILURES = Counter(
    "stockd_worker_failures_total",
    "Background worker rounds that failed and will be retried.",
    ["worker"],
)
WEBHOOK_ATTEMPTS = Counter(
    "stockd_webhook_attempts_total",
    "Webhook delivery attempts, by the delivery's status after them.",
    ["status"],
)
PERSISTED_ENTRIES = Counter(
    "stockd_persisted_entries_total",
    "Ledger stream entries (one per Redis engine batch) the persister wrote to PostgreSQL.",
)
PERSISTER_LAG = Gauge(
    "stockd_persister_lag_entries",
    "Ledger stream entries acknowledged by Redis but not yet written to PostgreSQL.",
)
