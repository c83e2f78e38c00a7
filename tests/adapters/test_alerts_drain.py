"""The alert drainer through python-telegram-bot against the Telegram stand-in, on the Firestore
emulator: Telegram's limits kept (zero 429), throttles honoured, every alert sent once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from devstack.telegram import TelegramStandIn
from devstack.twilio import TwilioStandIn
from shared.adapters.firestore import FirestoreStores
from shared.adapters.telegram import KeptSession, TelegramApi
from shared.adapters.twilio import WhatsAppSender
from shared.alerts.notifier import AlertDrainer, NotifierConfig, PacedReplies
from shared.alerts.pacing import Limits
from shared.alerts.rules import REPEAT_NOTICE, Alert
from shared.errors import UpstreamUnavailable
from tests.helpers.clocks import SettableClock

TOKEN = "123456:delivery-token"
GROUP = -1001234
FAST_GROUP_WINDOW_S = 0.5
"""The group window shortened (20 a minute -> 20 a half second) on both sides, so that 500
alerts drain in seconds while the limit is kept exactly as it would be over 25 minutes."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def telegram() -> Iterator[TelegramStandIn]:
    with TelegramStandIn(TOKEN, group_window_s=FAST_GROUP_WINDOW_S) as running:
        running.added_to(GROUP)
        running.started_by(42, 77)  # two people who started the bot
        yield running


@pytest.fixture
def stores(project_id: str) -> FirestoreStores:
    return FirestoreStores(project_id, timeout_s=10)


def drainer(
    stores: FirestoreStores,
    telegram: TelegramStandIn,
    owner: str = "test",
    *,
    whatsapp: WhatsAppSender | None = None,
    timeout_s: float = 20.0,
    clock: Callable[[], datetime] = utc_now,
) -> AlertDrainer:
    limits = Limits(group_window_s=FAST_GROUP_WINDOW_S, margin_s=0.05)
    return AlertDrainer(
        outbox=stores.alerts,
        lease=stores.alert_drain_lease,
        telegram=TelegramApi(TOKEN, base_url=telegram.base_url, timeout_s=timeout_s),
        whatsapp=whatsapp,
        sessions=stores.whatsapp_sessions,
        errors=stores.errors,
        config=NotifierConfig(rules=(), chats={}, telegram_limits=limits, budget_s=120),
        owner=owner,
        clock=clock,
    )


def alert(n: int, to: int | str, text: str | None = None) -> Alert:
    return Alert(
        key=f"rule|event-{n}|{to}",
        rule="rule",
        channel="whatsapp" if isinstance(to, str) else "telegram",
        to=str(to),
        text=text or f"alert {n}",
        event_id=f"event-{n}",
        entity=f"Issue/ISS-{n}",
    )


def test_500_alerts_to_one_group_go_at_the_group_limit_with_no_429(
    stores: FirestoreStores, telegram: TelegramStandIn
) -> None:
    assert stores.alerts.put([alert(n, GROUP) for n in range(500)], now=utc_now()) == 500
    started = time.monotonic()
    # Two instances drain at once, as two deliveries would: the lease lets one send at a time.
    reports = []
    threads = [
        threading.Thread(
            target=lambda o=owner: reports.append(drainer(stores, telegram, o).drain())
        )
        for owner in ("instance-a", "instance-b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert telegram.refused == []
    assert telegram.texts(GROUP) == [f"alert {n}" for n in range(500)]  # once each, in order
    assert sum(report.sent for report in reports) == 500
    # 20 per window: 24 full windows must pass, and the drain reached the limit (a window
    # held all 20). Its speed is measured by `make bench-notifier`, not asserted here.
    assert elapsed >= 24 * FAST_GROUP_WINDOW_S
    assert telegram.busiest_window([GROUP], FAST_GROUP_WINDOW_S) == 20
    assert stores.alerts.pending(1) == []


def test_100_chats_drain_near_the_global_limit_with_no_429(
    stores: FirestoreStores, telegram: TelegramStandIn
) -> None:
    chats = range(5001, 5101)
    telegram.started_by(*chats)
    stores.alerts.put([alert(n, chat) for n, chat in enumerate(chats)], now=utc_now())
    started = time.monotonic()
    report = drainer(stores, telegram).drain()
    elapsed = time.monotonic() - started
    assert report.sent == 100 and telegram.refused == []
    assert all(len(telegram.chats[chat]) == 1 for chat in chats)
    # Near the global limit: some second carried close to 30 messages (never more: no 429).
    every_send = sorted(t for chat in chats for t in telegram.sent_at[chat])
    busiest = max(
        sum(1 for t in every_send[i:] if t < start + 1.0) for i, start in enumerate(every_send)
    )
    assert 20 <= busiest <= 30, f"{busiest} messages in the busiest second ({elapsed:.1f} s in all)"


def test_a_drain_just_after_another_keeps_the_global_limit(stores: FirestoreStores) -> None:
    """A drain primes its pacer with the sends the outbox recorded, so two instances' drains
    one after the other keep Telegram's global limit (30 a second) between them.

    Time stands still unless the test moves it: the drainers and Telegram share one
    SettableClock, so "just after" is exact, however fast the machine is. (With real time the
    second drain's start-up could outlast the second, and a drain that primes nothing passed.)
    """
    clock = SettableClock(utc_now())
    with TelegramStandIn(
        TOKEN, group_window_s=FAST_GROUP_WINDOW_S, clock=clock.timestamp
    ) as telegram:
        telegram.started_by(*range(5001, 5031), *range(6031, 6061))
        # 30 chats take one message each, all at one instant: the global limit is reached.
        stores.alerts.put([alert(n, 5001 + n) for n in range(30)], now=clock.now)
        assert drainer(stores, telegram, "instance-a", clock=clock).drain().sent == 30
        # Another instance drains 30 more past the group window (and its margin) but inside
        # that second: it must learn of those 30 from the outbox and send none, not meet a
        # 429 (as it did when it looked back only as far as the group window, or not at all).
        stores.alerts.put([alert(n, 6001 + n) for n in range(30, 60)], now=clock.now)
        clock.advance(FAST_GROUP_WINDOW_S + 0.15)
        assert drainer(stores, telegram, "instance-b", clock=clock).drain(budget_s=2).sent == 0
        assert telegram.refused == []
        # Once the second (and the pacer's margin) is over, all 30 go, still with no 429.
        clock.advance(0.5)
        assert drainer(stores, telegram, "instance-b", clock=clock).drain().sent == 30
        assert telegram.refused == []
        assert stores.alerts.pending(1) == []


def test_bot_replies_and_alerts_keep_telegrams_global_limit_between_them(
    stores: FirestoreStores,
) -> None:
    """The bot's replies count in the limits the alerts keep, both ways: a reply after a full
    second of alerts waits for the second to pass, and alerts after replies wait for those."""
    clock = SettableClock(utc_now())
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    with TelegramStandIn(TOKEN, group_window_s=FAST_GROUP_WINDOW_S, clock=clock.timestamp) as tg:
        tg.started_by(*range(5001, 5031), *range(7001, 7031), 8001)
        limits = Limits(group_window_s=FAST_GROUP_WINDOW_S, margin_s=0.05)
        replies = PacedReplies(
            telegram=KeptSession(TelegramApi(TOKEN, base_url=tg.base_url, timeout_s=20)),
            outbox=stores.alerts,
            limits=limits,
            clock=clock,
            sleep=sleep,
        )
        stores.alerts.put([alert(n, 5001 + n) for n in range(30)], now=clock.now)
        assert drainer(stores, tg, "instance-a", clock=clock).drain().sent == 30
        # 30 went this instant: the reply waits out the second (and the margin), then goes.
        replies.send_all([(7001, "a reply", None)])
        assert waits == [pytest.approx(1.05)] and tg.texts(7001) == ["a reply"]
        # 29 more replies fill the next second; an alert queued now must wait for it.
        replies.send_all([(7002 + n, "a reply", None) for n in range(29)])
        stores.alerts.put([alert(99, 8001)], now=clock.now)
        assert drainer(stores, tg, "instance-b", clock=clock).drain(budget_s=0.5).sent == 0
        clock.advance(1.1)
        assert drainer(stores, tg, "instance-b", clock=clock).drain().sent == 1
        assert tg.refused == []


def test_a_reply_that_would_wait_long_is_left_for_telegram_to_ask_again(
    stores: FirestoreStores, telegram: TelegramStandIn
) -> None:
    clock = SettableClock(utc_now())
    for _ in range(20):  # a group's 20 a window, taken by replies a moment ago
        stores.alerts.note_reply(GROUP, now=clock.now)
    replies = PacedReplies(
        telegram=KeptSession(TelegramApi(TOKEN, base_url=telegram.base_url)),
        outbox=stores.alerts,
        limits=Limits(group_window_s=60),
        clock=clock,
        sleep=lambda seconds: pytest.fail(f"slept {seconds} s"),
    )
    with pytest.raises(UpstreamUnavailable, match="limits are taken"):
        replies.send_all([(GROUP, "one more", None)])
    assert telegram.texts(GROUP) == []


def test_the_same_alert_queued_three_times_is_sent_once(
    stores: FirestoreStores, telegram: TelegramStandIn
) -> None:
    news = [stores.alerts.put([alert(1, 42)], now=utc_now()) for _ in range(3)]
    assert news == [1, 0, 0]
    drainer(stores, telegram).drain()
    stores.alerts.put([alert(1, 42)], now=utc_now())  # a redelivery after it was sent
    drainer(stores, telegram).drain()
    assert telegram.texts(42) == ["alert 1"]


def test_a_throttled_alert_waits_retry_after_and_goes_once(
    stores: FirestoreStores, telegram: TelegramStandIn
) -> None:
    telegram.throttle_next(42, retry_after=1)
    stores.alerts.put([alert(1, 42), alert(2, 42)], now=utc_now())
    started = time.monotonic()
    report = drainer(stores, telegram).drain()
    assert telegram.refused == [(42, 1)]
    assert telegram.texts(42) == ["alert 1", "alert 2"]
    assert report.sent == 2 and report.throttled == 1
    assert time.monotonic() - started >= 1.0 + 1.0  # retry_after, then a second for the next


def test_a_refused_send_becomes_an_error_record_and_blocks_nothing(
    stores: FirestoreStores, telegram: TelegramStandIn
) -> None:
    telegram.blocked.add(77)
    stores.alerts.put([alert(1, 77), alert(2, 42)], now=utc_now())
    report = drainer(stores, telegram).drain()
    assert (report.sent, report.failed) == (1, 1)
    assert telegram.texts(42) == ["alert 2"]
    (record,) = stores.errors.list_errors()
    assert record.operation == "send_telegram" and "blocked" in str(record.message)
    assert record.entity_id == "ISS-1"
    assert stores.alerts.pending(10) == []


def test_messages_to_one_chat_keep_their_order_and_pace(
    stores: FirestoreStores, telegram: TelegramStandIn
) -> None:
    stores.alerts.put([alert(n, 42) for n in range(3)], now=utc_now())
    drainer(stores, telegram).drain()
    assert telegram.texts(42) == ["alert 0", "alert 1", "alert 2"]
    assert telegram.refused == []
    assert [r["state"] for r in stores.alerts.records()] == ["sent"] * 3
    # As Telegram saw them: a second apart at least.
    gaps = [b - a for a, b in pairwise(telegram.sent_at[42])]
    assert all(gap >= 1.0 for gap in gaps), gaps


def test_alerts_to_a_group_upgraded_to_a_supergroup_go_to_its_new_id_once(
    stores: FirestoreStores, telegram: TelegramStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """Telegram refuses the old id of an upgraded group with migrate_to_chat_id; the adapter
    raises ChatMoved and the drainer sends each alert to the new id, once, with no error record,
    and says which setting to change."""
    caplog.set_level(logging.WARNING, logger="shared.alerts.notifier")
    telegram.added_to(-4001)
    new_id = telegram.upgrade_to_supergroup(-4001)
    stores.alerts.put([alert(1, -4001), alert(2, -4001)], now=utc_now())
    report = drainer(stores, telegram).drain()
    assert (report.sent, report.failed) == (2, 0)
    assert telegram.texts(new_id) == ["alert 1", "alert 2"] and telegram.texts(-4001) == []
    assert stores.alerts.pending(10) == [] and stores.errors.list_errors() == []
    assert f"chat -4001 is now {new_id}" in caplog.text


# -- alerts in doubt: a send whose outcome nobody learnt -----------------------------------------

PERSON = "+4915112345678"
TWILIO_ACCOUNT = "AC" + "0123456789abcdef" * 2


@pytest.fixture
def twilio(stores: FirestoreStores) -> Iterator[TwilioStandIn]:
    with TwilioStandIn(TWILIO_ACCOUNT, "delivery-twilio-token") as running:
        running.open_window(PERSON)  # the person wrote to us: free text may go
        stores.whatsapp_sessions.record_inbound(PERSON, now=utc_now())
        yield running


def whatsapp(twilio: TwilioStandIn) -> WhatsAppSender:
    return WhatsAppSender(
        TWILIO_ACCOUNT,
        "delivery-twilio-token",
        twilio.business_number,
        base_url=twilio.base_url,
        timeout_s=0.5,
    )


def test_a_refused_send_is_not_in_doubt_and_goes_again_plainly(
    stores: FirestoreStores, telegram: TelegramStandIn
) -> None:
    telegram.faults.fail_next("500")
    stores.alerts.put([alert(1, 42)], now=utc_now())
    drainer(stores, telegram).drain()
    assert telegram.texts(42) == ["alert 1"]


def test_a_telegram_answer_lost_goes_again_headed_by_the_repeat_notice(
    stores: FirestoreStores, telegram: TelegramStandIn
) -> None:
    telegram.faults.timeout_s = 1.5
    telegram.faults.fail_next("timeout_after_apply")
    stores.alerts.put([alert(1, 42), alert(2, 42)], now=utc_now())
    drainer(stores, telegram, timeout_s=0.5).drain()
    # Telegram had the first; we could not know, so the second copy says it may repeat it.
    assert telegram.texts(42) == ["alert 1", REPEAT_NOTICE + "alert 1", "alert 2"]
    assert [r["state"] for r in stores.alerts.records()] == ["sent", "sent"]


def test_an_alert_left_sending_by_a_crashed_drainer_goes_with_the_notice_once(
    stores: FirestoreStores, telegram: TelegramStandIn
) -> None:
    stores.alerts.put([alert(1, 42), alert(2, 42)], now=utc_now())
    assert stores.alerts.mark_sending(alert(1, 42).key, now=utc_now())  # then killed
    drainer(stores, telegram).drain()
    assert telegram.texts(42) == [REPEAT_NOTICE + "alert 1", "alert 2"]
    assert stores.alerts.pending(10) == []
    assert not stores.alerts.mark_sending(alert(1, 42).key, now=utc_now())  # settled: no send


def test_a_whatsapp_answer_lost_is_found_at_twilio_and_not_sent_again(
    stores: FirestoreStores, telegram: TelegramStandIn, twilio: TwilioStandIn
) -> None:
    twilio.faults.timeout_s = 1.5
    twilio.faults.fail_next("timeout_after_apply")
    stores.alerts.put([alert(1, PERSON), alert(2, PERSON)], now=utc_now())
    drainer(stores, telegram, whatsapp=whatsapp(twilio)).drain()
    sent = twilio.outbound[PERSON]
    assert [m.body for m in sent] == ["alert 1", "alert 2"]
    assert {r["message_id"] for r in stores.alerts.records()} == {m.sid for m in sent}


def test_a_whatsapp_alert_left_sending_is_sent_only_if_twilio_has_not_got_it(
    stores: FirestoreStores, telegram: TelegramStandIn, twilio: TwilioStandIn
) -> None:
    before = utc_now()
    stores.alerts.put([alert(1, PERSON), alert(2, PERSON), alert(3, PERSON)], now=before)
    # A drainer marked 1 and 2 as sending, sent 1 and another alert with the same text, then
    # died before its records: 1 is at Twilio already, 2 is not.
    stores.alerts.put([alert(9, PERSON, text="alert 1")], now=before)
    early = whatsapp(twilio).send_text(PERSON, "alert 1")
    stores.alerts.mark_sent(alert(9, PERSON).key, early, now=before)
    for n in (1, 2):
        stores.alerts.mark_sending(alert(n, PERSON).key, now=before)
    first = whatsapp(twilio).send_text(PERSON, "alert 1")
    drainer(stores, telegram, whatsapp=whatsapp(twilio)).drain()
    assert [m.body for m in twilio.outbound[PERSON]] == ["alert 1", "alert 1", "alert 2", "alert 3"]
    records = {r["key"]: r for r in stores.alerts.records()}
    assert records[alert(1, PERSON).key]["message_id"] == first
    assert records[alert(9, PERSON).key]["message_id"] == early


def test_a_sender_twilio_has_not_enabled_is_a_settings_record_and_not_sent_again(
    stores: FirestoreStores, telegram: TelegramStandIn, twilio: TwilioStandIn
) -> None:
    """Twilio refuses a From that is not one of the account's WhatsApp senders (63007): each
    alert gets one attempt and an error record naming our sender and its setting, and is not
    retried (only fixing the setting can help)."""
    stores.alerts.put([alert(1, PERSON), alert(2, PERSON)], now=utc_now())
    not_enabled = WhatsAppSender(
        TWILIO_ACCOUNT, "delivery-twilio-token", "+15550001234", base_url=twilio.base_url
    )
    report = drainer(stores, telegram, whatsapp=not_enabled).drain()
    assert (report.sent, report.failed) == (0, 2)
    assert twilio.refused == [(400, 63007), (400, 63007)]  # one attempt each
    assert twilio.outbound == {} and stores.alerts.pending(10) == []
    records = stores.errors.list_errors()
    assert sorted(record.entity_id for record in records) == ["ISS-1", "ISS-2"]
    for record in records:
        assert record.operation == "send_whatsapp" and record.details == "ConfigurationError"
        assert "+...1234 (TWILIO_WHATSAPP_FROM) is not a WhatsApp sender" in str(record.message)


# -- WhatsApp's 24-hour window, as our session record says ---------------------------------------

TEMPLATE = "HX" + "c0" * 16
WINDOW_MARGIN = NotifierConfig(rules=(), chats={}).window_margin


@pytest.mark.parametrize(
    ("wrote_ago", "margin", "goes_as"),
    [
        (timedelta(hours=24, seconds=1), WINDOW_MARGIN, "template"),  # the window has closed
        (timedelta(hours=23, minutes=59), timedelta(0), "text"),  # open, no margin kept
        (timedelta(hours=23, minutes=59), WINDOW_MARGIN, "template"),  # open, inside the margin
        (timedelta(hours=23, minutes=29), WINDOW_MARGIN, "text"),  # open, before the margin
    ],
)
def test_a_completion_goes_as_free_text_only_while_the_clients_window_is_open(
    stores: FirestoreStores,
    telegram: TelegramStandIn,
    twilio: TwilioStandIn,
    *,
    wrote_ago: timedelta,
    margin: timedelta,
    goes_as: str,
) -> None:
    """The drainer's clock, set by the test, decides the window from when the client last
    wrote (our session record): free text while it is open by more than the margin, the
    approved template (content_sid) once it is closed or about to close."""
    twilio.add_template(TEMPLATE, "Your service request {{1}} is completed.")
    clock = SettableClock(utc_now())
    stores.whatsapp_sessions.record_inbound(PERSON, now=clock.now - wrote_ago)
    completion = replace(
        alert(1, PERSON, text="SR-1 is completed."),
        content_sid=TEMPLATE,
        content_variables={"1": "SR-1"},
    )
    stores.alerts.put([completion], now=clock.now)
    sending = drainer(stores, telegram, whatsapp=whatsapp(twilio), clock=clock)
    sending = replace(sending, config=replace(sending.config, window_margin=margin))
    assert sending.drain().sent == 1
    [sent] = twilio.outbound[PERSON]
    if goes_as == "template":
        assert (sent.content_sid, sent.body) == (
            TEMPLATE,
            "Your service request SR-1 is completed.",
        )
    else:
        assert (sent.content_sid, sent.body) == (None, "SR-1 is completed.")
