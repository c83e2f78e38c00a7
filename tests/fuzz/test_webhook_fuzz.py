"""Fuzzing the three webhooks strangers can reach: ERPNext's, Telegram's and WhatsApp's (Twilio).

Each test sends 10,000 generated bodies and headers over HTTP to the function running under
functions-framework in the devstack, and holds: never a 500, nothing published to any topic,
nothing sent to a person who was not the sender of a well-formed message, and the function
still answers a known-good request afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import secrets
import string
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
import requests
from google.cloud import pubsub_v1
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.emulators import Emulators
from devstack.stack import (
    TELEGRAM_WEBHOOK,
    WHATSAPP_PUBLIC_URL,
    WHATSAPP_WEBHOOK,
    Devstack,
    running_devstack,
)
from shared.adapters.pubsub import ensure_pull_subscription
from shared.core.routing import DEAD_LETTER, TOPICS
from tests.helpers.frappe import frappe_signature, hex_signature, v15_body

SECRET = "fuzz-webhook-secret"
ADMIN = 5001
"""The bootstrap admin, linked as Ana (System Manager) so commands reach ERPNext."""
MARIA = "+447700900123"
"""A seeded contact's number: WhatsApp messages from it reach the service desk."""
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "10000")),  # fewer while iterating
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
INVOICE: dict[str, object] = {
    "doctype": "Sales Invoice",
    "name": "SINV-0001",
    "customer": "ACME",
    "grand_total": 5000.0,
    "modified": "2026-11-23 10:00:00.000001",
}
_updates = itertools.count(10**9)

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(3600)]
"""10,000 examples each take minutes: `make fuzz` runs them, `make test` does not."""


@dataclass
class Fuzzed:
    stack: Devstack
    http: requests.Session
    subscriber: pubsub_v1.SubscriberClient

    def published(self) -> dict[str, int]:
        """Messages waiting on the observer of each topic (pulled and acknowledged)."""
        counts = {}
        for topic in (*TOPICS, DEAD_LETTER):
            path = self.subscriber.subscription_path(self.stack.project, f"observe-{topic}")
            response = self.subscriber.pull(
                request={"subscription": path, "max_messages": 100, "return_immediately": True},
                timeout=10,
            )
            if response.received_messages:
                self.subscriber.acknowledge(
                    request={
                        "subscription": path,
                        "ack_ids": [m.ack_id for m in response.received_messages],
                    }
                )
            counts[topic] = len(response.received_messages)
        return counts


@pytest.fixture(scope="module")
def fuzzed(emulators: Emulators) -> Iterator[Fuzzed]:
    extra = {"TELEGRAM_BOOTSTRAP_ADMIN_IDS": str(ADMIN)}
    with (
        running_devstack(
            webhook_secret=SECRET, extra_env=extra, project="fuzz", emulators=emulators
        ) as stack,
        requests.Session() as http,
    ):
        for topic in (*TOPICS, DEAD_LETTER):
            ensure_pull_subscription(stack.project, f"observe-{topic}", topic)
        # Thousands of replies in seconds: Telegram's pacing is the alert tests' concern, so
        # the stand-in's clock moves a minute per message and never throttles here.
        minutes = itertools.count(0.0, 60.0)
        stack.telegram.limits.clock = lambda: next(minutes)
        subscriber = pubsub_v1.SubscriberClient()
        _link_admin(stack)
        yield Fuzzed(stack, http, subscriber)
        subscriber.close()


def _link_admin(stack: Devstack) -> None:
    """The admin links themself; the first Firestore calls of a fresh emulator may answer 503."""
    telegram = stack.telegram
    deadline = time.monotonic() + 60
    while (
        telegram.post_update(_update(ADMIN, ADMIN, "/link ana.lopez@example.com")).status_code
        != 200
    ):
        assert time.monotonic() < deadline, "the Telegram webhook never answered 200"
        time.sleep(1)
    link = telegram.texts(ADMIN)[-1]
    code = link.split("start=", 1)[1].split()[0]
    assert telegram.post_update(_update(ADMIN, ADMIN, f"/start {code}")).status_code == 200
    assert "Linked" in telegram.texts(ADMIN)[-1]


def _update(chat: int, person: int, text: str) -> dict[str, object]:
    return {
        "update_id": next(_updates),
        "message": {
            "message_id": 1,
            "date": 1_790_000_000,
            "chat": {"id": chat, "type": "private" if chat > 0 else "supergroup"},
            "from": {"id": person, "is_bot": False, "first_name": "Fuzz"},
            "text": text,
        },
    }


# -- strategies shared by the three --------------------------------------------------------------

printable = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
huge_text = st.builds(
    lambda char, length: char * length,
    st.characters(blacklist_categories=("Cs",)),
    st.integers(min_value=1_000, max_value=20_000),
)
numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63, -(2**63), 2**64, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | printable,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(printable, children, max_size=3)
    ),
    max_leaves=6,
)
deep_nesting = st.builds(
    lambda opening, depth: (opening * depth).encode(),
    st.sampled_from(["[", '{"a":', '{"doc":', "[{}, "]),
    st.integers(min_value=1_100, max_value=20_000),
)
# Built, not from_regex: a regex strategy costs more than the HTTP request it goes into.
header_names = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters),
    st.text(alphabet=string.ascii_letters + string.digits + "-", max_size=24),
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
).map(lambda text: text.encode("latin-1"))
extra_headers = st.dictionaries(header_names, header_values, max_size=3)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain; charset=utf-16",
        "application/json; charset=latin-1",
        "*/*",
        "garbage",
    ]
)
query_strings = st.one_of(
    st.just(""),
    st.dictionaries(
        st.sampled_from(["event", "doctype", "name", "x", ""]) | printable,
        st.sampled_from(["on_submit", "after_insert", "on_trash", "Sales Invoice", "File", ""])
        | printable,
        max_size=4,
    ).map(lambda query: "?" + urlencode(query)),
    st.text(alphabet=string.printable.replace("#", ""), max_size=60).map(lambda q: "?" + q),
)


def _headers(content_type: str | None, extra: Mapping[str, bytes]) -> dict[str, str | bytes]:
    headers: dict[str, str | bytes] = {k: v for k, v in extra.items() if k.lower() != "host"}
    for name in ("Content-Length", "Transfer-Encoding", "Content-Encoding", "Expect"):
        for key in [k for k in headers if k.lower() == name.lower()]:
            del headers[key]  # framing headers would make the request itself malformed
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


# -- (1) the ERPNext webhook ---------------------------------------------------------------------


def _without_required_field(doc: dict[str, object], field: str, value: object) -> bytes:
    """A near-valid Frappe document that cannot be accepted: `field` missing or not a string."""
    broken = dict(doc)
    if value is None:
        broken.pop(field, None)
    else:
        broken[field] = value
    return v15_body(broken)


near_valid_docs = st.builds(
    lambda extra, overrides: {**INVOICE, **extra, **overrides},
    st.dictionaries(printable, json_values, max_size=2),
    st.fixed_dictionaries(
        {},
        optional={
            "doctype": st.sampled_from(["Sales Invoice", "Issue", "File", ""]) | json_values,
            "name": json_values,
            "modified": json_values,
            "doc": json_values,
            "event": json_values,
        },
    ),
)
erp_bodies = st.one_of(
    st.binary(max_size=2_000),
    json_values.map(lambda value: json.dumps(value).encode()),
    near_valid_docs.map(v15_body),
    huge_text.map(lambda text: v15_body({**INVOICE, "remarks": text})),
    deep_nesting,
)
forged_signatures = st.one_of(
    st.just(("missing", None)),
    header_values.map(lambda value: ("random", value)),
    st.binary(min_size=32, max_size=32).map(lambda raw: ("random", base64.b64encode(raw))),
    st.just(("wrong secret", "wrong")),
    st.just(("hex", "hex")),
    st.just(("other body", "other")),
    st.just(("one char off", "one char off")),
)


def _forge(kind: str, value: object, body: bytes) -> str | bytes | None:
    if kind in ("missing", "random"):
        return value  # type: ignore[return-value]
    right = frappe_signature(SECRET, body)
    return {
        "wrong": frappe_signature("not-" + SECRET, body),
        "hex": hex_signature(SECRET, body),
        "other": frappe_signature(SECRET, body + b" "),
        # The first character: the last data one carries two padding bits base64 ignores.
        "one char off": ("A" if right[0] != "A" else "B") + right[1:],
    }[str(value)]


unacceptable_signed_bodies = st.one_of(
    st.binary(max_size=2_000).filter(lambda raw: not _json_object(raw)),
    json_values.filter(lambda value: not isinstance(value, dict)).map(
        lambda value: json.dumps(value).encode()
    ),
    deep_nesting,
    st.builds(
        _without_required_field,
        near_valid_docs.filter(lambda doc: "doc" not in doc),
        st.sampled_from(["name", "doctype"]),
        st.sampled_from([None, "", "   ", 0, [], {}]),
    ),
    # The document alone, however complete: its event could only come from the unsigned URL.
    near_valid_docs.filter(lambda doc: not isinstance(doc.get("doc"), dict)).map(
        lambda doc: json.dumps(doc, default=str).encode()
    ),
)


def _json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


erp_requests = st.one_of(
    st.tuples(
        st.just("forged"),
        erp_bodies,
        forged_signatures,
        query_strings,
        content_types,
        extra_headers,
    ),
    st.tuples(
        st.just("signed"),
        unacceptable_signed_bodies,
        st.just(("right", None)),
        query_strings,
        content_types,
        extra_headers,
    ),
)


def test_the_erp_webhook_never_fails_nor_publishes_when_bodies_are_fuzzed(fuzzed: Fuzzed) -> None:
    url = fuzzed.stack.webhook_url

    @FUZZ
    @given(erp_requests)
    def send(request: tuple[str, bytes, tuple[str, object], str, str | None, dict]) -> None:
        how, body, (kind, value), query, content_type, extra = request
        headers = _headers(content_type, extra)
        for key in [k for k in headers if k.lower() == "x-frappe-webhook-signature"]:
            del headers[key]
        signature = frappe_signature(SECRET, body) if how == "signed" else _forge(kind, value, body)
        if signature is not None:
            headers["X-Frappe-Webhook-Signature"] = signature
        response = fuzzed.http.post(url + query, data=body, headers=headers, timeout=30)
        assert response.status_code < 500, response.text
        if how == "forged":
            assert response.status_code in (401, 413), (kind, response.text)
        else:
            assert response.status_code in (400, 413, 422), response.text

    send()
    assert not any(fuzzed.published().values())
    known_good = v15_body({**INVOICE, "doctype": "Note", "name": "NOTE-1"}, "on_update")
    response = fuzzed.http.post(
        url,
        data=known_good,
        headers={"X-Frappe-Webhook-Signature": frappe_signature(SECRET, known_good)},
        timeout=30,
    )
    assert response.status_code == 202 and response.json()["status"] == "unrouted"


# -- (2) the Telegram webhook --------------------------------------------------------------------


def _near(secret: str) -> st.SearchStrategy[str]:
    flipped = secret[:-1] + ("a" if secret[-1] != "a" else "b")
    return st.sampled_from(
        [flipped, secret[:-1], secret + "x", secret.swapcase(), secret.lower(), ""]
    )


commands = st.sampled_from(
    [
        "/start",
        "/help",
        "/my_requests",
        "/request_status",
        "/set_status",
        "/new_request",
        "/upload_photo",
        "/analytics",
        "/link",
        "/cancel",
        "/done",
        "/teleport",
        "/",
        "/help@erp_bridge_bot",
        "/help@other_bot",
        "/" + "x" * 40,
    ]
)
texts = st.one_of(
    printable,
    huge_text,
    st.builds(lambda command, args: f"{command} {args}".strip(), commands, printable),
    st.builds(
        lambda command, args: f"{command} {args}",
        commands,
        st.sampled_from(["ISS-2026-00001", "ISS-NOPE", "a@b.co", "ISS-1 Resolved", "yes", "no"]),
    ),
    st.sampled_from(["yes", "no", "High", "Low", "Emergency", "Compressor rattles"]),
    json_values,
)
chat_ids = st.one_of(st.just(ADMIN), st.integers(-(10**13), 10**13), numbers, json_values)
photos = st.lists(
    st.fixed_dictionaries(
        {"file_id": printable | json_values, "file_unique_id": printable | json_values},
        optional={
            "width": numbers | json_values,
            "height": numbers | json_values,
            "file_size": numbers | json_values,
        },
    ),
    max_size=3,
)
entities = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["bot_command", "mention", "url"]) | json_values},
        optional={"offset": numbers, "length": numbers},
    ),
    max_size=3,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "message_id": json_values,
        "date": numbers,
        "chat": st.fixed_dictionaries(
            {},
            optional={
                "id": chat_ids,
                "type": st.sampled_from(["private", "group", "supergroup", "channel"])
                | json_values,
            },
        )
        | json_values,
        "from": st.fixed_dictionaries(
            {},
            optional={"id": chat_ids, "is_bot": st.booleans() | json_values},
        )
        | json_values,
        "text": texts,
        "entities": entities,
        "photo": photos | json_values,
        "caption": printable,
        "message_thread_id": numbers,
        "is_topic_message": st.booleans(),
    },
)
update_ids = st.one_of(
    st.integers(min_value=0, max_value=2**40).map(lambda n: n + 2 * 10**12),
    st.sampled_from([0, -1, 2**31, 2**63, 2**64, -(2**63), 10**1600, 1e300, "12", "x", True]),
    json_values,
)
updates = st.fixed_dictionaries(
    {},
    optional={
        "update_id": update_ids,
        "message": messages | json_values,
        "edited_message": messages,
        "channel_post": messages,
        "callback_query": st.fixed_dictionaries(
            {"id": printable, "data": printable}, optional={"message": messages}
        ),
    },
)
telegram_bodies = st.one_of(
    updates.map(lambda update: json.dumps(update).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=2_000),
    deep_nesting,
)


def _well_formed_chat(body: bytes) -> int | None:
    """The chat a reply may go to: a new message's, with a chat and a human sender."""
    try:
        message = json.loads(body)["message"]
        chat, sender = message["chat"]["id"], message["from"]
    except (ValueError, TypeError, KeyError, IndexError, RecursionError):
        return None
    if not (isinstance(chat, int) and isinstance(sender, dict)):
        return None  # e.g. "from": null, which the webhook ignores
    return chat if isinstance(sender.get("id"), int) and not sender.get("is_bot") else None


def _sent(stack: Devstack) -> dict[int, int]:
    return {chat: len(sent) for chat, sent in list(stack.telegram.chats.items())}


def test_the_telegram_webhook_answers_only_senders_when_updates_are_fuzzed(
    fuzzed: Fuzzed,
) -> None:
    stack = fuzzed.stack
    url = stack.functions[TELEGRAM_WEBHOOK.target].url + "/"
    secret = stack.env["TELEGRAM_WEBHOOK_SECRET"]
    tokens = st.one_of(
        st.just(("right", secret)),
        st.just(("missing", None)),
        _near(secret).map(lambda near: ("near", near)),
        header_values.map(lambda value: ("random", value)),
    )

    @FUZZ
    @given(tokens, telegram_bodies, content_types, extra_headers)
    def send(
        token: tuple[str, str | bytes | None],
        body: bytes,
        content_type: str | None,
        extra: dict[str, bytes],
    ) -> None:
        kind, value = token
        headers = _headers(content_type, extra)
        for key in [k for k in headers if k.lower() == "x-telegram-bot-api-secret-token"]:
            del headers[key]
        if value is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = value
        right = kind == "right" or value in (secret, secret.encode())
        before = _sent(stack)
        response = fuzzed.http.post(url, data=body, headers=headers, timeout=60)
        assert response.status_code < 500, response.text
        after = _sent(stack)
        replied = {
            chat: n - before.get(chat, 0) for chat, n in after.items() if n != before.get(chat, 0)
        }
        if not right:
            assert response.status_code == 403, response.text
            assert replied == {}
            return
        allowed = _well_formed_chat(body)
        assert set(replied) <= ({allowed} if allowed is not None else set()), replied
        assert all(count == 1 for count in replied.values()), replied

    send()
    assert not any(fuzzed.published().values())
    stack.telegram.started_by(7001)  # posted past the stand-in: Telegram must know the chat
    response = fuzzed.http.post(
        url,
        json=_update(7001, 7001, "/help"),
        headers={"X-Telegram-Bot-Api-Secret-Token": secret},
        timeout=30,
    )
    assert response.status_code == 200
    assert "/start" in stack.telegram.texts(7001)[-1]


# -- (3) the WhatsApp webhook --------------------------------------------------------------------


form_keys = st.sampled_from(
    ["From", "Body", "To", "MessageSid", "MessageStatus", "ErrorCode", "NumMedia", "AccountSid"]
) | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
senders = st.one_of(
    st.sampled_from(
        [
            f"whatsapp:{MARIA}",
            MARIA,
            "whatsapp:+447700900456",
            "whatsapp:+15005550009",
            "whatsapp:",
            "whatsapp:+",
            "+0",
            "whatsapp:" + "9" * 40,
        ]
    ),
    printable,
)
whatsapp_texts = st.one_of(
    printable,
    st.builds(
        lambda word, ident: f"{word} {ident}",
        st.sampled_from(["STATUS", "status", "  Status", "STATUS\n"]),
        st.sampled_from(["ISS-2026-00001", "ISS-NOPE", "../../etc", "%00", "ISS-2026-00002"])
        | printable,
    ),
    huge_text.map(lambda text: text[:20_000]),
)
forms = st.builds(
    lambda base, extra: {**extra, **base},
    st.fixed_dictionaries(
        {},
        optional={
            "From": senders,
            "Body": whatsapp_texts,
            "MessageStatus": st.sampled_from(["failed", "undelivered", "delivered", "sent"])
            | printable,
            "MessageSid": st.sampled_from(["SM" + "0" * 32]) | printable,
            "ErrorCode": st.sampled_from(["63016", "30008", ""]) | printable,
        },
    ),
    st.dictionaries(form_keys, printable, max_size=6),
)


def test_the_whatsapp_webhook_refuses_forgeries_and_sends_nothing_when_forms_are_fuzzed(
    fuzzed: Fuzzed,
) -> None:
    stack = fuzzed.stack
    twilio = stack.twilio
    url = stack.functions[WHATSAPP_WEBHOOK.target].url + "/"
    wrong = secrets.token_hex(16)

    def forged(kind: str, form: Mapping[str, str]) -> str | None:
        signed = "".join(f"{name}{form[name]}" for name in sorted(form))
        return {
            "missing": None,
            "wrong token": base64.b64encode(
                hmac.new(
                    wrong.encode(), (WHATSAPP_PUBLIC_URL + signed).encode(), hashlib.sha1
                ).digest()
            ).decode(),
            "local url": twilio.signature_for(url, form),
            "other form": twilio.signature_for(WHATSAPP_PUBLIC_URL, {**form, "Forged-Key": wrong}),
        }[kind]

    requests_ = st.one_of(
        st.tuples(st.just("signed"), forms, st.none()),
        st.tuples(
            st.sampled_from(["missing", "wrong token", "local url", "other form"]), forms, st.none()
        ),
        st.tuples(st.just("random"), forms | st.binary(max_size=2_000), header_values),
    )

    def outbound() -> int:
        return sum(len(sent) for sent in list(twilio.outbound.values())) + len(twilio.messages)

    @FUZZ
    @given(requests_, content_types, extra_headers)
    def send(
        request: tuple[str, dict[str, str] | bytes, bytes | None],
        content_type: str | None,
        extra: dict[str, bytes],
    ) -> None:
        kind, form, random_signature = request
        headers = _headers(content_type, extra)
        for key in [k for k in headers if k.lower() == "x-twilio-signature"]:
            del headers[key]
        if kind == "signed":
            assert isinstance(form, dict)
            signature: str | bytes | None = twilio.signature_for(WHATSAPP_PUBLIC_URL, form)
        elif kind == "random":
            signature = random_signature
        else:
            assert isinstance(form, dict)
            signature = forged(kind, form)
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        body = urlencode(form).encode() if isinstance(form, dict) else form
        before = outbound()
        response = fuzzed.http.post(url, data=body, headers=headers, timeout=60)
        assert response.status_code < 500, response.text
        if kind == "signed":
            assert response.status_code == 200, response.text
            assert response.headers["Content-Type"].startswith(("text/xml", "application/json"))
        else:
            assert response.status_code == 403, (kind, response.text)
        assert outbound() == before

    send()
    assert not any(fuzzed.published().values())
    answer = twilio.post_inbound(MARIA, "STATUS ISS-NOPE-1")
    assert answer.status_code == 200 and "I found no request ISS-NOPE-1" in answer.text
