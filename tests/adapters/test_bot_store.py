"""FirestoreBotStore on the Firestore emulator: links, one-time codes, conversations, updates seen."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import firestore

from shared.adapters.bot_store import FirestoreBotStore
from shared.adapters.firestore import FirestoreConnection
from shared.bot.ports import Conversation, Redemption
from shared.errors import ClaimHeld

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
HOUR = timedelta(hours=1)
RACERS = 8


@pytest.fixture
def store(project_id: str) -> FirestoreBotStore:
    return FirestoreBotStore(FirestoreConnection(project_id))


def another_instance(project_id: str) -> FirestoreBotStore:
    """A second instance: its own connection and client, the same database."""
    return FirestoreBotStore(FirestoreConnection(project_id))


def race(count: int, attempt: Callable[[int], object]) -> list[object]:
    """Run `attempt(i)` in `count` threads released together; each result or raised error."""
    start = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = attempt(index)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


# ---- link codes and links -----------------------------------------------------------------------


def test_code_is_short_url_safe_and_stored_only_as_its_hash(
    store: FirestoreBotStore, project_id: str
) -> None:
    code = store.create_link_code("ana@example.com", now=NOW, lifetime=DAY)

    assert re.fullmatch(r"[A-Za-z0-9_-]{20,64}", code)
    stored = firestore.Client(project=project_id).collection("telegram_link_codes").get()
    assert [snapshot.id for snapshot in stored] == [hashlib.sha256(code.encode()).hexdigest()]
    assert code not in str(stored[0].to_dict())


def test_code_links_the_chat_both_ways_when_redeemed(store: FirestoreBotStore) -> None:
    code = store.create_link_code("ana@example.com", now=NOW, lifetime=DAY)

    redemption = store.redeem_link_code(code, 4242, now=NOW + HOUR)

    assert redemption == Redemption("linked", "ana@example.com")
    assert store.user_of(4242) == "ana@example.com"
    assert store.chat_of("ana@example.com") == 4242
    assert store.user_of(1) is None and store.chat_of("ben@example.com") is None


def test_code_won_by_exactly_one_chat_when_eight_threads_race(
    store: FirestoreBotStore, project_id: str
) -> None:
    code = store.create_link_code("ana@example.com", now=NOW, lifetime=DAY)
    instances = [another_instance(project_id) for _ in range(RACERS)]

    results = race(RACERS, lambda i: instances[i].redeem_link_code(code, 1000 + i, now=NOW))

    outcomes = [r.outcome if isinstance(r, Redemption) else repr(r) for r in results]
    assert sorted(outcomes) == ["linked"] + ["used"] * (RACERS - 1)
    winner = 1000 + outcomes.index("linked")
    assert store.chat_of("ana@example.com") == winner
    assert [store.user_of(1000 + i) for i in range(RACERS)].count("ana@example.com") == 1


def test_code_refused_when_expired(store: FirestoreBotStore) -> None:
    code = store.create_link_code("ana@example.com", now=NOW, lifetime=DAY)

    assert store.redeem_link_code(code, 4242, now=NOW + DAY) == Redemption("expired")
    assert store.user_of(4242) is None


def test_code_refused_when_used_by_another_chat(store: FirestoreBotStore) -> None:
    code = store.create_link_code("ana@example.com", now=NOW, lifetime=DAY)
    store.redeem_link_code(code, 4242, now=NOW)

    assert store.redeem_link_code(code, 4343, now=NOW) == Redemption("used")
    assert store.redeem_link_code(code, 4242, now=NOW) == Redemption("repeated", "ana@example.com")
    assert store.user_of(4343) is None


@pytest.mark.parametrize("code", ["never-made", "", "x" * 65])
def test_code_refused_when_unknown(store: FirestoreBotStore, code: str) -> None:
    assert store.redeem_link_code(code, 4242, now=NOW) == Redemption("unknown")


def test_old_chat_loses_the_user_when_the_user_links_another_chat(store: FirestoreBotStore) -> None:
    first = store.create_link_code("ana@example.com", now=NOW, lifetime=DAY)
    second = store.create_link_code("ana@example.com", now=NOW, lifetime=DAY)
    store.redeem_link_code(first, 4242, now=NOW)

    store.redeem_link_code(second, 5353, now=NOW)

    assert store.chat_of("ana@example.com") == 5353
    assert store.user_of(5353) == "ana@example.com"
    assert store.user_of(4242) is None


def test_chat_serves_the_new_user_only_when_it_is_linked_to_another_user(
    store: FirestoreBotStore,
) -> None:
    for user in ("ana@example.com", "ben@example.com"):
        store.redeem_link_code(store.create_link_code(user, now=NOW, lifetime=DAY), 4242, now=NOW)

    assert store.user_of(4242) == "ben@example.com"
    assert store.chat_of("ben@example.com") == 4242
    assert store.chat_of("ana@example.com") is None


# ---- conversations ------------------------------------------------------------------------------


def test_conversation_continued_when_read_through_a_second_instance(
    store: FirestoreBotStore, project_id: str
) -> None:
    started = Conversation("new_request", "priority", {"subject": "Pump", "description": "Leaks"})
    store.put_conversation(-100123, 200, started, now=NOW, lifetime=HOUR)

    second = another_instance(project_id)
    found = second.get_conversation(-100123, 200, now=NOW + timedelta(minutes=5))
    assert found == started
    second.put_conversation(
        -100123,
        200,
        Conversation("new_request", "confirm", {**started.values, "priority": "Low"}),
        now=NOW,
        lifetime=HOUR,
    )

    again = store.get_conversation(-100123, 200, now=NOW + timedelta(minutes=6))
    assert again is not None and again.step == "confirm" and again.values["priority"] == "Low"
    assert store.get_conversation(-100123, 300, now=NOW) is None  # another person's


def test_conversation_gone_when_expired_or_cleared(store: FirestoreBotStore) -> None:
    store.put_conversation(200, 200, Conversation("upload_photo", "photo"), now=NOW, lifetime=HOUR)

    assert store.get_conversation(200, 200, now=NOW + HOUR) is None
    assert store.get_conversation(200, 200, now=NOW) is not None
    store.clear_conversation(200, 200)
    assert store.get_conversation(200, 200, now=NOW) is None
    store.clear_conversation(200, 200)  # clearing nothing is fine


# ---- updates seen -------------------------------------------------------------------------------


def test_update_handled_by_exactly_one_when_eight_deliveries_race(
    store: FirestoreBotStore, project_id: str
) -> None:
    instances = [another_instance(project_id) for _ in range(RACERS)]

    results = race(RACERS, lambda i: instances[i].first_time(777, now=NOW))

    assert results.count(True) == 1
    assert all(isinstance(r, ClaimHeld) for r in results if r is not True)


def test_update_is_a_duplicate_when_it_was_handled(
    store: FirestoreBotStore, project_id: str
) -> None:
    assert store.first_time(778, now=NOW)
    store.mark_handled(778, now=NOW)

    assert another_instance(project_id).first_time(778, now=NOW + HOUR) is False
    assert another_instance(project_id).first_time(779, now=NOW) is True


def test_update_handled_again_at_once_when_its_handling_failed(
    store: FirestoreBotStore, project_id: str
) -> None:
    assert store.first_time(780, now=NOW)

    store.forget_update(780)

    assert another_instance(project_id).first_time(780, now=NOW) is True


def test_update_handled_again_after_the_lease_when_its_handler_died(
    store: FirestoreBotStore, project_id: str
) -> None:
    assert store.first_time(781, now=NOW)
    second = another_instance(project_id)

    with pytest.raises(ClaimHeld):
        second.first_time(781, now=NOW + timedelta(minutes=1))
    assert second.first_time(781, now=NOW + timedelta(minutes=2)) is True
