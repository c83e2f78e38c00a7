"""The event envelope (one versioned schema) and the derivation of its event id.

Frappe sends no delivery id, so the id is derived from what identifies one ERPNext change:
site, doctype, name, event and `modified`. The same change delivered three times has one id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from shared.errors import InvalidPayload

SCHEMA_VERSION = 1

Json: TypeAlias = "str | int | float | bool | list[Json] | dict[str, Json] | None"

_EVENT_NAME = re.compile(r"^[a-z][a-z_]{1,63}$")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One ERPNext change as it travels through Pub/Sub; `doc` holds the fields ERPNext sent."""

    event_id: str
    event_type: str
    site: str
    doctype: str
    name: str
    event: str
    modified: str | None
    received_at: datetime
    doc: Mapping[str, Json]
    schema: int = SCHEMA_VERSION

    def attributes(self) -> dict[str, str]:
        """Pub/Sub attributes: the fields a subscriber or an operator filters on without parsing."""
        return {"event_type": self.event_type, "doctype": self.doctype, "event_id": self.event_id}

    def to_json(self) -> bytes:
        body = {
            "schema": self.schema,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "site": self.site,
            "doctype": self.doctype,
            "name": self.name,
            "event": self.event,
            "modified": self.modified,
            "received_at": self.received_at.isoformat(),
            "doc": dict(self.doc),
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        """Parse an envelope from a message body; anything malformed is an InvalidPayload."""
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidPayload(f"message body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidPayload("message body is not a JSON object")
        schema = body.get("schema")
        if schema != SCHEMA_VERSION:
            raise InvalidPayload(f"unsupported envelope schema {schema!r}")
        try:
            doc = body["doc"]
            modified = body["modified"]
            received_at = datetime.fromisoformat(_text(body, "received_at"))
            if not isinstance(doc, dict) or not (modified is None or isinstance(modified, str)):
                raise TypeError("doc must be an object and modified a string or null")
            if received_at.tzinfo is None:
                raise ValueError("received_at has no timezone")
            return cls(
                event_id=_text(body, "event_id"),
                event_type=_text(body, "event_type"),
                site=_text(body, "site"),
                doctype=_text(body, "doctype"),
                name=_text(body, "name"),
                event=_text(body, "event"),
                modified=modified,
                received_at=received_at,
                doc=doc,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidPayload(f"malformed envelope: {exc}") from exc


def _text(body: Mapping[str, object], key: str) -> str:
    value = body[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key} must be a non-empty string")
    return value


def is_doc_event(name: str) -> bool:
    """Whether `name` looks like a Frappe doc event (`on_submit`, `after_insert`, ...)."""
    return bool(_EVENT_NAME.match(name))


def event_type_of(doctype: str, event: str) -> str:
    """`Sales Invoice` + `on_submit` -> `erpnext.sales_invoice.on_submit`."""
    slug = re.sub(r"[^a-z0-9]+", "_", doctype.lower()).strip("_")
    return f"erpnext.{slug}.{event}"


def derive_event_id(
    *, site: str, doctype: str, name: str, event: str, modified: str | None, raw_body: bytes
) -> str:
    """Hash of what identifies one change; without `modified`, the body's hash stands in for it."""
    version = modified if modified else "body:" + hashlib.sha256(raw_body).hexdigest()
    key = "\x1f".join((site, doctype, name, event, version))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def build_envelope(
    *, raw_body: bytes, payload: Mapping[str, Json], site: str, received_at: datetime
) -> Envelope:
    """Turn a verified, parsed webhook body into an envelope.

    Frappe signs only the body, so what a webhook means comes from the body alone: it must be
    the bridge's template form `{"event": "...", "doc": {...}}` (`webhook_template` in
    shared/ingress/webhook.py). A body without an event inside is refused; nothing outside the
    signed bytes (the URL's query) is read.
    """
    inner = payload.get("doc")
    event = payload.get("event")
    if not isinstance(inner, dict) or not isinstance(event, str) or not event.strip():
        raise InvalidPayload(
            'webhook body is not {"event": ..., "doc": {...}}: the event must be inside the '
            "signed body; set the Webhook's JSON template as docs/OPERATIONS.md shows",
            status=422,
        )
    doctype = inner.get("doctype")
    return _envelope(inner, doctype, event, raw_body=raw_body, site=site, received_at=received_at)


def document_envelope(
    doc: Mapping[str, Json], *, doctype: str, event: str, site: str, received_at: datetime
) -> Envelope:
    """An envelope for a document the bridge read itself (reconciliation, backfill, a replay of
    the document as it is now), shaped as the webhook's would be: the body is the document."""
    body: dict[str, Json] = {**doc, "doctype": doctype}
    raw_body = json.dumps(body, sort_keys=True, default=str).encode()
    return _envelope(body, doctype, event, raw_body=raw_body, site=site, received_at=received_at)


def _envelope(
    doc: Mapping[str, Json],
    doctype: Json,
    event: str,
    *,
    raw_body: bytes,
    site: str,
    received_at: datetime,
) -> Envelope:
    name = doc.get("name")
    missing = [
        label
        for label, value in (("doctype", doctype), ("name", name))
        if not isinstance(value, str) or not value.strip()
    ]
    if missing:
        raise InvalidPayload(f"webhook document lacks {' and '.join(missing)}", status=422)
    assert isinstance(doctype, str) and isinstance(name, str)
    if not is_doc_event(event):
        raise InvalidPayload(f"event name {event[:64]!r} is not a Frappe doc event", status=422)
    modified = doc.get("modified")
    modified_text = str(modified) if modified not in (None, "") else None
    return Envelope(
        event_id=derive_event_id(
            site=site,
            doctype=doctype,
            name=name,
            event=event,
            modified=modified_text,
            raw_body=raw_body,
        ),
        event_type=event_type_of(doctype, event),
        site=site,
        doctype=doctype,
        name=name,
        event=event,
        modified=modified_text,
        received_at=received_at,
        doc=doc,
    )
