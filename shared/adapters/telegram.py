"""Telegram through python-telegram-bot: messages and photo downloads, errors into the tree.

PTB 22 is async-only and a Bot must not outlive its event loop (docs/SERVICES.md, Telegram), so every loop opens
its own `session()`. The bot's replies and downloads share one session for the instance's life
(`KeptSession`, on a loop of its own thread), so an update costs no new session (a getMe); the
CLI's helpers run one short loop each. The token is part of every URL Telegram serves: it never
reaches a message, a log or a repr.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TypeVar

import httpx
from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from shared.errors import ChatMoved, UpstreamRejected, UpstreamUnavailable
from shared.platform import resilience

SERVICE = "telegram"
PHOTO_LIMIT_BYTES = 20 * 1024 * 1024
"""Bots may download files up to 20 MB."""


@dataclass(frozen=True)
class TelegramApi:
    token: str
    base_url: str | None = None
    """A local stand-in's `<url>/bot`; Telegram's own when None."""
    base_file_url: str | None = None
    timeout_s: float = 20.0
    connections: int = 16

    def __repr__(self) -> str:
        return f"TelegramApi(base_url={self.base_url!r})"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[TelegramSession]:
        request = HTTPXRequest(
            connection_pool_size=self.connections,
            read_timeout=self.timeout_s,
            write_timeout=self.timeout_s,
            connect_timeout=min(self.timeout_s, 10.0),
            pool_timeout=self.timeout_s,
        )
        bot = Bot(
            self.token,
            base_url=self.base_url or "https://api.telegram.org/bot",
            base_file_url=self.base_file_url or "https://api.telegram.org/file/bot",
            request=request,
            get_updates_request=request,
        )
        try:
            with _translated("start a session"):
                await bot.initialize()  # getMe: an outside call like any other
            yield TelegramSession(bot)
        finally:
            await bot.shutdown()

    def me(self) -> str:
        """The bot's username: Telegram accepted the token."""

        async def run() -> str:
            async with self.session() as telegram:
                return str(telegram.bot.username)

        return asyncio.run(run())

    def set_webhook(self, url: str, secret: str) -> None:
        """Point Telegram at the bot's webhook; every update will carry `secret`."""

        async def run() -> None:
            async with self.session() as telegram:
                with _translated("set the webhook"):
                    await telegram.bot.set_webhook(url, secret_token=secret)

        asyncio.run(run())


T = TypeVar("T")


class KeptSession:
    """One bot session kept for the instance's life, on an event loop of its own thread, for
    the synchronous callers (the bot's webhook): opened on first use, opened again after it
    failed to open."""

    def __init__(self, api: TelegramApi, *, timeout_s: float = 60.0) -> None:
        self._api = api
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened: AbstractAsyncContextManager[TelegramSession] | None = None
        """The open session's context, held so that the session lives as long as we do."""
        self._session: TelegramSession | None = None

    def __repr__(self) -> str:
        return f"KeptSession({self._api!r})"

    def run(self, work: Callable[[TelegramSession], Awaitable[T]]) -> T:
        session, loop = self._open()
        return asyncio.run_coroutine_threadsafe(_awaited(work(session)), loop).result(
            self._timeout_s
        )

    def send(self, chat: int, text: str, topic: int | None = None) -> int:
        return self.run(lambda session: session.send(chat, text, topic))

    def download(self, file_id: str) -> bytes:
        return self.run(lambda session: session.download(file_id))

    def _open(self) -> tuple[TelegramSession, asyncio.AbstractEventLoop]:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="telegram", daemon=True).start()
                self._loop = loop
            if self._session is None:
                opened = self._api.session()
                future = asyncio.run_coroutine_threadsafe(opened.__aenter__(), self._loop)
                self._session, self._opened = future.result(self._timeout_s), opened
            return self._session, self._loop


async def _awaited(work: Awaitable[T]) -> T:
    return await work


@dataclass(frozen=True)
class TelegramSession:
    bot: Bot

    async def send(self, chat: int, text: str, topic: int | None = None) -> int:
        """Send HTML text (into a forum `topic` if given); the message id. Raises
        UpstreamUnavailable (retry_after_s on 429), ChatMoved, or UpstreamRejected."""
        with _translated("send a message"):
            message = await self.bot.send_message(
                chat,
                text,
                parse_mode=ParseMode.HTML,
                disable_web_page_preview=True,
                message_thread_id=topic,
            )
        return message.message_id

    async def download(self, file_id: str) -> bytes:
        with _translated("download a file"):
            file = await self.bot.get_file(file_id)
            if file.file_size and file.file_size > PHOTO_LIMIT_BYTES:
                raise UpstreamRejected("the file is larger than 20 MB", service=SERVICE)
            return bytes(await file.download_as_bytearray())


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """One attempt through the Telegram circuit breaker, PTB's errors into ours. A sync context
    around an `await` is enough: the breaker never blocks. No retries here: a send whose answer
    was lost may have been delivered, and the drainer paces and retries its own."""
    with resilience.guarded(SERVICE, what), _tree(what):
        yield


@contextmanager
def _tree(what: str) -> Iterator[None]:
    """PTB's errors into ours, without the request (whose URL holds the token)."""
    try:
        yield
    except InvalidToken:  # its message can quote the token
        raise UpstreamRejected("the bot token was refused", service=SERVICE) from None
    except RetryAfter as exc:
        wait = exc.retry_after
        seconds = wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)
        raise UpstreamUnavailable(
            f"telegram throttled {what}; retry after {seconds:g} s",
            service=SERVICE,
            retry_after_s=seconds,
        ) from None
    except ChatMigrated as exc:
        raise ChatMoved(exc.new_chat_id) from None
    except (BadRequest, Forbidden) as exc:  # BadRequest is a NetworkError in PTB: first
        raise UpstreamRejected(
            f"telegram refused to {what}: {exc.message}", service=SERVICE
        ) from None
    except (TimedOut, NetworkError) as exc:
        raise UpstreamUnavailable(
            f"telegram did not answer to {what} ({type(exc).__name__})",
            service=SERVICE,
            maybe_applied=_maybe_applied(exc),
        ) from None
    except TelegramError as exc:
        raise UpstreamRejected(
            f"telegram refused to {what}: {exc.message}", service=SERVICE
        ) from None


def _maybe_applied(exc: NetworkError) -> bool:
    """Whether Telegram may have done what a failed call asked: yes when the request left and no
    answer came; no when connecting failed, or when Telegram answered (a 5xx is a NetworkError
    without a transport cause)."""
    cause = exc.__cause__
    if isinstance(cause, httpx.HTTPError):
        return not isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    return isinstance(exc, TimedOut)
