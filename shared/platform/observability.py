"""What leaves the process about an invocation: its bound context, one scrubber, Sentry and /metrics.

Log lines (shared.platform.logs) and Sentry events both pass through the one `Scrubber`, so a secret, a
token, a phone number or a person's message text reaches neither. `start` is called once per
function instance by the composition root.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl

from shared.errors import Retryable

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from sentry_sdk.transport import Transport
    from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event, Hint

log = logging.getLogger(__name__)

# ---- the invocation's context --------------------------------------------------------------------

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "bridge_context", default=MappingProxyType({})
)
_CONTEXT_ATTR = "_bridge_context"
TAG_KEYS = ("function", "event_type", "doctype", "consumer")
"""Context fields that become Sentry tags (few values each: safe to index)."""


def current() -> Mapping[str, str]:
    """The fields bound for the running invocation (function, event_id, doctype, name, trace...)."""
    return _context.get()


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Add fields to the context inside the block (nested blocks add to the outer).

    An exception leaving the block keeps the innermost context, so an error reported after the
    invocation's blocks have closed (Sentry's Flask hook, a wrapper's log line) still names it.
    """
    merged = MappingProxyType({**_context.get(), **{k: v for k, v in fields.items() if v}})
    token = _context.set(merged)
    try:
        yield
    except BaseException as exc:
        if not hasattr(exc, _CONTEXT_ATTR):
            with contextlib.suppress(AttributeError):  # a builtin exception without __dict__
                setattr(exc, _CONTEXT_ATTR, merged)
        raise
    finally:
        _context.reset(token)


def context_of(exc: BaseException | None) -> Mapping[str, str]:
    """The context an exception was raised in (empty when it never crossed a bound block)."""
    found = getattr(exc, _CONTEXT_ATTR, None)
    return found if isinstance(found, Mapping) else MappingProxyType({})


# ---- the scrubber --------------------------------------------------------------------------------

REDACTED = "[redacted]"
TEXT_REMOVED = "[text removed]"
PHONE_REMOVED = "[phone]"

SECRET_KEY = re.compile(
    r"authorization|cookie|signature|secret|token|password|passwd|api[_-]?key|private[_-]?key|credential",
    re.IGNORECASE,
)
"""Keys whose values are secrets wherever they appear (headers, extras, log fields)."""
PHONE_KEY = re.compile(r"phone|mobile|wa_?id", re.IGNORECASE)
TEXT_KEYS = frozenset(
    ("text", "caption", "body", "description", "subject", "resolution_details", "content")
)
"""Keys (any case) whose values are what people wrote: Telegram text/caption, WhatsApp Body,
an Issue's subject and description that alerts quote. Removed from structures, and their values
in the invocation's inputs are removed from every other string."""

_BOT_TOKEN = re.compile(r"\b(bot)?\d{5,}:[A-Za-z0-9_-]{20,}")
_AUTH_VALUE = re.compile(
    r"\b(token|bearer|basic)\s+(?=[^\s'\",;]*[:.=_-]|[^\s'\",;]{16})[^\s'\",;]+", re.IGNORECASE
)
"""An Authorization value (`token key:secret`, `Bearer ...`), not the word in a sentence."""
_QUERY_SECRET = re.compile(
    r"([?&](?:token|key|secret|signature|sig|api_key|access_token|auth)=)[^&\s'\"]+",
    re.IGNORECASE,
)
_PHONE = re.compile(r"(?<![\w+./-])(\+|00)?\(?\d[\d\s().-]{5,22}\d(?![\w:/]|[.-]\d)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MIN_SECRET = 6
_MIN_TEXT = 4
_MAX_INPUT_BYTES = 256 * 1024


def _phone(match: re.Match[str]) -> str:
    """Replace what reads as a phone number: E.164 (+ or 00 and 8-15 digits), a typed national
    form with separators (9-15 digits), or a bare run of 11-15 digits. Dates, ids like
    ISS-2026-00012, chat ids and amounts do not match."""
    found = match.group(0)
    digits = sum(ch.isdigit() for ch in found)
    if _DATE.match(found):
        return found
    if match.group(1):
        wanted = 8 <= digits <= 15
    elif found.isdigit():
        wanted = 11 <= digits <= 15
    else:
        wanted = 9 <= digits <= 15
    return PHONE_REMOVED if wanted else found


class _Inputs:
    """What came into the running invocation (raw bodies); the people's texts read out lazily."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self._texts: tuple[str, ...] | None = None

    def add(self, raw: bytes) -> None:
        self.raw.append(raw)
        self._texts = None

    def texts(self) -> tuple[str, ...]:
        if self._texts is None:
            found: set[str] = set()
            for raw in self.raw:
                found.update(_texts_in(raw[:_MAX_INPUT_BYTES]))
            # Longest first, so a text containing a shorter one is removed whole.
            self._texts = tuple(sorted(found, key=len, reverse=True))
        return self._texts


def _texts_in(raw: bytes) -> Iterator[str]:
    """Values of TEXT_KEYS in a JSON body (any depth) or a form body (Twilio's)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        parsed: object = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: brackets nested too deep to parse
        parsed = None
    if isinstance(parsed, dict | list):
        yield from _texts_in_json(parsed)
        return
    for key, value in parse_qsl(text, keep_blank_values=False):
        if key.lower() in TEXT_KEYS and len(value) >= _MIN_TEXT:
            yield value


def _texts_in_json(value: object) -> Iterator[str]:
    # A stack, not recursion: a body nested nearly as deep as the parser allows is walked whole.
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            for key, inner in current.items():
                if isinstance(inner, str) and str(key).lower() in TEXT_KEYS:
                    if len(inner) >= _MIN_TEXT:
                        yield inner
                else:
                    pending.append(inner)
        elif isinstance(current, list):
            pending.extend(current)


_inputs: contextvars.ContextVar[_Inputs | None] = contextvars.ContextVar(
    "bridge_inputs", default=None
)


@contextmanager
def invocation() -> Iterator[None]:
    """One function invocation: inputs noted inside it are forgotten when it ends."""
    token = _inputs.set(_Inputs())
    try:
        yield
    finally:
        _inputs.reset(token)


def note_input(raw: bytes) -> None:
    """Remember a raw body of this invocation, so the texts people wrote in it are scrubbed from
    whatever it logs or reports (cheap: parsed only if something is written)."""
    inputs = _inputs.get()
    if inputs is not None:
        inputs.add(raw)


class Scrubber:
    """Removes secrets, tokens, phone numbers and people's texts from strings and structures."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def protect(self, *values: str | None) -> None:
        """Never let these values out (settings' secrets); too-short values are ignored."""
        wanted = {v for v in values if v and len(v) >= _MIN_SECRET}
        with self._lock:
            merged = set(self._secrets) | wanted
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def protect_settings(self, settings: object) -> None:
        """Protect every `repr=False` field of a settings dataclass and of those inside it."""
        self.protect(*_hidden_fields(settings))

    def text(self, text: str) -> str:
        inputs = _inputs.get()
        if inputs is not None and inputs.raw:
            for written in inputs.texts():
                text = text.replace(written, TEXT_REMOVED)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _BOT_TOKEN.sub(lambda m: f"{m.group(1) or ''}{REDACTED}", text)
        text = _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
        return _PHONE.sub(_phone, text)

    def value(self, value: object, key: str | None = None) -> object:
        """A copy of `value` with secrets, phones and texts removed, by key and by content."""
        if key is not None and value not in (None, ""):
            by_key = _by_key(key, value)
            if by_key is not None:
                return by_key
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def _by_key(key: str, value: object) -> str | None:
    """What replaces a value its key alone marks as secret, a phone or a text; None otherwise."""
    if SECRET_KEY.search(key):
        return REDACTED
    if PHONE_KEY.search(key) and isinstance(value, str | int):
        return PHONE_REMOVED
    if key.lower() in TEXT_KEYS and isinstance(value, str):
        return TEXT_REMOVED
    return None


def _hidden_fields(settings: object) -> Iterator[str]:
    if not dataclasses.is_dataclass(settings) or isinstance(settings, type):
        return
    for field in dataclasses.fields(settings):
        inner = getattr(settings, field.name, None)
        if not field.repr and isinstance(inner, str):
            yield inner
        elif dataclasses.is_dataclass(inner):
            yield from _hidden_fields(inner)


scrubber = Scrubber()
"""The process's one scrubber: log lines and Sentry events both go through it."""


# ---- Sentry --------------------------------------------------------------------------------------


def _tags(exc: BaseException | None) -> dict[str, str]:
    context = {**current(), **context_of(exc)}
    return {key: context[key] for key in TAG_KEYS if context.get(key)}


def before_send(event: Event, hint: Hint) -> Event | None:
    """Sentry's last look at an event: retryable errors dropped, tags added, everything scrubbed.

    Retryable errors (429, 5xx, a held claim) are expected and redelivered: they show as
    `retried` outcomes and pending error records, not as Sentry issues.
    """
    exc_info = hint.get("exc_info") if hint else None
    exc = exc_info[1] if exc_info else None
    if isinstance(exc, Retryable):
        return None
    event["tags"] = {**(event.get("tags") or {}), **_tags(exc)}
    request: object = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "env"):
            request.pop(key, None)
    for frame in _frames(event):
        frame.pop("vars", None)
    return cast("Event", scrubber.value(event))


def before_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb | None:
    return cast("Breadcrumb", scrubber.value(crumb))


def _frames(event: Event) -> Iterable[dict[str, Any]]:
    sources: list[Any] = [*((event.get("exception") or {}).get("values") or [])]
    sources += (event.get("threads") or {}).get("values") or []
    for source in sources:
        stacktrace = source.get("stacktrace") if isinstance(source, dict) else None
        for frame in (stacktrace or {}).get("frames") or []:
            if isinstance(frame, dict):
                yield frame


_sentry_lock = threading.Lock()
_sentry_on = False


def init_sentry(function: str, dsn: str, *, transport: type[Transport] | None = None) -> None:
    """Sentry for this instance (once): no PII, no request bodies, no local variables, scrubbed."""
    global _sentry_on  # noqa: PLW0603 (one SDK client per process, as Sentry wants it)
    with _sentry_lock:
        if _sentry_on:
            return
        import sentry_sdk

        sentry_sdk.init(
            dsn=dsn,
            environment=os.environ.get("SENTRY_ENVIRONMENT") or None,
            release=os.environ.get("SENTRY_RELEASE") or os.environ.get("K_REVISION") or None,
            server_name=function,
            # send_default_pii unset: Sentry collects no user, cookies or PII by default.
            include_local_variables=False,
            max_request_body_size="never",
            before_send=before_send,
            before_breadcrumb=before_breadcrumb,
            transport=transport,
        )
        sentry_sdk.set_tag("service", function)
        _sentry_on = True


def capture(exc: BaseException) -> None:
    """Report an exception to Sentry (when it is on); `before_send` decides what is sent."""
    if _sentry_on:
        import sentry_sdk

        sentry_sdk.capture_exception(exc)


def stop_sentry() -> None:
    """Flush and turn Sentry off (tests; a process that forks its own workers does not need it)."""
    global _sentry_on  # noqa: PLW0603 (see init_sentry)
    with _sentry_lock:
        if not _sentry_on:
            return
        import sentry_sdk

        sentry_sdk.get_client().close(timeout=2)
        sentry_sdk.init(dsn="")  # no DSN (not even SENTRY_DSN from the environment): sends nothing
        _sentry_on = False


# ---- /metrics ------------------------------------------------------------------------------------


@functools.cache
def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Serve the Prometheus registry as text on `addr:port` (any path, /metrics too).

    functions-framework runs gunicorn, which imports the function in its master process and
    forks the worker that handles requests; the worker's instruments are the ones to show. So
    the socket bound here is served by the master only until it forks, then by the forked
    worker. One worker per instance (functions-framework's WORKERS default) keeps one registry
    behind the port.

    In the cloud nothing scrapes a function by itself: deploy with METRICS_PORT set and Google
    Cloud Managed Service for Prometheus' run-gmp-sidecar (Cloud Run services, which 2nd gen
    functions are) scraping localhost:METRICS_PORT; without it, leave METRICS_PORT unset and
    the instruments are kept but not served.
    """
    from prometheus_client import start_wsgi_server

    server, _ = start_wsgi_server(port, addr=addr)
    owner = os.getpid()

    def in_parent() -> None:
        if os.getpid() == owner:
            _stop_serving(server)

    def in_child() -> None:
        threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()

    os.register_at_fork(after_in_parent=in_parent, after_in_child=in_child)


def _stop_serving(server: WSGIServer) -> None:
    # Stops the accept loop only: the socket stays open for the next worker gunicorn forks.
    if not getattr(server, "_handed_over", False):
        server.shutdown()
        server._handed_over = True  # type: ignore[attr-defined]


def start(function: str, settings: object, *, transport: type[Transport] | None = None) -> None:
    """Once per instance: protect the settings' secrets, turn Sentry on when SENTRY_DSN is set,
    serve /metrics when METRICS_PORT is set."""
    scrubber.protect_settings(settings)
    dsn = os.environ.get("SENTRY_DSN")
    if dsn:
        init_sentry(function, dsn, transport=transport)
    port = os.environ.get("METRICS_PORT")
    if port:
        try:
            serve_metrics(int(port), os.environ.get("METRICS_ADDR", "127.0.0.1"))
        except (OSError, ValueError):
            # Metrics are for people watching; the function still serves its events without them.
            log.exception("/metrics is not served: METRICS_PORT %r cannot be bound", port)
