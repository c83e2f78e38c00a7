"""A Twilio Programmable Messaging stand-in for WhatsApp: the Messages API, the 24-hour window, webhooks.

Served at `<url>/2010-04-01/Accounts/<AccountSid>/Messages.json` (create, form-encoded, HTTP Basic
with the account SID and auth token) and `.../Messages/<Sid>.json` (fetch); errors come as Twilio's
JSON body {code, message, more_info, status}. What the stand-in keeps from Twilio's documentation:

- A create that passes validation answers 201 with the Message resource, status "queued" ("accepted"
  with a MessagingServiceSid), error_code null. Request errors are synchronous 4xx with 2xxxx codes:
  20003 (401, credentials), 21211 (To not whatsapp:+E164), 21212 (From), 21602 (no Body nor
  ContentSid), 21617 (Body over 1600 characters), 21654 (ContentVariables without ContentSid),
  21655 (ContentSid unknown or malformed), 21656 (ContentVariables not a JSON object of values).
- 63007 (400): a `From` that is not one of the account's WhatsApp senders ("Twilio could not
  find a Channel with the specified From address"; twilio.com/docs/api/errors/63007, and raised
  by the client on create as people quote it; the 400 status is assumed, not checked against
  Twilio). The senders are `business_number` and those `enable_sender` adds.
- **63016 is asynchronous.** A free-form Body to a number whose last inbound message is older than
  24 hours is still accepted (201, "queued"); the message then turns "failed" with error_code 63016,
  seen by a fetch and by the StatusCallback (MessageStatus=failed, ErrorCode=63016). Sources:
  twilio.com/docs/api/errors/63016 ("This message failed to be delivered to the user because it was
  sent outside the messaging channel's allowed conversation window"; a TWILIO-logged error, not an
  API-request error) and twilio.com/docs/whatsapp/api/error-code-mapping (63016 is WhatsApp's own
  error 470, known only after Twilio hands the message to WhatsApp); Twilio's "Troubleshooting
  undelivered messages" article: invalid API requests get 400 with 2xxxx codes, channel errors land
  on the message record. Only inbound messages open the window; templates (ContentSid) go any time.
- Status callbacks are not sent for the initial status; then sent, delivered (or failed), form-encoded
  and signed like inbound webhooks. Inbound media is served without auth (Twilio's "HTTP Basic Auth for media" off).
- 429 with code 20429 ("safe to retry"): Twilio answers it for too many concurrent API requests of an
  account, and queues messages beyond a sender's throughput. The stand-in simplifies both into one
  configurable limit of messages per second per sender (`sender_mps`), answered with 20429.

`post_inbound` plays a person writing on WhatsApp: the window opens and Twilio's form goes to the
webhook, signed (X-Twilio-Signature) over the configured *public* URL. TwiML <Message> replies are
sent back to the person. Every outbound message is kept per recipient; `inbox(phone)` is what the
person sees. The clock is injectable; deliveries happen on a worker thread (`settle()` waits).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.etree import ElementTree

import requests

from devstack.google_api import FaultKind, Faults
from devstack.httpserver import LoopbackServer, Reply

Json = dict[str, Any]
API_VERSION = "2010-04-01"
SESSION_WINDOW = timedelta(hours=24)
BODY_LIMIT = 1600
WEBHOOK_TIMEOUT_S = 15.0
"""Twilio waits 15 s for a webhook's answer."""
SANDBOX_NUMBER = "whatsapp:+14155238886"

_WHATSAPP_ADDRESS = re.compile(r"^whatsapp:\+[1-9]\d{6,14}$")
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
_MESSAGES = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$"
)
_MEDIA = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)/Media/(?P<media>[^/.]+)$"
)

OUTSIDE_WINDOW = 63016
SENDER_NOT_ENABLED = 63007
OUTSIDE_WINDOW_MESSAGE = (
    "Failed to send freeform message because you are outside the allowed window. "
    "If you are using WhatsApp, please use a Message Template."
)
_FAULT_CODES = {
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}


class TwilioApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def reply(self, headers: Sequence[tuple[str, str]] = ()) -> Reply:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        return Reply.json(self.status, body, headers)


@dataclass
class Message:
    """One message as Twilio keeps it; `body` of a template is its rendered text."""

    sid: str
    account_sid: str
    from_: str
    to: str
    body: str
    direction: str
    status: str
    date_created: datetime
    date_updated: datetime
    content_sid: str | None = None
    content_variables: Mapping[str, str] = field(default_factory=dict)
    status_callback: str | None = None
    messaging_service_sid: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    date_sent: datetime | None = None
    media: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(media sid, content type, bytes) of an inbound message."""

    def resource(self) -> Json:
        """The JSON Twilio answers for this Message."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": format_datetime(self.date_created),
            "date_sent": format_datetime(self.date_sent) if self.date_sent else None,
            "date_updated": format_datetime(self.date_updated),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media)),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": f"{uri}/Media.json",
                "feedback": f"{uri}/Feedback.json",
            },
            "to": self.to,
            "uri": f"{uri}.json",
        }


@dataclass(frozen=True)
class Callback:
    """A status callback Twilio made: where, what, and the answer it got (None: no answer)."""

    url: str
    params: Mapping[str, str]
    status: int | None


@dataclass
class _Fault:
    status: int
    retry_after_s: int | None
    delay_s: float


class TwilioStandIn(LoopbackServer):
    name = "twilio-stand-in"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        business_number: str = SANDBOX_NUMBER,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sender_mps: int | None = 80,
        webhook_url: str | None = None,
        public_url: str | None = None,
        delivery_delay_s: float = 0.0,
    ) -> None:
        """`business_number` is the WhatsApp sender people write to; `sender_mps` the messages a
        second one sender may create before 20429 (None: no limit); `webhook_url` is where inbound
        messages are POSTed and `public_url` the URL they are signed for (defaults to webhook_url)."""
        super().__init__()
        if not account_sid.startswith("AC"):
            raise ValueError("an account SID starts with AC")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.business_number = _whatsapp(business_number)
        self.senders: set[str] = {self.business_number}
        """The account's WhatsApp senders ("whatsapp:+E164"): a message from another is 63007."""
        self.clock = clock
        self.sender_mps = sender_mps
        self.webhook_url = webhook_url
        self.public_url = public_url
        self.delivery_delay_s = delivery_delay_s
        self.messages: dict[str, Message] = {}
        """Every message by sid, inbound and outbound."""
        self.outbound: dict[str, list[Message]] = defaultdict(list)
        """Messages sent to each person (key "+E164"), failed ones included, in order."""
        self.inbound: list[Message] = []
        self.callbacks: list[Callback] = []
        self.refused: list[tuple[int, int]] = []
        """(HTTP status, Twilio code) of every error answered."""
        self._templates: dict[str, tuple[str, Mapping[str, str]]] = {}
        self._last_inbound: dict[str, datetime] = {}
        self._sent_at: dict[str, deque[datetime]] = defaultdict(deque)
        self._faults: deque[_Fault] = deque()
        self.faults = Faults(kinds=("429", "500", "503", "timeout"), timeout_s=20.0)
        """A random share of API calls refused before anything is sent (`faults.set_rate`):
        429 with Retry-After, 500, 503, or no answer within the client's 15 s; and, when asked
        for by kind, "timeout_after_apply": the message created, its answer too late."""
        self._deliveries: list[Future[None]] = []
        self._delivery = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twilio-delivery")
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"TwilioStandIn(account_sid={self.account_sid!r})"

    # -- set-up ---------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """What replaces https://api.twilio.com for a client."""
        return self.url

    def set_webhook(self, url: str, *, public_url: str | None = None) -> None:
        """Where inbound messages go (`url`) and the URL Twilio believes it calls (`public_url`):
        behind a load balancer they differ, and the signature covers the public one."""
        self.webhook_url, self.public_url = url, public_url

    def enable_sender(self, number: str) -> None:
        """Another number of the account becomes a WhatsApp sender."""
        with self._lock:
            self.senders.add(_whatsapp(number))

    def add_template(
        self, content_sid: str, text: str, *, defaults: Mapping[str, str] | None = None
    ) -> None:
        """An approved Content Template: `text` with {{1}}, {{2}} ... placeholders; `defaults`
        fill placeholders a send leaves out (as the template's sample values do)."""
        if not _CONTENT_SID.match(content_sid):
            raise ValueError("a Content SID is HX followed by 32 hex digits")
        self._templates[content_sid] = (text, dict(defaults or {}))

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        retry_after_s: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """The next `count` API calls answer `status` (429, 500, 503 ...) after `delay_s`, with a
        Retry-After header when `retry_after_s` is given."""
        with self._lock:
            self._faults.extend(_Fault(status, retry_after_s, delay_s) for _ in range(count))

    def open_window(self, phone: str) -> None:
        """The person wrote just now, without a webhook call (opens the 24-hour window)."""
        with self._lock:
            self._last_inbound[_e164(phone)] = self.clock()

    def window_open(self, phone: str) -> bool:
        with self._lock:
            last = self._last_inbound.get(_e164(phone))
            return last is not None and self.clock() - last < SESSION_WINDOW

    # -- what people see ------------------------------------------------------------------------
    def inbox(self, phone: str) -> list[str]:
        """The texts the person at `phone` received (delivered, in order)."""
        with self._lock:
            return [m.body for m in self.outbound.get(_e164(phone), []) if m.status == "delivered"]

    def message(self, sid: str) -> Message:
        with self._lock:
            return self.messages[sid]

    def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until every accepted message is delivered or failed and its callbacks are made."""
        with self._lock:
            pending = list(self._deliveries)
            self._deliveries = [future for future in pending if not future.done()]
        done, not_done = wait_for(pending, timeout=timeout_s)
        if not_done:
            raise TimeoutError(f"{len(not_done)} deliveries still pending")
        for future in done:
            future.result()

    # -- a person writes ------------------------------------------------------------------------
    def post_inbound(
        self,
        from_phone: str,
        body: str,
        *,
        media: Sequence[tuple[bytes, str]] = (),
        profile_name: str = "WhatsApp User",
        signature: str | None = None,
    ) -> requests.Response:
        """A person writes `body` (and `media`: (bytes, content type) pairs) on WhatsApp: the
        window opens and Twilio's form goes to the webhook, signed over the public URL unless
        `signature` replaces it. A TwiML <Message> in the answer is sent back to the person."""
        if self.webhook_url is None:
            raise RuntimeError("no webhook is set")
        sender = _whatsapp(from_phone)
        now = self.clock()
        sid = ("MM" if media else "SM") + uuid.uuid4().hex
        inbound = Message(
            sid=sid,
            account_sid=self.account_sid,
            from_=sender,
            to=self.business_number,
            body=body,
            direction="inbound",
            status="received",
            date_created=now,
            date_updated=now,
            date_sent=now,
            media=[("ME" + uuid.uuid4().hex, kind, content) for content, kind in media],
        )
        with self._lock:
            self.messages[sid] = inbound
            self.inbound.append(inbound)
            self._last_inbound[_e164(sender)] = now
        params = {
            "SmsMessageSid": sid,
            "NumMedia": str(len(media)),
            "ProfileName": profile_name,
            "MessageType": _message_type(media),
            "SmsSid": sid,
            "WaId": _e164(sender).removeprefix("+"),
            "SmsStatus": "received",
            "Body": body,
            "To": self.business_number,
            "NumSegments": "1",
            "ReferralNumMedia": "0",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": sender,
            "ApiVersion": API_VERSION,
        }
        for index, (media_sid, kind, _) in enumerate(inbound.media):
            params[f"MediaContentType{index}"] = kind
            params[f"MediaUrl{index}"] = (
                f"{self.url}/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}/Media/{media_sid}"
            )
        answer = self._post_signed(
            self.webhook_url, self.public_url or self.webhook_url, params, signature
        )
        if answer.status_code == 200:
            for text in _twiml_messages(answer.content):
                self._accept(
                    self.business_number,
                    sender,
                    text,
                    status_callback=None,
                    direction="outbound-reply",
                )
        return answer

    def signature_for(self, url: str, params: Mapping[str, str]) -> str:
        """X-Twilio-Signature: base64 HMAC-SHA1 (auth token) of the URL and the params sorted by name."""
        signed = url + "".join(f"{name}{params[name]}" for name in sorted(params))
        digest = hmac.new(self._auth_token.encode(), signed.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    # -- lifecycle ------------------------------------------------------------------------------
    def stop(self) -> None:
        super().stop()
        self._delivery.shutdown(wait=True, cancel_futures=True)

    # -- HTTP -----------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        path = urlsplit(raw_path).path
        try:
            if (media := _MEDIA.match(path)) and method == "GET":
                return self._media(media["account"], media["sid"], media["media"])
            self._authenticate(headers.get("Authorization", ""))
            fault = self._next_fault()
            if isinstance(fault, Reply):
                return fault
            if (listing := _MESSAGES.match(path)) and method == "POST":
                self._same_account(listing["account"])
                params = dict(parse_qsl(body.decode(), keep_blank_values=True))
                return self.faults.delivered(
                    fault, Reply.json(201, self._create(params).resource())
                )
            if listing and method == "GET":
                self._same_account(listing["account"])
                query = dict(parse_qsl(urlsplit(raw_path).query))
                return self.faults.delivered(fault, Reply.json(200, self._list(path, query)))
            if (one := _MESSAGE.match(path)) and method == "GET":
                self._same_account(one["account"])
                with self._lock:
                    found = self.messages.get(one["sid"])
                    if found is None:
                        raise _not_found(path)
                    return Reply.json(200, found.resource())
            raise _not_found(path)
        except TwilioApiError as exc:
            with self._lock:
                self.refused.append((exc.status, exc.code))
            extra = (("WWW-Authenticate", 'Basic realm="Twilio API"'),) if exc.status == 401 else ()
            return exc.reply(extra)

    def _authenticate(self, authorization: str) -> None:
        scheme, _, encoded = authorization.partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            user = password = ""
        if scheme.lower() != "basic" or not (
            hmac.compare_digest(user, self.account_sid)
            and hmac.compare_digest(password.encode(), self._auth_token.encode())
        ):
            raise TwilioApiError(401, 20003, "Authenticate")

    def _same_account(self, account: str) -> None:
        if account != self.account_sid:
            raise TwilioApiError(401, 20003, "Authenticate")

    def _next_fault(self) -> Reply | FaultKind | None:
        """The refusal that replaces this call's answer, or a fault that lets the call go ahead
        ("timeout_after_apply": done, its answer too late), or None."""
        with self._lock:
            if self._faults:
                fault = self._faults.popleft()
            elif (kind := self.faults.take()) is None:
                return None
            elif kind == "timeout_after_apply":
                return kind
            else:
                fault = _Fault(
                    503 if kind == "timeout" else int(kind),
                    1 if kind == "429" else None,
                    self.faults.timeout_s if kind == "timeout" else 0.0,
                )
        code, text = _FAULT_CODES.get(fault.status, (20000 + fault.status, "Service Unavailable"))
        headers = (("Retry-After", str(fault.retry_after_s)),) if fault.retry_after_s else ()
        error = TwilioApiError(fault.status, code, text)
        with self._lock:
            self.refused.append((fault.status, code))
        reply = error.reply(headers)
        return Reply(reply.status, reply.body, reply.headers, delay_s=fault.delay_s)

    def _list(self, path: str, query: Mapping[str, str]) -> Json:
        """A page of Messages, newest first, filtered by To and From as Twilio's list does."""
        try:
            size = min(max(int(query.get("PageSize", "50")), 1), 1000)
            page = max(int(query.get("Page", "0")), 0)
        except ValueError:
            raise TwilioApiError(400, 20001, "Invalid paging parameters") from None
        with self._lock:
            found = [
                message
                for message in self.messages.values()
                if query.get("To") in (None, message.to)
                and query.get("From") in (None, message.from_)
            ]
        found.sort(key=lambda message: message.date_created, reverse=True)
        chosen = found[page * size : (page + 1) * size]
        more = len(found) > (page + 1) * size

        def uri(number: int) -> str:  # the filters go on with the pages, as Twilio's do
            kept = {key: value for key, value in query.items() if key in ("To", "From")}
            return f"{path}?{urlencode({**kept, 'PageSize': size, 'Page': number})}"

        return {
            "messages": [message.resource() for message in chosen],
            "page": page,
            "page_size": size,
            "start": page * size,
            "end": page * size + max(len(chosen) - 1, 0),
            "uri": uri(page),
            "first_page_uri": uri(0),
            "previous_page_uri": uri(page - 1) if page else None,
            "next_page_uri": uri(page + 1) if more else None,
        }

    def _media(self, account: str, sid: str, media_sid: str) -> Reply:
        with self._lock:
            found = self.messages.get(sid)
        for candidate, kind, content in (
            found.media if found and account == self.account_sid else []
        ):
            if candidate == media_sid:
                return Reply(200, content, (("Content-Type", kind),))
        raise _not_found(f"/{API_VERSION}/Accounts/{account}/Messages/{sid}/Media/{media_sid}")

    # -- creating messages ----------------------------------------------------------------------
    def _create(self, params: Mapping[str, str]) -> Message:
        to = params.get("To", "")
        sender = params.get("From", "")
        service = params.get("MessagingServiceSid") or None
        if not to:
            raise TwilioApiError(400, 21604, "A 'To' phone number is required.")
        if not _WHATSAPP_ADDRESS.match(to):
            raise TwilioApiError(400, 21211, f"Invalid 'To' Phone Number: {_masked(to)}")
        if not sender and service is None:
            raise TwilioApiError(400, 21603, "A 'From' phone number is required.")
        sender = sender or self.business_number
        if not _WHATSAPP_ADDRESS.match(sender):
            raise TwilioApiError(400, 21212, f"Invalid From Number (caller ID): {_masked(sender)}")
        if sender not in self.senders:
            raise TwilioApiError(
                400,
                SENDER_NOT_ENABLED,
                "Twilio could not find a Channel with the specified From address",
            )
        content_sid = params.get("ContentSid") or None
        variables_text = params.get("ContentVariables")
        if content_sid is None:
            if variables_text:
                raise TwilioApiError(
                    400,
                    21654,
                    "ContentSid Required: ContentVariables were given without ContentSid",
                )
            text = params.get("Body", "")
            if not text:
                raise TwilioApiError(400, 21602, "Message body is required.")
            if len(text) > BODY_LIMIT:
                raise TwilioApiError(
                    400, 21617, "The concatenated message body exceeds the 1600 character limit."
                )
            variables: dict[str, str] = {}
        else:
            text, variables = self._render(content_sid, variables_text)
        with self._lock:
            self._admit(sender)
            return self._accept(
                sender,
                to,
                text,
                direction="outbound-api",
                status_callback=params.get("StatusCallback") or None,
                content_sid=content_sid,
                content_variables=variables,
                messaging_service_sid=service,
            )

    def _render(self, content_sid: str, variables_text: str | None) -> tuple[str, dict[str, str]]:
        template = self._templates.get(content_sid) if _CONTENT_SID.match(content_sid) else None
        if template is None:
            raise TwilioApiError(400, 21655, "The ContentSid is Invalid")
        text, defaults = template
        try:
            given = json.loads(variables_text) if variables_text else {}
        except ValueError:
            given = None
        if not isinstance(given, dict) or not all(
            isinstance(value, str) and value for value in given.values()
        ):
            raise TwilioApiError(400, 21656, "The Content Variables parameter is invalid.")
        values = {**defaults, **{str(key): value for key, value in given.items()}}
        missing = [name for name in _PLACEHOLDER.findall(text) if name not in values]
        if missing:
            raise TwilioApiError(400, 21656, "The Content Variables parameter is invalid.")
        return _PLACEHOLDER.sub(lambda found: values[found[1]], text), dict(given)

    def _admit(self, sender: str) -> None:
        if self.sender_mps is None:
            return
        now = self.clock()
        sent = self._sent_at[sender]
        while sent and sent[0] <= now - timedelta(seconds=1):
            sent.popleft()
        if len(sent) >= self.sender_mps:
            raise TwilioApiError(429, 20429, "Too Many Requests")
        sent.append(now)

    def _accept(
        self,
        sender: str,
        to: str,
        text: str,
        *,
        direction: str,
        status_callback: str | None,
        content_sid: str | None = None,
        content_variables: Mapping[str, str] | None = None,
        messaging_service_sid: str | None = None,
    ) -> Message:
        now = self.clock()
        message = Message(
            sid="SM" + uuid.uuid4().hex,
            account_sid=self.account_sid,
            from_=sender,
            to=to,
            body=text,
            direction=direction,
            status="accepted" if messaging_service_sid else "queued",
            date_created=now,
            date_updated=now,
            content_sid=content_sid,
            content_variables=dict(content_variables or {}),
            status_callback=status_callback,
            messaging_service_sid=messaging_service_sid,
        )
        # Decided now, on the stand-in's clock: WhatsApp looks at the window as the message arrives.
        outside_window = content_sid is None and not self.window_open(to)
        with self._lock:
            self.messages[message.sid] = message
            self.outbound[_e164(to)].append(message)
            self._deliveries.append(
                self._delivery.submit(self._deliver, message.sid, outside_window)
            )
        return message

    def _deliver(self, sid: str, outside_window: bool) -> None:
        if self.delivery_delay_s and self.stopping.wait(self.delivery_delay_s):
            return
        steps = (
            [("failed", OUTSIDE_WINDOW, OUTSIDE_WINDOW_MESSAGE)]
            if outside_window
            else [("sent", None, None), ("delivered", None, None)]
        )
        for status, error_code, error_message in steps:
            with self._lock:
                message = self.messages[sid]
                message.status, message.error_code, message.error_message = (
                    status,
                    error_code,
                    error_message,
                )
                message.date_updated = self.clock()
                if status == "sent":
                    message.date_sent = message.date_updated
                callback = message.status_callback
                params = self._status_params(message)
            if callback:
                self._status_callback(callback, params)

    def _status_params(self, message: Message) -> dict[str, str]:
        params = {
            "SmsSid": message.sid,
            "SmsStatus": message.status,
            "MessageStatus": message.status,
            "ChannelToAddress": _e164(message.to),
            "To": message.to,
            "ChannelPrefix": "whatsapp",
            "MessageSid": message.sid,
            "AccountSid": self.account_sid,
            "From": message.from_,
            "ApiVersion": API_VERSION,
            "ChannelInstallSid": "XE" + "0" * 32,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if message.error_code is not None:
            params["ErrorCode"] = str(message.error_code)
            params["ErrorMessage"] = message.error_message or ""
        return params

    def _status_callback(self, url: str, params: Mapping[str, str]) -> None:
        try:
            answer: int | None = self._post_signed(self._local(url), url, params, None).status_code
        except requests.RequestException:
            answer = None  # Twilio logs 11200 in its debugger and carries on
        with self._lock:
            self.callbacks.append(Callback(url, params, answer))

    def _post_signed(
        self, url: str, public_url: str, params: Mapping[str, str], signature: str | None
    ) -> requests.Response:
        headers = {
            "X-Twilio-Signature": signature
            if signature is not None
            else self.signature_for(public_url, params),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": "TwilioProxy/1.1",
        }
        return requests.post(url, data=dict(params), headers=headers, timeout=WEBHOOK_TIMEOUT_S)

    def _local(self, url: str) -> str:
        """A public URL on the webhook's public host is reached through the webhook's real host,
        as a load balancer in front of the app would route it."""
        if not (self.public_url and self.webhook_url):
            return url
        public, local, target = urlsplit(self.public_url), urlsplit(self.webhook_url), urlsplit(url)
        if (target.scheme, target.netloc) != (public.scheme, public.netloc):
            return url
        return urlunsplit((local.scheme, local.netloc, target.path, target.query, target.fragment))


def _whatsapp(phone: str) -> str:
    return phone if phone.startswith("whatsapp:") else f"whatsapp:{phone}"


def _e164(phone: str) -> str:
    return phone.removeprefix("whatsapp:")


def _masked(address: str) -> str:
    """Twilio names the number it refuses; the stand-in keeps only its last digits."""
    return "..." + address[-4:]


def _message_type(media: Sequence[tuple[bytes, str]]) -> str:
    if not media:
        return "text"
    return (
        media[0][1].split("/", 1)[0]
        if media[0][1].startswith(("image/", "video/", "audio/"))
        else "document"
    )


def _not_found(path: str) -> TwilioApiError:
    return TwilioApiError(404, 20404, f"The requested resource {path} was not found")


def _twiml_messages(content: bytes) -> list[str]:
    """The texts of <Message> verbs in a TwiML answer (an empty <Response/> sends nothing)."""
    if not content.strip().startswith((b"<?xml", b"<Response")):
        return []
    try:
        # The XML comes from the app under test on loopback, not from a stranger.
        root = ElementTree.fromstring(content)  # noqa: S314
    except ElementTree.ParseError:
        return []
    texts = []
    for verb in root.iter("Message"):
        body = verb.find("Body")
        text = (body.text if body is not None else verb.text) or ""
        if text.strip():
            texts.append(text.strip())
    return texts
