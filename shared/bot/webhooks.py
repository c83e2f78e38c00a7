"""The two webhooks people reach the bridge through: Telegram's bot and WhatsApp (Twilio).


Telegram: the secret token must match (403 otherwise); each update is handled once (a claim on
its update_id), the bot's replies sent, and 200 answered; 503 when a retry can help, 200 for what
a retry will not fix (docs/SERVICES.md, Telegram: anything else makes Telegram send it again for a day).

WhatsApp: Twilio's signature over the configured public URL must match (403 otherwise); the
sender is known by the phone number on an ERPNext contact; `STATUS <id>` answers about the
sender's own requests only; every answer is TwiML.
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
from shared.bot.ports import BotStore, ReplySender, Sessions, SignatureCheck
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
