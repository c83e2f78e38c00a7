"""The Telegram stand-in through python-telegram-bot: answers, files, webhook secret, limits, and
what Telegram refuses (bad HTML, unknown chats and topics, upgraded groups, plain-HTTP webhooks),
with Telegram's status and body."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from telegram import Bot
from telegram.error import BadRequest, ChatMigrated, NetworkError, RetryAfter, TimedOut
from telegram.request import HTTPXRequest

from devstack.telegram import TelegramStandIn
from tests.helpers.clocks import Ticker
from tests.helpers.receivers import WebhookReceiver

TOKEN = "123456:stand-in-token"
PUBLIC = "https://bot.example.com/telegram/"


@pytest.fixture
def clock() -> Ticker:
    return Ticker(1000.0)


@pytest.fixture
def telegram(clock: Ticker) -> Iterator[TelegramStandIn]:
    with TelegramStandIn(TOKEN, clock=clock) as running:
        yield running


def bot(telegram: TelegramStandIn) -> Bot:
    return Bot(TOKEN, base_url=telegram.base_url, base_file_url=telegram.base_file_url)


def call(telegram: TelegramStandIn, method: str, **params: Any) -> tuple[int, Any]:
    """One Bot API call as raw HTTP: Telegram's status and JSON body."""
    answer = requests.post(f"{telegram.base_url}{TOKEN}/{method}", json=params, timeout=10)
    return answer.status_code, answer.json()


def refusal(code: int, description: str, **parameters: int) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


@pytest.fixture
def receiver(telegram: TelegramStandIn) -> Iterator[WebhookReceiver]:
    """The bot's webhook behind PUBLIC (the front), registered with setWebhook."""
    with WebhookReceiver() as running:
        telegram.front(PUBLIC, f"{running.url}/")
        assert call(telegram, "setWebhook", url=PUBLIC, secret_token="s3cr3t_-")[0] == 200
        yield running


def statuses(answers: list[requests.Response | None]) -> list[int | None]:
    return [None if answer is None else answer.status_code for answer in answers]


def private(person: int, text: str, update_id: int = 1) -> dict[str, Any]:
    chat = {"id": person, "type": "private"}
    message = {"message_id": 1, "chat": chat, "from": {"id": person}, "text": text}
    return {"update_id": update_id, "message": message}


def test_messages_photos_and_files_through_python_telegram_bot(telegram: TelegramStandIn) -> None:
    photo_id = telegram.add_file(b"\xff\xd8 photo")
    telegram.started_by(42)
    telegram.added_to(-100500)

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
    assert telegram.shown(42) == ["INV-5 & more"]  # what the person reads
    assert telegram.chats[-100500][0].caption == "site photo"


def test_limits_answer_429_with_retry_after(
    telegram: TelegramStandIn, clock: Ticker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # python-telegram-bot's coming retry_after type
    telegram.started_by(42)
    telegram.added_to(-100700)

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
    telegram.started_by(*range(1000, 1040))

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


def test_updates_reach_the_webhook_through_its_front_with_its_secret_token(
    telegram: TelegramStandIn, receiver: WebhookReceiver
) -> None:
    answer = telegram.post_update({"update_id": 1, "message": {"text": "/help"}})
    assert answer.status_code == 200
    (post,) = receiver.posts
    assert post.path == "/"  # the front carried the public URL to the local address
    assert post.headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cr3t_-"
    assert b'"update_id": 1' in post.body
    assert call(telegram, "setWebhook", url=PUBLIC, secret_token="not allowed!") == (
        400,
        refusal(400, "Bad Request: secret token contains unallowed characters"),
    )


def test_with_no_secret_token_set_the_secret_header_is_left_out(telegram: TelegramStandIn) -> None:
    """Telegram sends X-Telegram-Bot-Api-Secret-Token only when setWebhook set a secret_token
    (core.telegram.org/bots/api#setwebhook: "the header ... in every webhook request")."""
    with WebhookReceiver() as receiver:
        telegram.front(PUBLIC, f"{receiver.url}/")
        assert call(telegram, "setWebhook", url=PUBLIC)[0] == 200
        telegram.post_update({"update_id": 1, "message": {"text": "/help"}})
    (post,) = receiver.posts
    assert not any(name.lower() == "x-telegram-bot-api-secret-token" for name in post.headers)


@pytest.mark.parametrize(
    ("url", "description"),
    [
        ("http://bot.example.com/telegram/", "An HTTPS URL must be provided for webhook"),
        ("https://bot.example.com:8080/telegram/", "Webhook can be set up only on ports 80, 88, 443 or 8443"),
    ],
)  # fmt: skip
def test_set_webhook_refuses_what_is_not_https_on_telegrams_ports(
    telegram: TelegramStandIn, url: str, description: str
) -> None:
    """Telegram calls HTTPS webhooks on ports 443, 80, 88 or 8443 only
    (core.telegram.org/bots/api#setwebhook; the wording as Telegram answers, quoted by bots that
    met it). Whether the host resolves is not played."""
    assert call(telegram, "setWebhook", url=url) == (
        400,
        refusal(400, f"Bad Request: bad webhook: {description}"),
    )
    assert telegram.webhook is None
    assert call(telegram, "setWebhook", url="https://bot.example.com:8443/telegram/")[0] == 200


def test_an_update_the_webhook_refuses_is_sent_again_until_taken(
    telegram: TelegramStandIn, receiver: WebhookReceiver
) -> None:
    """A non-2xx answer makes Telegram keep the update and send it again later
    (core.telegram.org/bots/api#setwebhook: "In case of an unsuccessful request ... we will
    give up after a reasonable amount of attempts"); `redeliver` is that later. Telegram's
    backoff is not played: the test says when."""
    receiver.statuses = [503, 500]
    assert telegram.post_update(private(42, "/help")).status_code == 503
    assert call(telegram, "getWebhookInfo")[1]["result"]["pending_update_count"] == 1
    assert statuses(telegram.redeliver()) == [500]
    assert statuses(telegram.redeliver()) == [200]
    assert telegram.redeliver() == []  # taken: never sent again
    info = call(telegram, "getWebhookInfo")[1]["result"]
    assert info["pending_update_count"] == 0
    assert (
        info["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"
    )
    assert [post.json() for post in receiver.posts] == [private(42, "/help")] * 3
    assert telegram.deliveries == [(1, 503), (1, 500), (1, 200)]


def test_an_update_the_webhook_does_not_answer_in_time_is_sent_again(
    telegram: TelegramStandIn, receiver: WebhookReceiver
) -> None:
    telegram.webhook_timeout_s = 0.2
    receiver.delay_s = 1.0
    with pytest.raises(requests.Timeout):
        telegram.post_update(private(42, "/help"))
    receiver.delay_s = 0.0
    assert statuses(telegram.redeliver()) == [200]
    assert telegram.deliveries == [(1, None), (1, 200)]


@pytest.mark.parametrize(
    ("markup", "error"),
    [
        ("<br>", 'Unsupported start tag "br" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<b>INV-5", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>INV-5</i>", 'Unmatched end tag at byte offset 8, expected "</b>", found "</i>"'),
        ("INV-5</b>", "Unexpected end tag at byte offset 5"),
        ("x <b", "Unclosed start tag at byte offset 2"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ('<a href="https://x.y/', "Unclosed start tag at byte offset 0"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<tg-emoji emoji-id="x">y</tg-emoji>', "Invalid custom emoji identifier specified"),
        ("é<i>a</em>", 'Unmatched end tag at byte offset 6, expected "</i>", found "</em>"'),
    ],
)
def test_html_telegram_cannot_parse_is_400_cant_parse_entities(
    telegram: TelegramStandIn, markup: str, error: str
) -> None:
    """Telegram's HTML style (core.telegram.org/bots/api#html-style): only its tags, each closed;
    the errors worded as tdlib's parser (td/telegram/MessageEntity.cpp) words them, offsets in
    UTF-8 bytes ("é" takes two)."""
    telegram.started_by(42)
    assert call(telegram, "sendMessage", chat_id=42, text=markup, parse_mode="HTML") == (
        400,
        refusal(400, f"Bad Request: can't parse entities: {error}"),
    )
    assert telegram.texts(42) == []
    # Without a parse mode the same text is plain, and goes.
    assert call(telegram, "sendMessage", chat_id=42, text=markup)[0] == 200


def test_telegrams_html_is_parsed_into_what_people_read(telegram: TelegramStandIn) -> None:
    telegram.started_by(42)
    markup = (
        '<b>INV-5</b> &amp; <i>co</i> &lt;3 &#x41;&#66; &copy; <a href="https://x.y/?a=1&amp;b=2">'
        'link</a> <span class="tg-spoiler">s</span> <tg-spoiler>t</tg-spoiler> <u>u</u> '
        '<blockquote expandable>q</blockquote> <pre><code class="language-python">p</code></pre>'
        ' <tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>'
    )
    assert call(telegram, "sendMessage", chat_id=42, text=markup, parse_mode="HTML")[0] == 200
    assert telegram.shown(42) == ["INV-5 & co <3 AB &copy; link s t u q p 👍"]


def test_the_4096_limit_counts_the_text_after_its_html_is_parsed(telegram: TelegramStandIn) -> None:
    """ "1-4096 characters after entities parsing" (core.telegram.org/bots/api#sendmessage);
    counted in Unicode characters here (whether Telegram counts UTF-16 units was not checked)."""
    telegram.started_by(42, 43)
    fits = "<b>" + "&amp;" * 4096 + "</b>"  # 20,487 characters of markup, 4,096 shown
    assert call(telegram, "sendMessage", chat_id=42, text=fits, parse_mode="HTML")[0] == 200
    assert telegram.shown(42) == ["&" * 4096]
    assert call(telegram, "sendMessage", chat_id=43, text=fits + "x", parse_mode="HTML") == (
        400,
        refusal(400, "Bad Request: message is too long"),
    )
    assert call(telegram, "sendMessage", chat_id=43, text="<b> </b>", parse_mode="HTML") == (
        400,
        refusal(400, "Bad Request: message text is empty"),
    )


def test_a_chat_the_bot_does_not_know_is_400_chat_not_found(telegram: TelegramStandIn) -> None:
    """A chat id the bot never met (no group it is in, no person who wrote to it): Telegram's
    400 "Bad Request: chat not found" (the Bot API's error as bots quote it)."""
    for chat in (42, -100500, -4001):
        assert call(telegram, "sendMessage", chat_id=chat, text="hello") == (
            400,
            refusal(400, "Bad Request: chat not found"),
        )
    assert telegram.chats == {}


def test_a_person_who_never_started_the_bot_is_403_cant_initiate(
    telegram: TelegramStandIn, receiver: WebhookReceiver
) -> None:
    """A bot may not write first: a person the bot met in a group, who never started it, is 403
    "Forbidden: bot can't initiate conversation with a user" (as Telegram answers; assumed, not
    checked, that the bot "meets" a person by their group message). Once they write to the bot
    privately, it may answer."""
    group = {"id": -100500, "type": "supergroup"}
    said = {"message_id": 1, "chat": group, "from": {"id": 55}, "text": "hi all"}
    telegram.post_update({"update_id": 1, "message": said})
    assert call(telegram, "sendMessage", chat_id=55, text="hello") == (
        403,
        refusal(403, "Forbidden: bot can't initiate conversation with a user"),
    )
    assert call(telegram, "sendMessage", chat_id=-100500, text="hello all")[0] == 200
    telegram.post_update(private(55, "/start", update_id=2))
    assert call(telegram, "sendMessage", chat_id=55, text="hello")[0] == 200


def test_a_topic_not_in_the_chat_is_400_message_thread_not_found(telegram: TelegramStandIn) -> None:
    """Forum topics are message_thread_id; one the chat does not have is Telegram's 400 "Bad
    Request: message thread not found" (as bots quote it)."""
    telegram.added_to(-100500, topics=[7])
    assert call(telegram, "sendMessage", chat_id=-100500, text="x", message_thread_id=8) == (
        400,
        refusal(400, "Bad Request: message thread not found"),
    )
    assert call(telegram, "sendMessage", chat_id=-100500, text="x", message_thread_id=7)[0] == 200
    assert [sent.thread for sent in telegram.chats[-100500]] == [7]


def test_a_group_upgraded_to_a_supergroup_names_its_new_id(telegram: TelegramStandIn) -> None:
    """A group upgraded to a supergroup gets a new id (starting -100); messages to the old one
    are 400 "Bad Request: group chat was upgraded to a supergroup chat" with
    `parameters.migrate_to_chat_id` (core.telegram.org/bots/api#responseparameters), which
    python-telegram-bot raises as ChatMigrated."""
    telegram.added_to(-4001)
    new_id = telegram.upgrade_to_supergroup(-4001)
    assert new_id == -1000000004001
    assert call(telegram, "sendMessage", chat_id=-4001, text="x") == (
        400,
        refusal(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            migrate_to_chat_id=new_id,
        ),
    )

    async def send() -> None:
        async with bot(telegram) as client:
            with pytest.raises(ChatMigrated) as caught:
                await client.send_message(-4001, "to the old id")
            assert caught.value.new_chat_id == new_id
            sent = await client.send_message(new_id, "to the new id")
            assert sent.chat.type == "supergroup"

    asyncio.run(send())
    assert telegram.texts(new_id) == ["to the new id"] and telegram.texts(-4001) == []


def test_a_lost_answer_sends_the_message_and_answers_too_late(telegram: TelegramStandIn) -> None:
    telegram.faults.timeout_s = 1.0
    telegram.faults.fail_next("timeout_after_apply")

    async def send() -> None:
        request = HTTPXRequest(read_timeout=0.3)
        async with Bot(TOKEN, base_url=telegram.base_url, request=request) as client:
            with pytest.raises(TimedOut):
                await client.send_message(42, "lost answer")

    telegram.started_by(42)
    asyncio.run(send())
    assert telegram.texts(42) == ["lost answer"]
