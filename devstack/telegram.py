"""A Telegram Bot API stand-in: the methods the bridge uses, Telegram's answers and its limits.

Served at `<url>/bot<token>/<method>` (JSON, form or multipart bodies, as python-telegram-bot
sends them): getMe, sendMessage, sendPhoto, getFile (then `<url>/file/bot<token>/<path>`),
setWebhook (with `secret_token`), deleteWebhook, getWebhookInfo. Kept from Telegram (docs/SERVICES.md, Telegram):
text up to 4096 characters and captions up to 1024, counted after the HTML is parsed; about one
message a second per chat, 20 a minute per group (negative chat ids) and 30 a second in all;
beyond a limit, 429 with `parameters.retry_after`. Every message sent is kept per chat.

What Telegram refuses, it refuses (core.telegram.org/bots/api; the wording as Telegram answers,
from tdlib's MessageEntity.cpp and what bots quote of Telegram's answers):
- HTML that Telegram's parser does not take (`parse_html`): 400 "Bad Request: can't parse
  entities: ...".
- Chats it does not know. The bot knows the chats the tests register (`added_to` a group,
  `started_by` a person, `add_topic` in a forum) and those an update came from: unknown, 400
  "Bad Request: chat not found"; a person met in a group who never started the bot, 403
  "Forbidden: bot can't initiate conversation with a user"; a topic not in the chat, 400 "Bad
  Request: message thread not found"; a group `upgrade_to_supergroup`d, 400 "Bad Request: group
  chat was upgraded to a supergroup chat" with `parameters.migrate_to_chat_id`.
- Webhooks other than HTTPS on ports 443, 80, 88 or 8443 (400 "Bad Request: bad webhook: ...").
  The functions here are plain HTTP on free ports, so `front` plays the DNS name and the
  TLS-terminating front that carry the public URL to the local address.

`post_update` plays a person writing to the bot: the update goes to the webhook, with
`X-Telegram-Bot-Api-Secret-Token` when a secret is set (none otherwise). An answer other than
2xx, or none within `webhook_timeout_s`, leaves the update pending, as Telegram keeps it to send
again later: `redeliver()` is that later, when the test says.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests

from devstack.google_api import Faults
from devstack.httpserver import LoopbackServer, Reply

Json = dict[str, Any]
_SENDS = frozenset({"sendMessage", "sendPhoto"})
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
PER_CHAT_S = 1.0
PER_GROUP_MINUTE = 20
GLOBAL_PER_SECOND = 30
WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})
WEBHOOK_TIMEOUT_S = 60.0
"""How long Telegram waits for a webhook's answer (about a minute; docs/SERVICES.md, Telegram)."""


class BotApiError(Exception):
    def __init__(
        self,
        code: int,
        description: str,
        retry_after: int | None = None,
        *,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.code, self.description = code, description
        self.parameters: Json = {}
        """Telegram's ResponseParameters: what to do instead (wait, or use the new chat id)."""
        if retry_after is not None:
            self.parameters["retry_after"] = retry_after
        if migrate_to_chat_id is not None:
            self.parameters["migrate_to_chat_id"] = migrate_to_chat_id

    def reply(self) -> Reply:
        body: Json = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return Reply.json(self.code, body)


@dataclass
class Sent:
    chat_id: int
    message_id: int
    text: str | None = None
    caption: str | None = None
    parse_mode: str | None = None
    photo: str | None = None
    thread: int | None = None
    """The forum topic (message_thread_id) it went to."""
    shown: str = ""
    """What the person reads: the text (or caption) with its HTML parsed."""


@dataclass
class Chat:
    """A chat as the bot knows it."""

    type: str
    """private, group or supergroup."""
    started: bool = False
    """A private chat: the person started the bot (only then may the bot write first)."""
    topics: set[int] = field(default_factory=set)
    """A forum's topics (message_thread_id)."""
    upgraded_to: int | None = None
    """A group upgraded to a supergroup: the supergroup's id."""


@dataclass
class Limits:
    """Sliding windows per chat, per group and overall; a clock the tests may drive."""

    clock: Callable[[], float] = time.monotonic
    group_window_s: float = 60.0
    """Tests may shorten the group window (20 per window) to see a long backlog drain quickly."""
    forced: dict[int, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    """retry_after values to answer the next messages to a chat with, whatever the windows say."""
    _chats: dict[int, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _all: deque[float] = field(default_factory=deque)

    def admit(self, chat_id: int) -> int | None:
        """None when a message may go now, else the seconds to wait (Telegram's retry_after)."""
        if self.forced[chat_id]:
            return self.forced[chat_id].popleft()
        now = self.clock()
        window, cap, span = (
            (self._chats[chat_id], PER_GROUP_MINUTE, self.group_window_s)
            if chat_id < 0
            else (self._chats[chat_id], 1, PER_CHAT_S)
        )
        for times, limit, seconds in ((window, cap, span), (self._all, GLOBAL_PER_SECOND, 1.0)):
            while times and times[0] <= now - seconds:
                times.popleft()
            if len(times) >= limit:
                return max(1, math.ceil(times[0] + seconds - now))
        window.append(now)
        self._all.append(now)
        return None


class TelegramStandIn(LoopbackServer):
    name = "telegram-stand-in"

    def __init__(
        self,
        token: str,
        *,
        username: str = "erp_bridge_bot",
        clock: Callable[[], float] = time.monotonic,
        group_window_s: float = 60.0,
    ) -> None:
        super().__init__()
        self.token = token
        self.username = username
        self.limits = Limits(clock, group_window_s=group_window_s)
        self.chats: dict[int, list[Sent]] = defaultdict(list)
        self.sent_at: dict[int, list[float]] = defaultdict(list)
        """When each message was accepted (the limits' clock), per chat."""
        self.refused: list[tuple[int, int]] = []
        """(chat id, retry_after) of every 429 answered."""
        self.calls: Counter[str] = Counter()
        """Bot API methods called, by name (getMe: a session opened)."""
        self.webhook: tuple[str, str | None] | None = None
        """(public URL, secret token) setWebhook registered."""
        self.webhook_timeout_s = WEBHOOK_TIMEOUT_S
        self.fronts: dict[str, str] = {}
        """Public URL prefix -> the local address that serves it (`front`)."""
        self.pending: deque[Json] = deque()
        """Updates the webhook has not taken (no 2xx answer), oldest first: `redeliver` sends them."""
        self.deliveries: list[tuple[int, int | None]] = []
        """(update_id, the webhook's status or None for no answer) of every delivery attempt."""
        self.last_error: str | None = None
        """getWebhookInfo's last_error_message."""
        self.known: dict[int, Chat] = {}
        """The chats the bot may write to, or knows of (`added_to`, `started_by`, updates)."""
        self.files: dict[str, bytes] = {}
        self.blocked: set[int] = set()
        """Chats whose person blocked the bot: Telegram answers 403."""
        self.faults = Faults(kinds=("429", "500", "timeout"), timeout_s=25.0)
        """A random share of sends refused before sending (`faults.set_rate`): 429 retry_after 1
        (counted in `faults.injected`, not in `refused`), 500, or no answer within the client's
        20 s; and, when asked for by kind, "timeout_after_apply": sent, its answer too late."""
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """python-telegram-bot's `base_url` (the token is appended)."""
        return self.url + "/bot"

    @property
    def base_file_url(self) -> str:
        return self.url + "/file/bot"

    def add_file(self, content: bytes) -> str:
        """A photo someone sent: its file_id."""
        file_id = f"AgAC{next(self._ids):08d}"
        self.files[file_id] = content
        return file_id

    # -- the chats the bot knows ---------------------------------------------------------------
    def added_to(self, *chat_ids: int, topics: Iterable[int] = ()) -> None:
        """The bot was added to these groups (ids starting -100 are supergroups), with these
        forum `topics` (message_thread_id) in each."""
        with self._lock:
            for chat_id in chat_ids:
                kind = "supergroup" if str(chat_id).startswith("-100") else "group"
                self.known.setdefault(chat_id, Chat(kind)).topics.update(topics)

    def started_by(self, *user_ids: int) -> None:
        """These people pressed Start: the bot may write to them."""
        with self._lock:
            for user_id in user_ids:
                self.known.setdefault(user_id, Chat("private")).started = True

    def add_topic(self, chat_id: int, thread_id: int) -> None:
        """A forum topic someone opened in a group the bot is in."""
        self.added_to(chat_id, topics=(thread_id,))

    def upgrade_to_supergroup(self, chat_id: int) -> int:
        """A group becomes a supergroup, with a new id (returned), as Telegram upgrades them;
        messages to the old id are refused with `migrate_to_chat_id`."""
        with self._lock:
            group = self.known.get(chat_id)
            if group is None or group.type != "group":
                raise ValueError(f"{chat_id} is not a group the bot is in")
            new_id = int(f"-100{abs(chat_id):010d}")
            group.upgraded_to = new_id
            self.known[new_id] = Chat("supergroup", topics=set(group.topics))
            return new_id

    def _saw(self, update: Mapping[str, Any]) -> None:
        """Telegram knows the chat an update comes from: a person writing privately started the
        bot; a group message tells of the group, its topic, and its writer (who may not have)."""
        message = update.get("message") or update.get("edited_message")
        if not isinstance(message, Mapping) or not isinstance(message.get("chat"), Mapping):
            return
        chat_id, kind = message["chat"].get("id"), message["chat"].get("type")
        if not isinstance(chat_id, int):
            return
        if kind == "private":
            self.started_by(chat_id)
            return
        topic = message.get("message_thread_id") if message.get("is_topic_message") else None
        self.added_to(chat_id, topics=[topic] if isinstance(topic, int) else [])
        writer = message.get("from")
        if isinstance(writer, Mapping) and isinstance(writer.get("id"), int):
            with self._lock:
                self.known.setdefault(writer["id"], Chat("private"))

    def throttle_next(self, chat_id: int, retry_after: int = 1) -> None:
        """Answer the next message to `chat_id` with 429 retry_after, as Telegram may anytime."""
        with self._lock:
            self.limits.forced[chat_id].append(retry_after)

    def busiest_window(self, chats: Iterable[int], window_s: float) -> int:
        """The most messages these chats took together within any `window_s` seconds."""
        times = sorted(t for chat in chats for t in self.sent_at.get(chat, ()))
        return max(
            (sum(1 for t in times[i:] if t < start + window_s) for i, start in enumerate(times)),
            default=0,
        )

    def texts(self, chat_id: int) -> list[str]:
        """The messages sent to a chat as the bot wrote them (HTML markup included), oldest first."""
        return [sent.text or sent.caption or "" for sent in self.chats.get(chat_id, [])]

    def shown(self, chat_id: int) -> list[str]:
        """What a person reads in a chat (the HTML parsed), oldest first."""
        return [sent.shown for sent in self.chats.get(chat_id, [])]

    # -- the webhook ----------------------------------------------------------------------------
    def front(self, public_url: str, local_url: str) -> None:
        """Requests to URLs starting `public_url` (HTTPS, as setWebhook takes) reach `local_url`
        instead: the DNS name and TLS-terminating load balancer in front of the functions."""
        self.fronts[public_url] = local_url

    def post_update(
        self, update: Mapping[str, Any], *, secret: str | None = None
    ) -> requests.Response:
        """A person writes to the bot: Telegram posts the update to the webhook. An answer other
        than 2xx, or none in time (requests.Timeout raised), keeps it pending for `redeliver`.
        `secret` replaces the secret header: a forged request, not Telegram's, never sent again."""
        self._saw(update)
        if secret is not None:
            url, _ = self._webhook()
            headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
            return requests.post(url, json=dict(update), headers=headers, timeout=30)
        return self._deliver(dict(update))

    def redeliver(self) -> list[requests.Response | None]:
        """Telegram's later attempt: every pending update is sent again, oldest first; those
        the webhook does not take stay pending. The answers (None: no answer in time)."""
        with self._lock:
            due = list(self.pending)
            self.pending.clear()
        answers: list[requests.Response | None] = []
        for update in due:
            try:
                answers.append(self._deliver(update))
            except requests.RequestException:
                answers.append(None)
        return answers

    def _webhook(self) -> tuple[str, str | None]:
        """The local address serving the registered webhook, and its secret token."""
        if self.webhook is None:
            raise RuntimeError("no webhook is set")
        url, token = self.webhook
        for public, local in self.fronts.items():
            if url.startswith(public):
                return local + url[len(public) :], token
        raise RuntimeError(f"no front serves {url}: call front(public_url, local_url)")

    def _deliver(self, update: Json) -> requests.Response:
        url, token = self._webhook()
        headers = {"X-Telegram-Bot-Api-Secret-Token": token} if token is not None else {}
        update_id = int(update.get("update_id", 0))
        try:
            answer = requests.post(
                url, json=update, headers=headers, timeout=self.webhook_timeout_s
            )
        except requests.RequestException as exc:
            self._failed(update, None, type(exc).__name__)
            raise
        if not 200 <= answer.status_code < 300:
            self._failed(update, answer.status_code, f"{answer.status_code} {answer.reason}")
        else:
            with self._lock:
                self.deliveries.append((update_id, answer.status_code))
        return answer

    def _failed(self, update: Json, status: int | None, why: str) -> None:
        with self._lock:
            self.deliveries.append((int(update.get("update_id", 0)), status))
            self.pending.append(update)
            self.last_error = f"Wrong response from the webhook: {why}"

    # -- HTTP ---------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        url = urlsplit(raw_path)
        path = unquote(url.path)  # file downloads come with the token's ":" as %3A
        prefix = f"/bot{self.token}/"
        file_prefix = f"/file/bot{self.token}/"
        if path.startswith(file_prefix):
            content = self.files.get(path[len(file_prefix) :].removeprefix("photos/"))
            return (
                Reply(200, content)
                if content is not None
                else BotApiError(404, "Not Found").reply()
            )
        if not path.startswith(prefix):
            return BotApiError(401, "Unauthorized").reply()  # a wrong token, as Telegram answers
        name = path[len(prefix) :]
        with self._lock:
            self.calls[name] += 1
        fault = self.faults.take() if name in _SENDS else None
        if fault is not None and fault != "timeout_after_apply":
            return self._refusal(fault)
        params = _params(headers.get("Content-Type", ""), body, url.query)
        handler = getattr(self, f"_{name}", None)
        if handler is None:
            return BotApiError(404, "Not Found: method not found").reply()
        try:
            with self._lock:
                reply = Reply.json(200, {"ok": True, "result": handler(params)})
        except BotApiError as exc:
            return exc.reply()
        return self.faults.delivered(fault, reply)

    def _refusal(self, fault: str) -> Reply:
        """An injected failure, before anything is sent."""
        if fault == "timeout":
            return Reply(502, delay_s=self.faults.timeout_s)  # the client gives up first
        if fault == "429":
            return BotApiError(429, "Too Many Requests: retry after 1", retry_after=1).reply()
        return BotApiError(int(fault), "Internal Server Error").reply()

    # -- methods ------------------------------------------------------------------------------
    def _getMe(self, params: Json) -> Json:
        return {
            "id": 7000001,
            "is_bot": True,
            "first_name": "ERP Bridge",
            "username": self.username,
        }

    def _sendMessage(self, params: Json) -> Json:
        text = str(params.get("text") or "")
        parse_mode = params.get("parse_mode")
        shown = _shown(text, parse_mode)
        if not shown.strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        if len(shown) > TEXT_LIMIT:
            raise BotApiError(400, "Bad Request: message is too long")
        topic = params.get("message_thread_id")
        sent = Sent(
            0,
            0,
            text=text,
            parse_mode=parse_mode,
            thread=int(topic) if topic is not None else None,
            shown=shown,
        )
        sent = self._send(params, sent)
        return self._message(sent)

    def _sendPhoto(self, params: Json) -> Json:
        caption = params.get("caption")
        shown = _shown(str(caption or ""), params.get("parse_mode"))
        if len(shown) > CAPTION_LIMIT:
            raise BotApiError(400, "Bad Request: message caption is too long")
        photo = params.get("photo")
        if not photo:
            raise BotApiError(400, "Bad Request: there is no photo in the request")
        sent = self._send(params, Sent(0, 0, caption=caption, photo=str(photo)[:40], shown=shown))
        return self._message(sent)

    def _getFile(self, params: Json) -> Json:
        file_id = str(params.get("file_id") or "")
        if file_id not in self.files:
            raise BotApiError(400, "Bad Request: invalid file_id")
        size = len(self.files[file_id])
        return {
            "file_id": file_id,
            "file_unique_id": file_id[-6:],
            "file_size": size,
            "file_path": f"photos/{file_id}",
        }

    def _setWebhook(self, params: Json) -> bool:
        url = str(params.get("url") or "")
        if not url:  # "an empty string to remove webhook integration"
            self.webhook = None
            return True
        _check_webhook_url(url)
        secret = params.get("secret_token")
        if secret is not None and not _valid_secret(str(secret)):
            raise BotApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = (url, str(secret) if secret is not None else None)
        return True

    def _deleteWebhook(self, params: Json) -> bool:
        self.webhook = None
        return True

    def _getWebhookInfo(self, params: Json) -> Json:
        info: Json = {
            "url": self.webhook[0] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.pending),
        }
        if self.last_error is not None:
            info["last_error_message"] = self.last_error
        return info

    def _send(self, params: Json, sent: Sent) -> Sent:
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, TypeError, ValueError):
            raise BotApiError(400, "Bad Request: chat not found") from None
        chat = self.known.get(chat_id)
        if chat is None:
            raise BotApiError(400, "Bad Request: chat not found")
        if chat.upgraded_to is not None:
            raise BotApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=chat.upgraded_to,
            )
        if chat.type == "private" and not chat.started:
            raise BotApiError(403, "Forbidden: bot can't initiate conversation with a user")
        if chat_id in self.blocked:
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        if sent.thread is not None and sent.thread not in chat.topics:
            raise BotApiError(400, "Bad Request: message thread not found")
        wait = self.limits.admit(chat_id)
        if wait is not None:
            self.refused.append((chat_id, wait))
            raise BotApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        sent.chat_id, sent.message_id = chat_id, next(self._ids)
        self.chats[chat_id].append(sent)
        self.sent_at[chat_id].append(self.limits.clock())
        return sent

    def _message(self, sent: Sent) -> Json:
        chat_type = self.known[sent.chat_id].type
        message: Json = {
            "message_id": sent.message_id,
            "date": int(time.time()),
            "chat": {"id": sent.chat_id, "type": chat_type},
            "from": self._getMe({}),
        }
        if sent.text is not None:
            message["text"] = sent.text
        if sent.photo is not None:
            message["photo"] = [
                {"file_id": sent.photo, "file_unique_id": "u1", "width": 1, "height": 1}
            ]
            if sent.caption:
                message["caption"] = sent.caption
        return message


def _check_webhook_url(url: str) -> None:
    """setWebhook's refusals: Telegram calls only HTTPS URLs on ports 443, 80, 88 or 8443
    (core.telegram.org/bots/api#setwebhook and its webhook guide; the wording as Telegram
    answers it, quoted by bots that met it). Whether the host resolves is not played."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise BotApiError(
            400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
        )
    try:
        port = parts.port or 443
    except ValueError:
        port = 0
    if port not in WEBHOOK_PORTS:
        raise BotApiError(
            400, "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
        )


def _shown(text: str, parse_mode: object) -> str:
    """The text a person reads: parsed when sent in HTML parse mode (the only one used here)."""
    if str(parse_mode or "").upper() != "HTML":
        return text
    try:
        return parse_html(text)
    except HtmlRefused as exc:
        raise BotApiError(400, f"Bad Request: can't parse entities: {exc}") from None


# -- Telegram's HTML --------------------------------------------------------------------------
HTML_TAGS = frozenset(
    {
        "a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
        "code", "pre", "blockquote", "tg-emoji",
    }
)  # fmt: skip
"""The tags of Telegram's HTML style (core.telegram.org/bots/api#html-style)."""
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(?:#[xX]([0-9a-fA-F]*)|#([0-9]*)|([a-zA-Z]*));?")
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.-]*")


class HtmlRefused(ValueError):
    """Telegram's parser refused the markup; the message is Telegram's (after "can't parse
    entities: ")."""


def parse_html(markup: str) -> str:
    """The text Telegram makes of `markup` in HTML parse mode: tags removed, entities decoded;
    HtmlRefused where Telegram refuses it.

    Played after tdlib's parser (td/telegram/MessageEntity.cpp, which Telegram's Bot API server
    runs) and the Bot API's formatting options: only HTML_TAGS; `span` only with class
    "tg-spoiler"; `tg-emoji` only with a numeric emoji-id; every tag closed, in order; the named
    entities &lt; &gt; &amp; &quot; and numeric ones decoded, any other `&` kept as text. Offsets
    count UTF-8 bytes, as Telegram's do. Entity nesting rules are not checked."""
    shown: list[str] = []
    open_tags: list[str] = []
    at = 0
    while at < len(markup):
        char = markup[at]
        if char == "&":
            decoded, after = _entity(markup, at)
            shown.append(decoded)
            at = after
        elif char != "<":
            shown.append(char)
            at += 1
        elif markup.startswith("</", at):
            at = _end_tag(markup, at, open_tags)
        else:
            at = _start_tag(markup, at, open_tags)
    if open_tags:
        raise HtmlRefused(f'Can\'t find end tag corresponding to start tag "{open_tags[-1]}"')
    return "".join(shown)


def _offset(markup: str, at: int) -> int:
    return len(markup[:at].encode())


def _entity(markup: str, at: int) -> tuple[str, int]:
    """The character an entity at `at` stands for and where it ends; a lone "&" otherwise."""
    found = _ENTITY.match(markup, at)
    if found is None:  # cannot happen: the pattern matches any "&"
        return "&", at + 1
    hexadecimal, decimal, name = found.groups()
    if name is not None:
        decoded = _NAMED_ENTITIES.get(name)
        if decoded is None:
            return "&", at + 1
        return decoded, found.end()
    digits = hexadecimal if hexadecimal is not None else decimal
    value = int(digits, 16 if hexadecimal is not None else 10) if digits else 0
    if not 0 < value < 0x10FFFF or len(digits) + (3 if hexadecimal is not None else 2) >= 10:
        return "&", at + 1
    return chr(value), found.end()


def _end_tag(markup: str, at: int, open_tags: list[str]) -> int:
    offset = _offset(markup, at)
    if not open_tags:
        raise HtmlRefused(f"Unexpected end tag at byte offset {offset}")
    end = at + 2
    while end < len(markup) and not markup[end].isspace() and markup[end] != ">":
        end += 1
    name = markup[at + 2 : end]
    while end < len(markup) and markup[end].isspace():
        end += 1
    if end >= len(markup) or markup[end] != ">":
        raise HtmlRefused(f"Unclosed end tag at byte offset {offset}")
    expected = open_tags.pop()
    if name and name != expected:
        raise HtmlRefused(
            f'Unmatched end tag at byte offset {offset}, expected "</{expected}>", '
            f'found "</{name}>"'
        )
    return end + 1


def _start_tag(markup: str, at: int, open_tags: list[str]) -> int:
    offset = _offset(markup, at)
    end = at + 1
    while end < len(markup) and not markup[end].isspace() and markup[end] != ">":
        end += 1
    if end >= len(markup):
        raise HtmlRefused(f"Unclosed start tag at byte offset {offset}")
    name = markup[at + 1 : end].lower()
    if name not in HTML_TAGS:
        raise HtmlRefused(f'Unsupported start tag "{name}" at byte offset {offset}')
    attributes, end = _attributes(markup, end, name, offset)
    if name == "span" and attributes.get("class") != "tg-spoiler":
        raise HtmlRefused(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
    if name == "tg-emoji" and not 0 < _number(attributes.get("emoji-id", "")) < 2**63:
        raise HtmlRefused("Invalid custom emoji identifier specified")
    open_tags.append(name)
    return end + 1


def _attributes(markup: str, at: int, tag: str, offset: int) -> tuple[dict[str, str], int]:
    """A start tag's attributes from `at` to its ">" (whose index is returned)."""
    attributes: dict[str, str] = {}
    while True:
        at = _skip_spaces(markup, at)
        if at >= len(markup):
            raise HtmlRefused(f'Unclosed start tag "{tag}" at byte offset {offset}')
        if markup[at] == ">":
            return attributes, at
        begin = at
        while at < len(markup) and not markup[at].isspace() and markup[at] not in "=>":
            at += 1
        name = markup[begin:at].lower()
        if not name:
            raise HtmlRefused(f'Empty attribute name in the tag "{tag}" at byte offset {offset}')
        at = _skip_spaces(markup, at)
        if at >= len(markup) or markup[at] != "=":
            attributes[name] = ""  # a bare attribute (blockquote's expandable)
            continue
        at = _skip_spaces(markup, at + 1)
        if at >= len(markup):
            raise HtmlRefused(f'Unclosed start tag "{tag}" at byte offset {offset}')
        attributes[name], at = _attribute_value(markup, at, offset)


def _attribute_value(markup: str, at: int, offset: int) -> tuple[str, int]:
    """A quoted string (entities decoded) or a name token (lowercased), and where it ends."""
    size = len(markup)
    if markup[at] not in "'\"":
        token = _NAME_TOKEN.match(markup, at)
        after = token.end() if token else at
        if after >= size or (not markup[after].isspace() and markup[after] != ">"):
            raise HtmlRefused(f"Unexpected end of name token at byte offset {_offset(markup, at)}")
        return markup[at:after].lower(), after
    quote, value = markup[at], []
    at += 1
    while at < size and markup[at] != quote:
        if markup[at] == "&":
            decoded, at = _entity(markup, at)
            value.append(decoded)
        else:
            value.append(markup[at])
            at += 1
    if at + 1 >= size:  # no closing quote, or nothing after it
        raise HtmlRefused(f"Unclosed start tag at byte offset {offset}")
    return "".join(value), at + 1


def _skip_spaces(markup: str, at: int) -> int:
    while at < len(markup) and markup[at].isspace():
        at += 1
    return at


def _number(text: str) -> int:
    return int(text) if text.isascii() and text.isdigit() else 0


def _valid_secret(secret: str) -> bool:
    return 1 <= len(secret) <= 256 and all(
        c.isascii() and (c.isalnum() or c in "_-") for c in secret
    )


def _params(content_type: str, body: bytes, query: str) -> Json:
    """Telegram takes parameters as a query, JSON, a form or multipart/form-data."""
    params: Json = {key: values[-1] for key, values in parse_qs(query).items()}
    if content_type.startswith("application/json") and body:
        params.update(json.loads(body))
    elif content_type.startswith("application/x-www-form-urlencoded"):
        params.update({key: values[-1] for key, values in parse_qs(body.decode()).items()})
    elif content_type.startswith("multipart/form-data"):
        import email.parser
        import email.policy

        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                params[name] = payload if part.get_filename() else payload.decode()
    return params
