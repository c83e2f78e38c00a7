"""The envelope: event id derivation, event names, the signed template body, round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devstack.erpnext import render_webhook_json
from shared.core.envelope import Envelope, build_envelope, derive_event_id, event_type_of
from shared.errors import InvalidPayload
from shared.ingress.webhook import webhook_template

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DOC = {"doctype": "Sales Invoice", "name": "SINV-0001", "modified": "2026-11-23 10:00:00.000001"}


def build(doc: dict, event: object = "on_submit", raw: bytes | None = None) -> Envelope:
    """The envelope of a body as the bridge's Webhook template writes it."""
    payload = {"event": event, "doc": doc}
    raw_body = raw if raw is not None else json.dumps(payload).encode()
    return build_envelope(
        raw_body=raw_body, payload=payload, site="erp.example.com", received_at=NOW
    )


def test_event_id_is_the_same_when_the_same_change_arrives_in_both_eras() -> None:
    body = {"event": "on_submit", "doc": DOC}
    v15 = build(DOC, raw=json.dumps(body).encode())
    develop = build(DOC, raw=json.dumps(body, indent=1, sort_keys=True).encode())
    assert v15.event_id == develop.event_id


@pytest.mark.parametrize(
    "change",
    [
        {"site": "other.example.com"},
        {"doctype": "Purchase Invoice"},
        {"name": "SINV-0002"},
        {"event": "on_cancel"},
        {"modified": "2026-11-23 10:00:00.000002"},
    ],
)
def test_event_id_differs_when_any_identifying_field_differs(change: dict[str, str]) -> None:
    base = {
        "site": "erp.example.com",
        "doctype": "Sales Invoice",
        "name": "SINV-0001",
        "event": "on_submit",
        "modified": "2026-11-23 10:00:00.000001",
    }
    assert derive_event_id(**base, raw_body=b"{}") != derive_event_id(
        **{**base, **change}, raw_body=b"{}"
    )


def test_event_id_falls_back_to_the_body_hash_when_modified_is_missing() -> None:
    args = {"site": "s", "doctype": "File", "name": "F1", "event": "after_insert", "modified": None}
    assert derive_event_id(**args, raw_body=b'{"a":1}') == derive_event_id(
        **args, raw_body=b'{"a":1}'
    )
    assert derive_event_id(**args, raw_body=b'{"a":1}') != derive_event_id(
        **args, raw_body=b'{"a":2}'
    )


def test_event_type_is_dotted_and_snake_cased() -> None:
    assert event_type_of("Sales Invoice", "on_submit") == "erpnext.sales_invoice.on_submit"
    assert build(DOC).event_type == "erpnext.sales_invoice.on_submit"


def test_the_template_body_carries_the_event_and_the_doc() -> None:
    envelope = build(DOC, event="on_cancel")
    assert (envelope.event, envelope.name, envelope.doc["doctype"]) == (
        "on_cancel",
        "SINV-0001",
        "Sales Invoice",
    )


@pytest.mark.parametrize(
    "payload",
    [
        DOC,  # the document alone: its event could only come from the unsigned URL
        {**DOC, "event": "on_trash"},  # an `event` field of the document, not the template's
        {"event": "on_submit"},
        {"event": "on_submit", "doc": "SINV-0001"},
        {"event": "", "doc": DOC},
        {"event": ["on_submit"], "doc": DOC},
    ],
)
def test_a_body_without_a_signed_event_and_document_is_refused(payload: dict) -> None:
    with pytest.raises(InvalidPayload, match="the event must be inside the signed body") as caught:
        build_envelope(raw_body=b"{}", payload=payload, site="s", received_at=NOW)
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("doc", "event"),
    [
        ({"name": "SINV-0001"}, "on_submit"),
        ({"doctype": "Sales Invoice"}, "on_submit"),
        ({"doctype": "Sales Invoice", "name": "  "}, "on_submit"),
        (DOC, "DROP TABLE"),
    ],
)
def test_missing_or_bad_identity_is_422(doc: dict, event: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        build(doc, event=event)
    assert caught.value.status == 422


def test_the_bridge_template_renders_to_the_body_the_bridge_reads() -> None:
    rendered = render_webhook_json(webhook_template("on_submit"), DOC)
    envelope = build_envelope(
        raw_body=json.dumps(rendered).encode(), payload=rendered, site="s", received_at=NOW
    )
    assert (envelope.event, envelope.doctype, envelope.name) == (
        "on_submit",
        "Sales Invoice",
        "SINV-0001",
    )


def test_the_template_refuses_an_event_name_that_is_not_a_doc_event() -> None:
    with pytest.raises(ValueError, match="not a Frappe doc event"):
        webhook_template('on_submit", "doc": {}, "x": "')


def test_envelope_round_trips_through_json() -> None:
    envelope = build(DOC)
    assert Envelope.from_json(envelope.to_json()) == envelope


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"schema": 99}', json.dumps({"schema": 1, "doc": {}}).encode()],
)
def test_malformed_message_is_invalid_payload(data: bytes) -> None:
    with pytest.raises(InvalidPayload):
        Envelope.from_json(data)
