"""The two webhooks people reach the bridge through: Telegram's bot and WhatsApp (Twilio).


Telegram: the secret token must match (403 otherwise); each update is handled once (a claim on
its update_id), the bot's replies sent, and 200 answered; 503 when a retry can help, 200 for what
a retry will not fix (docs/SERVICES.md, Telegram: anything else makes Telegram send it again for a day).

WhatsApp: Twilio's signature over the configured public URL must match (403 otherwise); the
sender is known by the phone number on an ERPNext contact; `STATUS <id>` answers about the
sender's own requests only; every answer is TwiML.

Each inbound WhatsApp message is answered once, however often its signed request comes. The
signature covers the URL and the form but no time, so a captured request stays valid until the
auth token changes; answered again, a replay would reopen the client's 24-hour window (the next
completion would go as free text, which Twilio refuses with 63016). So a signed message is
claimed by its `MessageSid` (as the bot's updates are by update_id): a repeat gets an empty
`<Response/>` and touches nothing; a retryable failure drops the claim so Twilio's retry is
answered; a repeat while the first is answered gets 503. A signed message without a MessageSid
is refused 400 (Twilio always sends one). Status callbacks, about messages we sent, are not
claimed.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from shared.bot.commands import Reply, TelegramBot
from shared.bot.ports import BotStore, InboundMessages, ReplySender, Sessions, SignatureCheck
from shared.errors import (
    AccessDenied,
    ClaimHeld,
    InvalidPayload,
    NotFound,
    Retryable,
    UpstreamUnavailable,
)
from shared.platform import logs
from shared.platform.runtime import HttpAnswer, HttpRequest, answer, read_body
from shared.servicedesk.phones import normalise_e164
from shared.servicedesk.ports import ServiceDesk

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_UPDATE_BYTES = 1_000_000
_STATUS = re.compile(r"^\s*status\s+(\S+)\s*$", re.IGNORECASE)
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
"""A Twilio sid: two letters and 32 hex digits (SM..., MM...); never a path in a document id."""
NOTHING = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
"""TwiML that sends no message."""


@dataclass(frozen=True)
class TelegramWebhook:
    bot: TelegramBot
    store: BotStore
    sender: ReplySender
    secret: str
    clock: Callable[[], datetime]

    def handle(self, request: HttpRequest) -> HttpAnswer:
        given = request.headers.get(SECRET_HEADER) or ""
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            raise AccessDenied("the Telegram secret token is missing or wrong")
        try:
            update = json.loads(read_body(request, MAX_UPDATE_BYTES))
            update_id = int(update["update_id"])
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError, InvalidPayload):
            # OverflowError: an update_id of Infinity; RecursionError: brackets nested too deep.
            # Telegram would send the same bytes again for a day: take it, say so in the log.
            logs.log_event(log, logging.WARNING, "unreadable Telegram update ignored")
            return answer(200, ok=True, ignored="unreadable update")
        now = self.clock()
        try:
            if not self.store.first_time(update_id, now=now):
                return answer(200, ok=True, duplicate=True)
        except ClaimHeld:
            raise UpstreamUnavailable(
                "this update is being handled by another instance", service="telegram"
            ) from None
        with logs.bound(update_id=str(update_id)):
            try:
                replies = self.bot.handle(update)
                self._send(replies)
            except Retryable:
                self.store.forget_update(update_id)  # the redelivery is handled afresh
                raise
            except Exception:
                # A bug or a refused send: answering 503 would only bring the same update back.
                log.exception("Telegram update failed; not retried")
            self.store.mark_handled(update_id, now=self.clock())
        return answer(200, ok=True)

    def _send(self, replies: list[Reply]) -> None:
        if replies:
            self.sender.send_all(
                [(reply.chat_id, reply.text, reply.message_thread_id) for reply in replies]
            )


@dataclass(frozen=True)
class WhatsAppWebhook:
    desk: ServiceDesk
    sessions: Sessions
    messages: InboundMessages
    auth_token: str
    public_url: str
    signature_valid: SignatureCheck
    clock: Callable[[], datetime]
    on_failed: Callable[[str, str], None] = lambda sid, code: None
    """Told (message sid, Twilio error code) when a message we sent was not delivered."""

    def __repr__(self) -> str:
        return f"WhatsAppWebhook(public_url={self.public_url!r})"

    def handle(self, request: HttpRequest) -> HttpAnswer:
        body = read_body(request, MAX_UPDATE_BYTES)
        params = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        signature = request.headers.get(SIGNATURE_HEADER) or ""
        if not self.signature_valid(self.public_url, params, signature, self.auth_token):
            raise AccessDenied("the Twilio signature is missing or wrong")
        if "MessageStatus" in params and "Body" not in params:
            return self._status_callback(params)
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
        try:
            answered = self._answer(params)
        except Retryable:
            self.messages.forget(sid, claim)
            raise
        except Exception:
            self.messages.answered(sid, now=self.clock())  # a retry would only repeat it
            raise
        self.messages.answered(sid, now=self.clock())
        return answered

    def _answer(self, params: Mapping[str, str]) -> HttpAnswer:
        try:
            phone = normalise_e164(params.get("From", "").removeprefix("whatsapp:"))
        except ValueError:
            phone = None
        if not phone:
            return twiml("Sorry, I could not read your number.")
        customer = self.desk.customer_of_phone(phone)
        if customer is not None:  # strangers' numbers are not kept
            self.sessions.record_inbound(phone, now=self.clock())
        if customer is None:
            logs.log_event(log, logging.INFO, "WhatsApp message from an unknown number refused")
            return twiml(
                "Sorry, this number is not registered with us. Please ask your project "
                "manager to add it to your contact details."
            )
        asked = _STATUS.match(params.get("Body", ""))
        if asked is None:
            return twiml("Send STATUS followed by your request number, e.g. STATUS ISS-2026-00012.")
        return twiml(self._status(asked.group(1), customer))

    def _status(self, request_id: str, customer: str) -> str:
        refusal = f"I found no request {request_id} of yours."
        try:
            request = self.desk.request(request_id)
        except NotFound:
            return refusal
        # Someone else's request reads exactly like a missing one: nothing leaks.
        if request.customer != customer:
            return refusal
        return f"Request {request.id} ({request.subject}): {request.status}."

    def _status_callback(self, params: Mapping[str, str]) -> HttpAnswer:
        """Twilio reporting a message's fate: a failure (63016 outside the window) is logged."""
        if params.get("MessageStatus") in ("failed", "undelivered"):
            code, sid = params.get("ErrorCode", ""), params.get("MessageSid", "")
            logs.log_event(
                log, logging.WARNING, "WhatsApp message not delivered", error_code=code, sid=sid
            )
            self.on_failed(sid, code)
        return answer(200, ok=True)


def twiml(text: str) -> HttpAnswer:
    """One message back to the sender, in Twilio's markup."""
    body = f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(text)}</Message></Response>'
    return body, 200, {"Content-Type": "text/xml"}
