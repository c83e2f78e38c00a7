"""The circuit breaker's state machine and the call policy, on a fake clock: no network."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from shared.errors import ConfigurationError, InvalidPayload, UpstreamRejected, UpstreamUnavailable
from shared.platform import metrics
from shared.platform.backoff import Backoff
from shared.platform.resilience import (
    BREAKERS,
    BreakerSettings,
    CircuitBreakers,
    CircuitOpen,
    State,
    call,
)
from tests.helpers.clocks import Ticker

SETTINGS = BreakerSettings(threshold=3, pause_s=10.0, max_pause_s=40.0, trial_timeout_s=60.0)
WALL = datetime(2026, 12, 2, 9, 30, 0, tzinfo=UTC)


class Service:
    """A stand-in callable: `down` raises an outage; counts the calls that reached it."""

    def __init__(self) -> None:
        self.down = False
        self.error: Exception | None = None
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.down:
            raise UpstreamUnavailable("HTTP 503", service="svc")
        if self.error is not None:
            raise self.error
        return "answer"


@pytest.fixture
def clock() -> Ticker:
    return Ticker(1000.0)


@pytest.fixture
def breakers(clock: Ticker) -> CircuitBreakers:
    return CircuitBreakers(SETTINGS, clock=clock, wall=lambda: WALL)


def once(breakers: CircuitBreakers, service: Service) -> str:
    return breakers.call("svc", service, what="read", backoff=None)


def fail(breakers: CircuitBreakers, service: Service, times: int) -> None:
    for _ in range(times):
        with pytest.raises(UpstreamUnavailable):
            once(breakers, service)


def test_circuit_opens_after_threshold_outages_and_fails_fast_when_the_service_is_down(
    breakers: CircuitBreakers, clock: Ticker
) -> None:
    service = Service()
    service.down = True
    fail(breakers, service, 2)
    assert breakers.get("svc").state is State.CLOSED
    fail(breakers, service, 1)
    assert breakers.get("svc").state is State.OPEN

    clock.advance(4)
    with pytest.raises(CircuitOpen) as refused:
        once(breakers, service)

    assert service.calls == 3
    assert refused.value.retry_after_s == pytest.approx(6.0)
    assert refused.value.service == "svc"
    assert "open until 09:30:06Z" in str(refused.value)
    assert "read not attempted" in str(refused.value)


def test_success_between_outages_resets_the_count_when_closed(breakers: CircuitBreakers) -> None:
    service = Service()
    for _ in range(3):
        service.down = True
        fail(breakers, service, 2)
        service.down = False
        assert once(breakers, service) == "answer"
    assert breakers.get("svc").state is State.CLOSED


@pytest.mark.parametrize(
    "refusal",
    [
        UpstreamRejected("HTTP 404", service="svc"),
        InvalidPayload("bad"),
        ConfigurationError("HTTP 401"),
    ],
)
def test_refusals_count_as_the_service_being_up_when_between_outages(
    breakers: CircuitBreakers, refusal: Exception
) -> None:
    service = Service()
    service.down = True
    fail(breakers, service, 2)
    service.down, service.error = False, refusal
    with pytest.raises(type(refusal)):
        once(breakers, service)
    service.down = True
    fail(breakers, service, 2)
    assert breakers.get("svc").state is State.CLOSED


@pytest.mark.parametrize(
    "neutral",
    [UpstreamUnavailable("429 for one chat", service="svc", retry_after_s=3), ValueError("bug")],
)
def test_throttles_and_our_own_errors_count_neither_way_when_closed(
    breakers: CircuitBreakers, neutral: Exception
) -> None:
    service = Service()
    service.error = neutral
    for _ in range(SETTINGS.threshold * 2):
        with pytest.raises(type(neutral)):
            once(breakers, service)
    assert breakers.get("svc").state is State.CLOSED
    service.error, service.down = None, True
    fail(breakers, service, 2)
    service.down, service.error = False, neutral
    with pytest.raises(type(neutral)):
        once(breakers, service)
    service.down, service.error = True, None
    fail(breakers, service, 1)  # the third outage in a row: the throttle did not reset the count
    assert breakers.get("svc").state is State.OPEN


def test_one_trial_closes_the_circuit_when_it_succeeds_after_the_pause(
    breakers: CircuitBreakers, clock: Ticker
) -> None:
    service = Service()
    service.down = True
    fail(breakers, service, 3)
    clock.advance(10)
    assert breakers.get("svc").state is State.HALF_OPEN

    service.down = False
    assert once(breakers, service) == "answer"

    assert breakers.get("svc").state is State.CLOSED
    assert service.calls == 4
    service.down = True
    fail(breakers, service, 2)  # a fresh count after closing
    assert breakers.get("svc").state is State.CLOSED


def test_pause_doubles_up_to_the_cap_when_trials_fail(
    breakers: CircuitBreakers, clock: Ticker
) -> None:
    service = Service()
    service.down = True
    fail(breakers, service, 3)
    pauses = []
    for _ in range(4):
        clock.advance(1000)
        fail(breakers, service, 1)  # the trial
        with pytest.raises(CircuitOpen) as refused:
            once(breakers, service)
        pauses.append(refused.value.retry_after_s)
    assert pauses == [20.0, 40.0, 40.0, 40.0]
    assert service.calls == 3 + 4

    clock.advance(40)
    service.down = False
    once(breakers, service)
    service.down = True
    fail(breakers, service, 3)
    with pytest.raises(CircuitOpen) as refused:
        once(breakers, service)
    assert refused.value.retry_after_s == 10.0  # a success restores the first pause


def test_only_one_trial_at_a_time_when_half_open(breakers: CircuitBreakers, clock: Ticker) -> None:
    service = Service()
    service.down = True
    fail(breakers, service, 3)
    clock.advance(10)
    breaker = breakers.get("svc")

    assert breaker.admit("first") is True
    with pytest.raises(CircuitOpen, match="trial call is in flight") as refused:
        breaker.admit("second")
    assert refused.value.retry_after_s == SETTINGS.trial_wait_s

    clock.advance(SETTINGS.trial_timeout_s)  # the first trial never reported (an abandoned stream)
    assert breaker.admit("third") is True


def test_a_trial_that_fails_with_our_own_error_frees_the_slot_and_stays_half_open(
    breakers: CircuitBreakers, clock: Ticker
) -> None:
    service = Service()
    service.down = True
    fail(breakers, service, 3)
    clock.advance(10)
    service.down, service.error = False, ValueError("bug")
    with pytest.raises(ValueError, match="bug"):
        once(breakers, service)
    assert breakers.get("svc").state is State.HALF_OPEN
    service.error = None
    assert once(breakers, service) == "answer"
    assert breakers.get("svc").state is State.CLOSED


def test_other_services_stay_closed_when_one_circuit_opens(breakers: CircuitBreakers) -> None:
    sheets, drive = Service(), Service()
    sheets.down = True
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            breakers.call("sheets", sheets, what="read", backoff=None)
    assert breakers.call("drive", drive, what="list", backoff=None) == "answer"
    assert breakers.get("sheets").state is State.OPEN
    assert breakers.get("drive").state is State.CLOSED


def test_no_call_reaches_the_service_after_opening_when_threads_fail_together(
    breakers: CircuitBreakers,
) -> None:
    service = Service()
    service.down = True
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(20):
            with contextlib.suppress(UpstreamUnavailable):
                once(breakers, service)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert breakers.get("svc").state is State.OPEN
    # Each call admitted before the circuit opened reached the service; none after it.
    assert SETTINGS.threshold <= service.calls <= SETTINGS.threshold + 7


# -- the policy: breaker and backoff together --------------------------------------------------


class Sleeps:
    def __init__(self, clock: Ticker) -> None:
        self.clock, self.waits = clock, list[float]()

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


def backoff(clock: Ticker, sleeps: Sleeps, **options: float) -> Backoff:
    settings: dict[str, float] = {"first_s": 1.0, "cap_s": 4.0, "budget_s": 30.0, **options}
    return Backoff(
        **settings,  # type: ignore[arg-type]
        sleep=sleeps,
        clock=clock,
        jitter=lambda: 0.0,
    )


def test_call_retries_a_blip_with_growing_waits_when_the_service_comes_back(
    breakers: CircuitBreakers, clock: Ticker
) -> None:
    service, sleeps = Service(), Sleeps(clock)
    answers = iter([True, True, False])

    def flaky() -> str:
        service.down = next(answers)
        return service()

    result = breakers.call("svc", flaky, what="read", backoff=backoff(clock, sleeps))
    assert result == "answer"
    assert sleeps.waits == [1.0, 2.0]
    assert breakers.get("svc").state is State.CLOSED


def test_call_stops_after_its_attempts_and_raises_the_last_error_when_still_down(
    breakers: CircuitBreakers, clock: Ticker
) -> None:
    service, sleeps = Service(), Sleeps(clock)
    service.down = True
    with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
        breakers.call(
            "svc", service, what="read", backoff=backoff(clock, sleeps, attempts=2, budget_s=99)
        )
    assert service.calls == 2 and sleeps.waits == [1.0]


def test_call_waits_for_the_trial_when_the_circuit_half_opens_within_its_budget(
    breakers: CircuitBreakers, clock: Ticker
) -> None:
    service, sleeps = Service(), Sleeps(clock)
    service.down = True
    fail(breakers, service, 3)
    clock.advance(7)
    service.down = False

    result = breakers.call("svc", service, what="read", backoff=backoff(clock, sleeps))

    assert result == "answer"
    assert sleeps.waits == [pytest.approx(3.0)]  # the time left, not the 1 s backoff
    assert service.calls == 4


def test_call_fails_fast_when_the_circuit_stays_open_longer_than_its_budget(
    breakers: CircuitBreakers, clock: Ticker
) -> None:
    service, sleeps = Service(), Sleeps(clock)
    service.down = True
    fail(breakers, service, 3)
    with pytest.raises(CircuitOpen):
        breakers.call("svc", service, what="read", backoff=backoff(clock, sleeps, budget_s=5))
    assert sleeps.waits == [] and service.calls == 3


def test_honoured_retry_after_is_waited_in_full_when_longer_than_the_backoff(
    clock: Ticker,
) -> None:
    sleeps = Sleeps(clock)
    answers = iter([UpstreamUnavailable("429", service="svc", retry_after_s=7), None])

    def throttled() -> str:
        error = next(answers)
        if error is not None:
            raise error
        return "sent"

    assert backoff(clock, sleeps).run(throttled, what="send") == "sent"
    assert sleeps.waits == [7]


# -- the process registry and its metrics ------------------------------------------------------


def sample(name: str, **labels: str) -> float | None:
    for family in REGISTRY.collect():
        for found in family.samples:
            if found.name == name and labels.items() <= found.labels.items():
                return float(found.value)
    return None


def test_gauge_and_counters_follow_the_state_when_a_process_breaker_opens(clock: Ticker) -> None:
    metrics.install_prometheus()
    BREAKERS.reset(SETTINGS, clock=clock)
    service = Service()
    opened = sample("bridge_circuit_transitions_total", service="gauge-test", state="open") or 0

    call("gauge-test", service, what="read", backoff=None)
    assert sample("bridge_circuit_state", service="gauge-test") == 0
    service.down = True
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            call("gauge-test", service, what="read", backoff=None)
    assert sample("bridge_circuit_state", service="gauge-test") == 2
    with pytest.raises(CircuitOpen):
        call("gauge-test", service, what="read", backoff=None)
    clock.advance(10)
    assert sample("bridge_circuit_state", service="gauge-test") == 1

    assert sample("bridge_circuit_transitions_total", service="gauge-test", state="open") == (
        opened + 1
    )
    assert (
        sample("bridge_upstream_errors_total", service="gauge-test", outcome="circuit_open") or 0
    ) >= 1
    assert (
        sample("bridge_upstream_errors_total", service="gauge-test", outcome="unavailable") or 0
    ) >= 3

    BREAKERS.reset()
    assert sample("bridge_circuit_state", service="gauge-test") is None
