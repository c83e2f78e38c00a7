"""The one policy for calls to outside services: a circuit breaker per service, then bounded
exponential backoff with jitter inside the invocation, then the error tree.

A service that is down fails fast: after `threshold` consecutive outages (UpstreamUnavailable
without a wait the service asked for) its circuit opens, and every call raises CircuitOpen (an
UpstreamUnavailable whose `retry_after_s` is the time left) without touching the network.
Callers that honour retry_after_s (Backoff, the alert drainer) wait for the service instead of
burning their attempts on it; a Pub/Sub redelivery still counts, but costs no timeout. After the
pause one trial call goes through (half-open): success closes the circuit, an outage opens it
again for twice as long, up to `max_pause_s`. An answer that refuses the request (Permanent, a 401) proves the
service is up and counts as a success; a throttle (`retry_after_s` given: Telegram's per-chat
limits, Retry-After) and our own bugs count neither way.

    guarded(service, what)       one attempt: breaker check, latency and outcome metrics
    call(service, fn, what=...)  guarded attempts retried by `backoff` (IN_INVOCATION by default;
                                 backoff=None for calls that are not safe to repeat)

Breakers live in one registry per process (`BREAKERS`), keyed by service name, because an
instance's clients for one service share its fate; `BREAKERS.reset()` forgets them (tests).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from shared.errors import ConfigurationError, Permanent, UpstreamUnavailable
from shared.platform import logs, metrics
from shared.platform.backoff import Backoff

log = logging.getLogger(__name__)
T = TypeVar("T")

IN_INVOCATION = Backoff(first_s=0.2, cap_s=1.0, budget_s=3.0, attempts=3)
"""Retries of a call that is safe to repeat, inside one invocation: a blip, not an outage. The
runtime's redelivery (minutes) is the outer retry; an open circuit's wait outlasts this budget,
so an open circuit is not waited for here."""


class State(enum.IntEnum):
    """A circuit's state; the value is what the `bridge_circuit_state` gauge shows."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class Outcome(enum.Enum):
    OK = "ok"
    REJECTED = "rejected"  # the service answered and refused: it is up
    UNAVAILABLE = "unavailable"  # an outage: counts towards opening
    THROTTLED = "throttled"  # the service named a wait: up, but not a success either
    ERROR = "error"  # not the service's doing (our bug, a cancellation): counts neither way


class CircuitOpen(UpstreamUnavailable):
    """The service's circuit is open: the call was not attempted. Retry after `retry_after_s`."""


@dataclass(frozen=True)
class BreakerSettings:
    threshold: int = 5
    """Consecutive outages (each attempt counts) that open the circuit."""
    pause_s: float = 30.0
    """How long the circuit stays open the first time; doubled after each failed trial."""
    max_pause_s: float = 300.0
    trial_timeout_s: float = 120.0
    """A trial not reported after this long (an abandoned stream) no longer blocks the next one."""
    trial_wait_s: float = 1.0
    """The retry_after_s of calls refused while another call is the trial."""

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.pause_s <= 0 or self.max_pause_s < self.pause_s:
            raise ValueError(f"breaker settings out of range: {self}")


def outcome_of(exc: BaseException | None) -> Outcome:
    """What an attempt's result says about the service."""
    if exc is None:
        return Outcome.OK
    if isinstance(exc, UpstreamUnavailable):
        return Outcome.THROTTLED if exc.retry_after_s is not None else Outcome.UNAVAILABLE
    if isinstance(exc, Permanent | ConfigurationError):
        return Outcome.REJECTED
    return Outcome.ERROR


class CircuitBreaker:
    """One service's circuit; thread-safe. `admit` before an attempt, `record` after it."""

    def __init__(
        self,
        service: str,
        settings: BreakerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.service = service
        self.settings = settings
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._failures = 0
        self._pause_s = settings.pause_s
        self._open_until = 0.0
        self._trial_since: float | None = None
        self._moves: list[tuple[State, float]] = []
        """Transitions made under the lock, announced (metrics, logs) after releasing it."""

    @property
    def state(self) -> State:
        with self._lock:
            self._advance(self._clock())
            state = self._state
        self._announce()
        return state

    def admit(self, what: str) -> bool:
        """Whether the attempt may go ahead as the half-open trial (True) or normally (False);
        CircuitOpen when it may not go ahead at all."""
        try:
            return self._admit(what)
        finally:
            self._announce()

    def _admit(self, what: str) -> bool:
        with self._lock:
            now = self._clock()
            self._advance(now)
            if self._state is State.CLOSED:
                return False
            if self._state is State.HALF_OPEN:
                if (
                    self._trial_since is None
                    or now - self._trial_since >= self.settings.trial_timeout_s
                ):
                    self._trial_since = now
                    return True
                raise CircuitOpen(
                    f"{self.service} circuit half-open, a trial call is in flight; "
                    f"{what} not attempted",
                    service=self.service,
                    retry_after_s=self.settings.trial_wait_s,
                )
            left = max(self._open_until - now, 0.0)
            until = self._wall() + timedelta(seconds=left)
            raise CircuitOpen(
                f"{self.service} circuit open until {until:%H:%M:%S}Z ({left:.1f} s) after "
                f"repeated failures; {what} not attempted",
                service=self.service,
                retry_after_s=left,
            )

    def record(self, outcome: Outcome, *, trial: bool) -> None:
        with self._lock:
            self._record(outcome, trial=trial)
        self._announce()

    def _record(self, outcome: Outcome, *, trial: bool) -> None:
        now = self._clock()
        if trial:
            self._trial_since = None
        if outcome in (Outcome.OK, Outcome.REJECTED):
            self._failures = 0
            self._pause_s = self.settings.pause_s
            if self._state is not State.CLOSED:
                self._move(State.CLOSED)
        elif outcome is Outcome.UNAVAILABLE:
            if self._state is State.CLOSED:
                self._failures += 1
                if self._failures >= self.settings.threshold:
                    self._open(now)
            elif self._state is State.HALF_OPEN and trial:
                self._pause_s = min(self._pause_s * 2, self.settings.max_pause_s)
                self._open(now)
            # An attempt admitted before the circuit opened, failing late, changes nothing.

    def _advance(self, now: float) -> None:
        if self._state is State.OPEN and now >= self._open_until:
            self._move(State.HALF_OPEN)

    def _open(self, now: float) -> None:
        self._open_until = now + self._pause_s
        self._failures = 0
        self._move(State.OPEN)

    def _move(self, state: State) -> None:
        self._state = state
        self._moves.append((state, self._pause_s))

    def _announce(self) -> None:
        with self._lock:
            moves, self._moves = self._moves, []
        for state, pause_s in moves:
            metrics.circuit_transitions.add(1, {"service": self.service, "state": state.label})
            if state is State.OPEN:
                logs.log_event(
                    log, logging.WARNING, "circuit open", service=self.service, pause_s=pause_s
                )
            else:
                logs.log_event(log, logging.INFO, f"circuit {state.label}", service=self.service)


class CircuitBreakers:
    """The breakers of one process, one per service name, made on first use."""

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._settings = settings or BreakerSettings()
        self._clock = clock
        self._wall = wall

    def get(self, service: str) -> CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(service)
            if breaker is None:
                breaker = CircuitBreaker(
                    service, self._settings, clock=self._clock, wall=self._wall
                )
                self._breakers[service] = breaker
            return breaker

    def states(self) -> list[tuple[str, int]]:
        """(service, state value) of every breaker made so far: the gauge's reading."""
        with self._lock:
            breakers = list(self._breakers.values())
        return [(breaker.service, int(breaker.state)) for breaker in breakers]

    def reset(
        self,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Forget every breaker; later ones use `settings` and `clock` (the defaults if None)."""
        with self._lock:
            self._breakers.clear()
            self._settings = settings or BreakerSettings()
            self._clock = clock or time.monotonic

    @contextmanager
    def guarded(self, service: str, what: str) -> Iterator[None]:
        """One attempt of the block: refused at once while the circuit is open; its outcome
        (an exception from the error tree, or none) recorded and measured. Usable around an
        `await` too: nothing here blocks."""
        breaker = self.get(service)
        try:
            trial = breaker.admit(what)
        except CircuitOpen:
            metrics.upstream_errors.add(1, {"service": service, "outcome": "circuit_open"})
            raise
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            failure = exc
            raise
        finally:
            outcome = outcome_of(failure)
            breaker.record(outcome, trial=trial)
            labels = {"service": service, "outcome": outcome.value}
            metrics.upstream_latency.record(time.perf_counter() - started, labels)
            if outcome is not Outcome.OK:
                metrics.upstream_errors.add(1, labels)

    def call(
        self,
        service: str,
        fn: Callable[[], T],
        *,
        what: str,
        backoff: Backoff | None = IN_INVOCATION,
    ) -> T:
        """`fn()` guarded by the service's breaker and retried by `backoff` (None: once)."""

        def attempt() -> T:
            with self.guarded(service, what):
                return fn()

        if backoff is None:
            return attempt()
        return backoff.run(attempt, what=f"{service} {what}")


BREAKERS = CircuitBreakers()
metrics.watch_circuits(BREAKERS.states)


def guarded(service: str, what: str) -> AbstractContextManager[None]:
    """One attempt through the process's breaker of `service` (see CircuitBreakers.guarded)."""
    return BREAKERS.guarded(service, what)


def call(
    service: str, fn: Callable[[], T], *, what: str, backoff: Backoff | None = IN_INVOCATION
) -> T:
    """`fn()` through the process's breaker of `service`, retried by `backoff` (None: once)."""
    return BREAKERS.call(service, fn, what=what, backoff=backoff)
