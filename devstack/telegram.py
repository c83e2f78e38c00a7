"""A Telegram Bot API stand-in: the methods the bridge uses, Telegram's answers and its limits.

Served at `<url>/bot<token>/<method>` (JSON, form or multipart bodies, as python-telegram-bot
sends them): getMe, sendMessage, sendPhoto, getFile (then `<url>/file/bot<token>/<path>`),
setWebhook (with `secret_token`), deleteWebhook, getWebhookInfo. Kept from Telegram (docs/SERVICES.md, Telegram):
text up to 4096 characters and captions up to 1024, about one message a second per chat, 20 a
minute per group (negative chat ids) and 30 a second in all; beyond a limit, 429 with
`parameters.retry_after`. `post_update` plays a person writing to the bot: the update goes to
the webhook with `X-Telegram-Bot-Api-Secret-Token`. Every message sent is kept per chat.
"""

from __future__ import annotations

import itertools
import json
import math
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


class BotApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def reply(self) -> Reply:
        body: Json = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
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
        """What a person sees in a chat, oldest first."""
        return [sent.text or sent.caption or "" for sent in self.chats.get(chat_id, [])]

    def post_update(
        self, update: Mapping[str, Any], *, secret: str | None = None
    ) -> requests.Response:
        """A person writes to the bot: Telegram posts the update to the webhook."""
        if self.webhook is None:
            raise RuntimeError("no webhook is set")
        url, token = self.webhook
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret if secret is not None else token or ""}
        return requests.post(url, json=dict(update), headers=headers, timeout=30)

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
        if not text:
            raise BotApiError(400, "Bad Request: message text is empty")
        if len(text) > TEXT_LIMIT:
            raise BotApiError(400, "Bad Request: message is too long")
        topic = params.get("message_thread_id")
        sent = Sent(
            0,
            0,
            text=text,
            parse_mode=params.get("parse_mode"),
            thread=int(topic) if topic is not None else None,
        )
        sent = self._send(params, sent)
        return self._message(sent)

    def _sendPhoto(self, params: Json) -> Json:
        caption = params.get("caption")
        if caption and len(str(caption)) > CAPTION_LIMIT:
            raise BotApiError(400, "Bad Request: message caption is too long")
        photo = params.get("photo")
        if not photo:
            raise BotApiError(400, "Bad Request: there is no photo in the request")
        sent = self._send(params, Sent(0, 0, caption=caption, photo=str(photo)[:40]))
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
        secret = params.get("secret_token")
        if secret is not None and not _valid_secret(str(secret)):
            raise BotApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = (str(params["url"]), str(secret) if secret is not None else None)
        return True

    def _deleteWebhook(self, params: Json) -> bool:
        self.webhook = None
        return True

    def _getWebhookInfo(self, params: Json) -> Json:
        return {
            "url": self.webhook[0] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }

    def _send(self, params: Json, sent: Sent) -> Sent:
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, TypeError, ValueError):
            raise BotApiError(400, "Bad Request: chat not found") from None
        if chat_id in self.blocked:
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        wait = self.limits.admit(chat_id)
        if wait is not None:
            self.refused.append((chat_id, wait))
            raise BotApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        sent.chat_id, sent.message_id = chat_id, next(self._ids)
        self.chats[chat_id].append(sent)
        self.sent_at[chat_id].append(self.limits.clock())
        return sent

    def _message(self, sent: Sent) -> Json:
        chat_type = "group" if sent.chat_id < 0 else "private"
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
