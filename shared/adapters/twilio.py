"""WhatsApp through Twilio's Messages API (the official `twilio` client), errors into the tree.

    timeout, no connection, 429 (20429), 5xx -> UpstreamUnavailable (retry_after_s from Retry-After)
    63016 in a create answer               -> OutsideSessionWindow(UpstreamRejected)
    63007 (our From is no WhatsApp sender) -> ConfigurationError naming the sender and its setting
    any other 4xx                          -> UpstreamRejected (Twilio's code, never its message)

Twilio reports 63016 (free text outside the 24-hour window) asynchronously: the create answers 201
"queued" and the message turns "failed" later, seen by `status()` or the status callback
(`failure_of` turns either into the tree). Messages and reprs hold no token, body or full number.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException  # type: ignore[import-untyped]
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]
from urllib3.exceptions import NewConnectionError

from shared.alerts.ports import SentMessage
from shared.errors import (
    ConfigurationError,
    OutsideSessionWindow,
    UpstreamRejected,
    UpstreamUnavailable,
)
from shared.platform import resilience

SERVICE = "twilio"
OUTSIDE_WINDOW = 63016
SENDER_NOT_ENABLED = 63007
FAILED_STATUSES = frozenset({"failed", "undelivered"})


@dataclass(frozen=True)
class MessageStatus:
    """Where a sent message stands: queued, accepted, sent, delivered, read, failed, undelivered."""

    sid: str
    status: str
    error_code: int | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


class WhatsAppSender:
    """One Twilio account sending from one WhatsApp number. Build it once per instance; calls from
    several threads are safe (one requests session, Retry-After noted per thread)."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        base_url: str | None = None,
        status_callback_url: str | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        """`from_number` is "+E164" or "whatsapp:+E164"; `base_url` replaces https://api.twilio.com
        (a local stand-in); `status_callback_url` is the public URL Twilio reports statuses to."""
        self.account_sid = account_sid
        self.from_address = _whatsapp(from_number)
        self.base_url = base_url
        self.status_callback_url = status_callback_url
        self._retry_after = threading.local()
        http_client = TwilioHttpClient(
            timeout=timeout_s, request_hooks={"response": [self._note_retry_after]}
        )
        self._client = Client(account_sid, auth_token, http_client=http_client)
        if base_url:
            self._client.api.base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return (
            f"WhatsAppSender(account_sid={self.account_sid!r}, "
            f"from={_masked(self.from_address)!r}, base_url={self.base_url!r})"
        )

    def send_text(self, to_e164: str, body: str) -> str:
        """A free-form message (delivered only within 24 h of the person's last message); its sid."""
        return self._create(to_e164, body=body)

    def send_template(self, to_e164: str, content_sid: str, variables: Mapping[str, str]) -> str:
        """An approved template (HX...) with its {{1}}, {{2}} ... values; allowed any time; its sid."""
        return self._create(
            to_e164, content_sid=content_sid, content_variables=json.dumps(dict(variables))
        )

    def status(self, sid: str) -> MessageStatus:
        """The message's current status and error code, as Twilio has it now."""

        def fetch() -> Any:
            with self._translated("fetch a message", None):
                return self._client.messages(sid).fetch()

        # A read is safe to repeat: a blip is retried here, an outage goes up the tree.
        message = resilience.IN_INVOCATION.run(fetch, what="twilio fetch a message")
        return MessageStatus(str(message.sid), str(message.status), _code(message.error_code))

    def sent_since(self, to_e164: str, since: datetime) -> list[SentMessage]:
        """Messages this account sent from our number to `to_e164` through the API, created at
        or after `since`, newest first: what a send whose answer was lost may have left."""
        to = _whatsapp(to_e164)

        def listed() -> list[Any]:
            with self._translated("list messages", to):
                return list(self._client.messages.list(to=to, from_=self.from_address, limit=50))

        messages = resilience.IN_INVOCATION.run(listed, what="twilio list messages")
        return [
            SentMessage(str(message.sid), str(message.body or ""))
            for message in messages
            if message.direction == "outbound-api"
            and message.date_created is not None
            and message.date_created >= since
        ]

    def _create(self, to_e164: str, **fields: str) -> str:
        to = _whatsapp(to_e164)
        if self.status_callback_url:
            fields["status_callback"] = self.status_callback_url
        with self._translated("send a message", to):
            message = self._client.messages.create(from_=self.from_address, to=to, **fields)
        return str(message.sid)

    def _note_retry_after(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._retry_after.seconds = _seconds(response.headers.get("Retry-After"))

    @contextmanager
    def _translated(self, what: str, to: str | None) -> Iterator[None]:
        """Twilio's and requests' errors into ours, named by operation, status and Twilio's code;
        one attempt through the Twilio circuit breaker (a send is not safe to repeat)."""
        self._retry_after.seconds = None
        recipient = f" to {_masked(to)}" if to else ""
        with resilience.guarded(SERVICE, what):
            try:
                yield
            except TwilioRestException as exc:
                status, code = int(exc.status), _code(exc.code)
                text = f"twilio refused to {what}{recipient}: HTTP {status}, error {code}"
                if code == OUTSIDE_WINDOW:
                    raise OutsideSessionWindow(text) from None
                if code == SENDER_NOT_ENABLED:
                    # The deployment is wrong, not the message: every send fails alike until
                    # the number is enabled at Twilio or the setting names one that is.
                    raise ConfigurationError(
                        f"twilio refused to {what}{recipient}: our sender "
                        f"{_masked(self.from_address)} (TWILIO_WHATSAPP_FROM) is not a WhatsApp "
                        f"sender of account {self.account_sid} (error 63007); enable it at "
                        "Twilio or set TWILIO_WHATSAPP_FROM to one that is"
                    ) from None
                if status in (408, 429) or status >= 500:
                    raise UpstreamUnavailable(
                        f"twilio could not {what}{recipient}: HTTP {status}, error {code}",
                        service=SERVICE,
                        retry_after_s=getattr(self._retry_after, "seconds", None),
                    ) from None
                raise UpstreamRejected(text, service=SERVICE) from None
            except requests.RequestException as exc:
                raise UpstreamUnavailable(
                    f"twilio unreachable to {what}{recipient}: {type(exc).__name__}",
                    service=SERVICE,
                    maybe_applied=_maybe_applied(exc),
                ) from None
            except TwilioException as exc:
                raise UpstreamRejected(
                    f"twilio client refused to {what}{recipient}: {type(exc).__name__}",
                    service=SERVICE,
                ) from None


def failure_of(status: str, error_code: int | str | None) -> UpstreamRejected | None:
    """The error tree's view of a message's status (from `status()` or a status callback's
    MessageStatus and ErrorCode): None unless it failed; OutsideSessionWindow for 63016."""
    if status not in FAILED_STATUSES:
        return None
    code = _code(error_code)
    text = f"twilio could not deliver a message: {status}, error {code}"
    if code == OUTSIDE_WINDOW:
        return OutsideSessionWindow(text)
    return UpstreamRejected(text, service=SERVICE)


def signature_valid(
    public_url: str, params: Mapping[str, str], signature: str, auth_token: str
) -> bool:
    """Whether X-Twilio-Signature signs these POST params for the URL Twilio called: the configured
    public URL, never the URL the framework saw (behind a load balancer they differ)."""
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(public_url, dict(params), signature))


def _maybe_applied(exc: requests.RequestException) -> bool:
    """Whether the request may have reached Twilio: not if connecting failed or timed out."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return not isinstance(reason, NewConnectionError)
    return isinstance(exc, requests.Timeout)


def _whatsapp(phone: str) -> str:
    phone = phone.strip()
    return phone if phone.startswith("whatsapp:") else f"whatsapp:{phone}"


def _masked(address: str) -> str:
    """The last four digits are enough to tell numbers apart in a log; the rest stays private."""
    return "+..." + address[-4:]


def _code(value: object) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: rare enough from Twilio to back off our own way
