"""Prometheus metrics, one registry for the process (served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

CALLBACKS = Counter(
    "siyu_callbacks_total", "Callbacks received, by app and outcome", ["app", "outcome"], registry=REGISTRY
)
ACK_LATENCY = Histogram(
    "siyu_callback_ack_seconds",
    "Time from request to acknowledgement of a callback",
    ["app"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
INBOX_PROCESSED = Counter(
    "siyu_inbox_processed_total", "Inbox rows processed, by outcome", ["outcome"], registry=REGISTRY
)
INBOX_LAG = Gauge("siyu_inbox_lag_seconds", "Age of the oldest pending inbox row", registry=REGISTRY)
INBOX_PENDING = Gauge("siyu_inbox_pending", "Inbox rows waiting to be processed", registry=REGISTRY)
OUTBOX = Counter(
    "siyu_outbox_total",
    "Outbox sends by outcome (sent, retried, failed)",
    ["kind", "outcome"],
    registry=REGISTRY,
)
WECOM_CALLS = Counter(
    "siyu_wecom_calls_total", "WeCom API calls by API and errcode", ["api", "errcode"], registry=REGISTRY
)
WECOM_LATENCY = Histogram("siyu_wecom_call_seconds", "WeCom API call latency", ["api"], registry=REGISTRY)
TIMERS_FIRED = Counter("siyu_timers_fired_total", "Durable timers fired", ["kind"], registry=REGISTRY)
SOP_STEPS = Counter(
    "siyu_sop_steps_total",
    "SOP step outcomes (sent, deferred, skipped, branched, exited, done)",
    ["outcome"],
    registry=REGISTRY,
)
