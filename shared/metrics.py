"""The bridge's metrics, through OpenTelemetry; `install_prometheus` exposes them for scraping."""

from __future__ import annotations

import functools

from opentelemetry import metrics
from opentelemetry.metrics import Counter, Histogram

_meter = metrics.get_meter("erpnext_bridge")


@functools.cache
def install_prometheus() -> None:
    """Route every instrument to the Prometheus registry (once per process)."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider

    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))


webhooks_received: Counter = _meter.create_counter(
    "bridge_webhooks_received",
    description="ERPNext webhooks received, by doctype, event and outcome",
)
publish_latency: Histogram = _meter.create_histogram(
    "bridge_publish_latency", unit="s", description="Time to confirm every publish of one webhook"
)
consumer_outcomes: Counter = _meter.create_counter(
    "bridge_consumer_outcomes",
    description="Events handled by consumers: applied, duplicate, stale, rejected, retried",
)
dead_letters: Counter = _meter.create_counter(
    "bridge_dead_letters", description="Messages that exhausted their deliveries, by consumer"
)
