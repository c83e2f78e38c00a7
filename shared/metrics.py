"""The bridge's metrics, through OpenTelemetry; `install_prometheus` exposes them for scraping."""

from __future__ import annotations

import functools
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
