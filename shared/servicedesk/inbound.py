"""Each inbound WhatsApp message is answered once, however often its signed request comes.

Twilio's signature covers the URL and the form but no time: a request someone captured stays
valid until the auth token changes. Answered again, a replay would reopen the client's 24-hour
window (the next completion would then go as free text, which Twilio refuses with 63016) and
tell whoever replayed it the request's status afresh. So `OncePerMessage` stands in front of the
WhatsApp webhook: a signed message is claimed by its `MessageSid`, and a repeat is answered with
an empty TwiML `<Response/>` (nothing is sent), reaching neither the session nor the desk. A
signed message without a MessageSid is refused 400: Twilio always sends one. Delivery status
callbacks (about messages we sent, not ones people wrote) pass through unclaimed.

The claim follows the Telegram bot's updates (BotStore): claimed before handling, with a lease
for a handler that dies; marked answered afterwards, also when the webhook failed in a way a
retry would only repeat; dropped when a retry can help (Retryable: 503), so that Twilio's retry
is answered afresh. A repeat while the first is still being answered gets 503 (ClaimHeld).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Protocol
from urllib.parse import parse_qsl

from shared.errors import AccessDenied, ClaimHeld, InvalidPayload, Retryable, UpstreamUnavailable
from shared.platform import logs
from shared.platform.runtime import Headers, HttpAnswer, HttpRequest, read_body

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
"""The WhatsApp webhook's own limit on a form (shared/bot/webhooks.py)."""
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
"""A Twilio sid: two letters and 32 hex digits (SM..., MM...); never a path in a document id."""
NOTHING = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
"""TwiML that sends no message."""


class InboundMessages(Protocol):
    """The inbound messages answered, by MessageSid, shared by every instance."""

    def first_time(self, sid: str, *, now: datetime) -> str | None:
        """A claim (its token) to answer the message; None when it was answered already.

        Raises ClaimHeld while another handler's lease runs.
        """
        ...

    def answered(self, sid: str, *, now: datetime) -> None:
        """Every later request with this sid is a repeat."""
        ...

    def forget(self, sid: str, claim: str) -> None:
        """Answering failed and a retry can help: drop our claim so the retry is answered."""
        ...


SignedBy = Callable[[Mapping[str, str], Headers], bool]
"""Whether the request's headers carry Twilio's signature of these form fields."""


@dataclass(frozen=True, slots=True)
class _Read:
    """The request again, its body already read (a request's stream reads once)."""

    content_length: int | None
    stream: IO[bytes]
    headers: Headers
    args: Mapping[str, str]


@dataclass(frozen=True)
class OncePerMessage:
    """`webhook` (the WhatsApp webhook's handler) run at most once per inbound message."""

    webhook: Callable[[HttpRequest], HttpAnswer]
    messages: InboundMessages
    signed: SignedBy
    clock: Callable[[], datetime]

    def handle(self, request: HttpRequest) -> HttpAnswer:
        body = read_body(request, MAX_BODY_BYTES)
        params = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        # Before anything is remembered: an unsigned request claims nothing and learns nothing.
        if not self.signed(params, request.headers):
            raise AccessDenied("the Twilio signature is missing or wrong")
        again = _Read(len(body), io.BytesIO(body), request.headers, request.args)
        if "MessageStatus" in params and "Body" not in params:
            return self.webhook(again)  # a status callback, about a message we sent
        sid = params.get("MessageSid", "")
        if not _SID.match(sid):
            raise InvalidPayload("a signed message without a MessageSid")
        try:
            claim = self.messages.first_time(sid, now=self.clock())
        except ClaimHeld:
            raise UpstreamUnavailable(
                "this message is being answered by another instance", service="twilio"
            ) from None
        if claim is None:
            logs.log_event(log, logging.WARNING, "WhatsApp message repeated: not answered", sid=sid)
            return NOTHING, 200, {"Content-Type": "text/xml"}
        answered = True
        try:
            return self.webhook(again)
        except Retryable:
            answered = False
            self.messages.forget(sid, claim)
            raise
        finally:
            if answered:
                self.messages.answered(sid, now=self.clock())
