"""The Telegram stand-in through python-telegram-bot: answers, files, webhook secret, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut
from telegram.request import HTTPXRequest

from devstack.telegram import TelegramStandIn
from tests.helpers.clocks import Ticker
from tests.helpers.receivers import WebhookReceiver

TOKEN = "123456:stand-in-token"


@pytest.fixture
def clock() -> Ticker:
    return Ticker(1000.0)


@pytest.fixture
def telegram(clock: Ticker) -> Iterator[TelegramStandIn]:
    with TelegramStandIn(TOKEN, clock=clock) as running:
        yield running


def bot(telegram: TelegramStandIn) -> Bot:
    return Bot(TOKEN, base_url=telegram.base_url, base_file_url=telegram.base_file_url)


def test_messages_photos_and_files_through_python_telegram_bot(telegram: TelegramStandIn) -> None:
    photo_id = telegram.add_file(b"\xff\xd8 photo")

    async def talk() -> None:
        async with bot(telegram) as client:
            me = await client.get_me()
            assert me.username == "erp_bridge_bot"
            sent = await client.send_message(42, "<b>INV-5</b> &amp; more", parse_mode="HTML")
            assert sent.chat.id == 42 and sent.text == "<b>INV-5</b> &amp; more"
            await client.send_photo(-100500, photo_id, caption="site photo")
            file = await client.get_file(photo_id)
            assert bytes(await file.download_as_bytearray()) == b"\xff\xd8 photo"
            with pytest.raises(BadRequest, match="too long"):
                await client.send_message(42, "x" * 4097)

    asyncio.run(talk())
    assert [m.text for m in telegram.chats[42]] == ["<b>INV-5</b> &amp; more"]
    assert telegram.chats[-100500][0].caption == "site photo"


def test_limits_answer_429_with_retry_after(
    telegram: TelegramStandIn, clock: Ticker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # python-telegram-bot's coming retry_after type

    async def burst() -> None:
        async with bot(telegram) as client:
            await client.send_message(42, "one")
            with pytest.raises(RetryAfter) as caught:
                await client.send_message(42, "two")  # a second message within the second
            assert caught.value.retry_after.total_seconds() >= 1  # type: ignore[union-attr]
            clock.now += 1.0
            await client.send_message(42, "two")
            for n in range(20):
                await client.send_message(-100700, f"group {n}")
            with pytest.raises(RetryAfter):
                await client.send_message(-100700, "21st in a minute")

    asyncio.run(burst())
    assert len(telegram.chats[42]) == 2 and len(telegram.chats[-100700]) == 20
    assert [chat for chat, _ in telegram.refused] == [42, -100700]


def test_random_faults_refuse_sends_before_sending(telegram: TelegramStandIn) -> None:
    telegram.faults.kinds = ("429", "500")
    telegram.faults.set_rate(0.5, seed=3)

    async def send_all() -> list[str]:
        outcomes = []
        async with bot(telegram) as client:
            for n in range(40):
                try:
                    await client.send_message(1000 + n, f"message {n}")
                    outcomes.append("sent")
                except RetryAfter:
                    outcomes.append("429")
                except NetworkError:  # PTB's class for a 5xx
                    outcomes.append("500")
        return outcomes

    outcomes = asyncio.run(send_all())
    assert {kind: outcomes.count(kind) for kind in ("429", "500")} == dict(telegram.faults.injected)
    assert 0 < outcomes.count("sent") < 40
    assert sum(len(sent) for sent in telegram.chats.values()) == outcomes.count("sent")
    assert telegram.refused == []  # injected, not the limits


def test_updates_reach_the_webhook_with_its_secret_token(telegram: TelegramStandIn) -> None:
    with WebhookReceiver() as receiver:

        async def register() -> None:
            async with bot(telegram) as client:
                await client.set_webhook(f"{receiver.url}/", secret_token="s3cr3t_-")
                with pytest.raises(BadRequest):
                    await client.set_webhook("http://127.0.0.1:1/", secret_token="not allowed!")

        asyncio.run(register())
        answer = telegram.post_update({"update_id": 1, "message": {"text": "/help"}})
    assert answer.status_code == 200
    (post,) = receiver.posts
    assert post.headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cr3t_-"
    assert b'"update_id": 1' in post.body


def test_a_lost_answer_sends_the_message_and_answers_too_late(telegram: TelegramStandIn) -> None:
    telegram.faults.timeout_s = 1.0
    telegram.faults.fail_next("timeout_after_apply")

    async def send() -> None:
        request = HTTPXRequest(read_timeout=0.3)
        async with Bot(TOKEN, base_url=telegram.base_url, request=request) as client:
            with pytest.raises(TimedOut):
                await client.send_message(42, "lost answer")

    asyncio.run(send())
    assert telegram.texts(42) == ["lost answer"]
