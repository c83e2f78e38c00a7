"""The pacer: Telegram's per-chat, per-group and global sliding windows, widened by a margin."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable
from itertools import pairwise

import pytest

from shared.alerts.pacing import Destination, Limits, Pacer, Slot

LIMITS = Limits(
    chat_per_window=1,
    chat_window_s=1.0,
    group_per_window=20,
    group_window_s=60.0,
    global_per_window=30,
    global_window_s=1.0,
    margin_s=0.1,
)
CHAT_SPAN = LIMITS.chat_window_s + LIMITS.margin_s
GROUP_SPAN = LIMITS.group_window_s + LIMITS.margin_s
GLOBAL_SPAN = LIMITS.global_window_s + LIMITS.margin_s
PERSON = 1001
GROUP = -100500
EPS = 1e-9
"""Sums of float times: a window is kept when it is short by no more than rounding."""


def assert_at_most(times: Iterable[float], cap: int, span: float) -> None:
    """No window of `span` seconds holds more than `cap` of these times."""
    ordered = sorted(times)
    for first, later in zip(ordered, ordered[cap:], strict=False):
        assert later - first >= span - EPS, f"{cap + 1} sends within {later - first:.6f}s"


def assert_exactly_at_limit(times: list[float], cap: int, span: float) -> None:
    """Every send comes the moment its window allows: `cap` per `span`, never fewer."""
    for first, later in zip(times, times[cap:], strict=False):
        assert later - first == pytest.approx(span, abs=1e-6)


def send_in_order(pacer: Pacer, chats: Iterable[Destination], now: float = 0.0) -> list[float]:
    """Messages sent one after the other, each as soon as the pacer allows it."""
    sent = []
    for chat in chats:
        now = pacer.next_time(chat, now)
        assert pacer.take(chat, now)
        sent.append(now)
    return sent


def test_default_limits_are_telegrams() -> None:
    limits = Limits()
    assert (limits.chat_per_window, limits.chat_window_s) == (1, 1.0)
    assert (limits.group_per_window, limits.group_window_s) == (20, 60.0)
    assert (limits.global_per_window, limits.global_window_s) == (30, 1.0)
    assert limits.margin_s > 0


def test_windows_tell_groups_from_people_by_the_sign_of_the_chat_id() -> None:
    assert LIMITS.window(GROUP) == (20, GROUP_SPAN)
    assert LIMITS.window(PERSON) == (1, CHAT_SPAN)
    assert LIMITS.window("+15551234567") == (1, CHAT_SPAN)


def test_private_chat_takes_one_message_per_second_plus_margin() -> None:
    pacer = Pacer(LIMITS)
    assert pacer.take(PERSON, 0.0)
    assert not pacer.take(PERSON, 0.0)
    assert not pacer.take(PERSON, 1.0)
    assert not pacer.take(PERSON, CHAT_SPAN - 0.001)
    assert pacer.next_time(PERSON, 0.5) == CHAT_SPAN
    assert pacer.take(PERSON, CHAT_SPAN)
    assert pacer.next_time(PERSON, CHAT_SPAN) == 2 * CHAT_SPAN


def test_group_takes_twenty_then_waits_for_its_first_to_leave_the_window() -> None:
    pacer = Pacer(LIMITS)
    for second in range(20):
        assert pacer.take(GROUP, float(second))
    assert not pacer.take(GROUP, 20.0)
    assert not pacer.take(GROUP, GROUP_SPAN - 0.001)
    assert pacer.next_time(GROUP, 20.0) == GROUP_SPAN
    assert pacer.take(GROUP, GROUP_SPAN)
    assert pacer.next_time(GROUP, GROUP_SPAN) == 1.0 + GROUP_SPAN


def test_group_gets_at_most_twenty_in_any_window_when_messages_come_at_random() -> None:
    arrivals = random.Random(5)
    pacer, sent, now = Pacer(LIMITS), [], 0.0
    for _ in range(300):
        now += arrivals.expovariate(1.0)  # about one a second: three times what a group takes
        if pacer.take(GROUP, now):
            sent.append(now)
    assert_at_most(sent, 20, GROUP_SPAN)
    assert len(sent) >= 20 * int(now // GROUP_SPAN)


def test_bot_takes_thirty_a_second_plus_margin_across_chats() -> None:
    pacer = Pacer(LIMITS)
    for chat in range(1, 31):
        assert pacer.take(chat, 0.0)
    assert not pacer.take(31, 0.0)
    assert not pacer.take(31, GLOBAL_SPAN - 0.001)
    assert not pacer.take(GROUP, 0.5)
    assert pacer.next_time(31, 0.0) == GLOBAL_SPAN
    assert pacer.next_time(GROUP, 0.5) == GLOBAL_SPAN
    assert pacer.take(31, GLOBAL_SPAN)


def test_one_chats_window_never_holds_another_chat() -> None:
    pacer = Pacer(LIMITS)
    assert pacer.take(PERSON, 0.0)
    assert pacer.take(PERSON + 1, 0.0)
    assert pacer.take("+15551234567", 0.0)
    assert not pacer.take("+15551234567", 0.5)
    assert pacer.take("+15557654321", 0.5)


@pytest.mark.parametrize(
    "history",
    [
        [],
        [(PERSON, 3.0)],
        [(GROUP, float(second)) for second in range(25)],
        [(chat, 2.0 + chat / 100) for chat in range(1, 40)],
        [(GROUP, 0.0), (PERSON, 0.2), *((chat, 0.5) for chat in range(2, 31))],
    ],
)
@pytest.mark.parametrize("chat", [PERSON, GROUP, 77])
def test_next_time_is_the_exact_moment_a_message_is_allowed(
    history: list[tuple[Destination, float]], chat: Destination
) -> None:
    pacer = Pacer(LIMITS)
    pacer.prime(history)
    now = history[-1][1] if history else 0.0
    at = pacer.next_time(chat, now)
    assert at >= now
    if at > now:
        assert not pacer.take(chat, at - 1e-6)
    assert pacer.take(chat, at)


def test_next_time_is_now_when_nothing_holds_the_chat() -> None:
    pacer = Pacer(LIMITS)
    assert pacer.next_time(GROUP, 1234.5) == 1234.5
    assert pacer.take(PERSON, 0.0)
    assert pacer.next_time(PERSON, 99.0) == 99.0


def test_block_holds_a_chat_until_retry_after_and_only_that_chat() -> None:
    pacer = Pacer(LIMITS)
    pacer.block(GROUP, 50.0)
    assert pacer.next_time(GROUP, 10.0) == 50.0
    assert not pacer.take(GROUP, 49.9)
    assert pacer.take(PERSON, 10.0)
    assert pacer.take(-200, 10.0)
    assert pacer.take(GROUP, 50.0)
    assert pacer.take(GROUP, 50.5)


def test_block_never_shortens_an_earlier_block() -> None:
    pacer = Pacer(LIMITS)
    pacer.block(PERSON, 60.0)
    pacer.block(PERSON, 55.0)
    assert pacer.next_time(PERSON, 0.0) == 60.0
    pacer.block(PERSON, 70.0)
    assert pacer.next_time(PERSON, 0.0) == 70.0


def test_block_and_window_together_wait_for_the_later_of_the_two() -> None:
    pacer = Pacer(LIMITS)
    for second in range(20):
        assert pacer.take(GROUP, float(second))
    pacer.block(GROUP, 30.0)
    assert pacer.next_time(GROUP, 25.0) == GROUP_SPAN
    pacer.block(GROUP, 90.0)
    assert pacer.next_time(GROUP, 25.0) == 90.0


def test_prime_counts_what_another_instance_sent() -> None:
    sent: list[tuple[Destination, float]] = [
        *((GROUP, 10.0 + second) for second in range(20)),
        (PERSON, 29.5),
        *((chat, 29.8) for chat in range(2, 11)),
    ]
    other = Pacer(LIMITS)
    for chat, at in sent:
        assert other.take(chat, at)
    primed = Pacer(LIMITS)
    primed.prime(sent)
    for chat in (GROUP, PERSON, 2, 99):
        assert primed.next_time(chat, 30.0) == other.next_time(chat, 30.0)
    assert primed.next_time(GROUP, 30.0) == 10.0 + GROUP_SPAN
    assert primed.next_time(PERSON, 30.0) == 29.5 + CHAT_SPAN
    assert not primed.take(GROUP, 40.0)


def test_prime_holds_the_later_send_when_an_older_one_comes_after_it() -> None:
    pacer = Pacer(LIMITS)
    assert pacer.take(PERSON, 10.0)
    pacer.prime([(PERSON, 9.5)])  # another instance's send, read after ours
    assert pacer.next_time(PERSON, 10.0) == 10.0 + CHAT_SPAN
    group = Pacer(LIMITS)
    group.prime([(GROUP, 5.0 + second) for second in range(10, 20)])
    group.prime([(GROUP, 5.0 + second) for second in range(10)])
    assert group.next_time(GROUP, 30.0) == 5.0 + GROUP_SPAN


def test_prime_counts_toward_the_global_window() -> None:
    pacer = Pacer(LIMITS)
    pacer.prime([(chat, 0.25) for chat in range(1, 31)])
    assert pacer.next_time(999, 0.5) == 0.25 + GLOBAL_SPAN


def test_prime_of_sends_outside_the_window_holds_nothing() -> None:
    pacer = Pacer(LIMITS)
    pacer.prime([(GROUP, float(second)) for second in range(20)])
    pacer.prime([(PERSON, 1.0)])
    assert pacer.next_time(GROUP, 100.0) == 100.0
    assert pacer.next_time(PERSON, 100.0) == 100.0


# -- long runs ------------------------------------------------------------------------------------


def test_500_messages_to_one_group_go_at_exactly_twenty_per_window() -> None:
    sent = send_in_order(Pacer(LIMITS), [GROUP] * 500)
    assert_at_most(sent, 20, GROUP_SPAN)
    assert_exactly_at_limit(sent, 20, GROUP_SPAN)
    assert sent[:20] == [0.0] * 20
    assert sent[-1] == pytest.approx(24 * GROUP_SPAN)


def test_500_messages_to_one_group_polled_on_a_clock_never_exceed_the_window() -> None:
    pacer, tick, step = Pacer(LIMITS), 0, 0.05
    sent: list[float] = []
    while len(sent) < 500:
        now = tick * step
        while len(sent) < 500 and pacer.take(GROUP, now):
            sent.append(now)
        tick += 1
    assert_at_most(sent, 20, GROUP_SPAN)
    batches = sorted(set(sent))
    assert [sent.count(at) for at in batches] == [20] * 25
    for first, later in pairwise(batches):
        assert GROUP_SPAN - EPS <= later - first < GROUP_SPAN + step + EPS


def test_100_chats_are_drained_at_exactly_the_global_limit() -> None:
    chats = [chat for _ in range(5) for chat in range(1, 101)]
    sent = send_in_order(Pacer(LIMITS), chats)
    assert_at_most(sent, 30, GLOBAL_SPAN)
    assert_exactly_at_limit(sent, 30, GLOBAL_SPAN)
    by_chat: dict[Destination, list[float]] = defaultdict(list)
    for chat, at in zip(chats, sent, strict=True):
        by_chat[chat].append(at)
    for times in by_chat.values():
        assert_at_most(times, 1, CHAT_SPAN)
    assert sent[-1] == pytest.approx((500 // 30) * GLOBAL_SPAN)


@pytest.mark.parametrize("seed", range(5))
def test_mixed_traffic_never_exceeds_any_window_when_the_earliest_chat_goes_first(
    seed: int,
) -> None:
    arrivals = random.Random(seed)
    chats: list[Destination] = [-1, -2, -3, *range(1, 40), "+15551234567"]
    pending: dict[Destination, int] = defaultdict(int)
    for _ in range(1500):
        pending[arrivals.choice(chats)] += 1
    pacer = Pacer(LIMITS)
    sent: dict[Destination, list[float]] = defaultdict(list)
    everything: list[float] = []
    now = 0.0
    while pending:
        chat, now = min(
            ((chat, pacer.next_time(chat, now)) for chat in pending), key=lambda pair: pair[1]
        )
        assert pacer.take(chat, now)
        sent[chat].append(now)
        everything.append(now)
        pending[chat] -= 1
        if not pending[chat]:
            del pending[chat]
    assert_at_most(everything, 30, GLOBAL_SPAN)
    for chat, times in sent.items():
        cap, span = LIMITS.window(chat)
        assert_at_most(times, cap, span)
    assert len(everything) == 1500


# -- messages in flight ---------------------------------------------------------------------------


def test_message_in_flight_holds_its_chat_until_its_answer_comes() -> None:
    pacer = Pacer(LIMITS)
    slot = pacer.start(PERSON, 0.0)
    assert slot is not None
    assert pacer.start(PERSON, 5.0) is None
    assert pacer.next_time(PERSON, 5.0) == math.inf
    pacer.finish(slot, 0.4)
    assert pacer.next_time(PERSON, 0.5) == 0.4 + CHAT_SPAN
    assert pacer.start(PERSON, 0.4 + CHAT_SPAN) is not None


def test_group_window_counts_from_the_answer_of_its_oldest_message() -> None:
    pacer = Pacer(LIMITS)
    slots = [pacer.start(GROUP, 0.0) for _ in range(20)]
    assert all(slot is not None for slot in slots)
    assert pacer.next_time(GROUP, 1.0) == math.inf
    for number, slot in enumerate(slots):
        assert slot is not None
        pacer.finish(slot, 0.3 + number / 100)
    assert pacer.next_time(GROUP, 1.0) == 0.3 + GROUP_SPAN


def test_global_window_waits_for_answers_across_chats() -> None:
    pacer = Pacer(LIMITS)
    slots = [pacer.start(chat, 0.0) for chat in range(1, 31)]
    assert pacer.next_time(99, 0.0) == math.inf
    first = slots[0]
    assert first is not None
    pacer.finish(first, 0.2)
    assert pacer.next_time(99, 0.5) == 0.2 + GLOBAL_SPAN


@pytest.mark.parametrize("seed", range(3))
def test_arrivals_never_exceed_a_window_whatever_the_network_delays(seed: int) -> None:
    """Telegram sees a message somewhere between our sending it and its answer coming back."""
    network = random.Random(seed)
    pending: list[Destination] = [GROUP] * 120
    pending += [chat for _ in range(3) for chat in range(1, 61)]
    network.shuffle(pending)
    pacer, now = Pacer(LIMITS), 0.0
    in_flight: list[tuple[float, Slot]] = []
    arrivals: dict[Destination, list[float]] = defaultdict(list)
    while pending or in_flight:
        for chat in list(dict.fromkeys(pending)):
            slot = pacer.start(chat, now)
            if slot is None:
                continue
            pending.remove(chat)
            latency = network.uniform(0.01, 0.8)
            arrivals[chat].append(now + network.uniform(0.0, latency))
            in_flight.append((now + latency, slot))
        upcoming = [answered for answered, _ in in_flight]
        upcoming += [pacer.next_time(chat, now) for chat in set(pending)]
        now = max(now, min(upcoming))
        for answered, slot in [pair for pair in in_flight if pair[0] <= now]:
            pacer.finish(slot, answered)
            in_flight.remove((answered, slot))
    assert_at_most([at for times in arrivals.values() for at in times], 30, GLOBAL_SPAN)
    for chat, times in arrivals.items():
        cap, span = LIMITS.window(chat)
        assert_at_most(times, cap, span)
    assert sum(map(len, arrivals.values())) == 120 + 180


def test_a_new_pacer_is_primed_as_far_back_as_its_longest_window() -> None:
    assert Limits().longest_s == 60.0 + Limits().margin_s
    # A group window shorter than the global second (as the tests set it): the second decides.
    assert Limits(group_window_s=0.5, margin_s=0.05).longest_s == 1.05
