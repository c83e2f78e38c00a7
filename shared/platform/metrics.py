"""The bridge's metrics, through OpenTelemetry; `install_prometheus` exposes them for scraping."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, ObservableGauge, Observation

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

upstream_latency: Histogram = _meter.create_histogram(
    "bridge_upstream_latency",
    unit="s",
    description="Calls to outside services, by service and outcome (ok, rejected, unavailable, throttled, error)",
)
upstream_errors: Counter = _meter.create_counter(
    "bridge_upstream_errors",
    description="Failed calls to outside services, by service and outcome (circuit_open: not attempted)",
)
circuit_transitions: Counter = _meter.create_counter(
    "bridge_circuit_transitions",
    description="Circuit breaker state changes, by service and the state entered",
)

CircuitStates = Callable[[], Iterable[tuple[str, int]]]
_circuit_sources: list[CircuitStates] = []


def watch_circuits(states: CircuitStates) -> None:
    """Report `states()` (service, 0 closed / 1 half-open / 2 open) at every collection."""
    _circuit_sources.append(states)


def _observe_circuits(options: CallbackOptions) -> Iterable[Observation]:
    for states in _circuit_sources:
        for service, state in states():
            yield Observation(state, {"service": service})


circuit_state: ObservableGauge = _meter.create_observable_gauge(
    "bridge_circuit_state",
    callbacks=[_observe_circuits],
    description="Circuit breaker state per outside service: 0 closed, 1 half-open, 2 open",
)

# ---- error records (observability: pending errors) -------------------------------------------

PendingCount = Callable[[], int]
_PENDING_EVERY_S = 60.0
_pending: dict[str, object] = {"count": None, "value": None, "at": float("-inf")}


def watch_pending_errors(count: PendingCount) -> None:
    """Report the number of pending error records, counted by `count()` at most once a minute.

    A count, not a sum of this instance's writes: records are written by every consumer
    instance and resolved by people and replays, so only the store knows the total. Firestore
    counts with an aggregation query (one read per 1,000 records), run at collection time and
    cached, so a scrape every few seconds costs one query a minute. The last registration wins.
    """
    _pending.update(count=count, value=None, at=float("-inf"))


def _observe_pending(options: CallbackOptions) -> Iterable[Observation]:
    count = _pending["count"]
    if not callable(count):
        return
    now = time.monotonic()
    at = _pending["at"]
    if isinstance(at, float) and now - at >= _PENDING_EVERY_S:
        _pending["at"] = now
        try:
            _pending["value"] = int(count())
        except Exception:
            # A scrape must not fail because Firestore is slow: the last count stays shown.
            logging.getLogger(__name__).warning("could not count pending errors", exc_info=True)
    value = _pending["value"]
    if isinstance(value, int):
        yield Observation(value)


pending_errors: ObservableGauge = _meter.create_observable_gauge(
    "bridge_pending_errors",
    callbacks=[_observe_pending],
    description="Error records waiting for a person (status pending), counted at most once a minute",
)
