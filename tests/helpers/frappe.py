"""What a Frappe site sends, computed independently of the code under test: bodies and signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from devstack.erpnext import MODIFIED_FORMAT


def recent_modified(ago: timedelta = timedelta(hours=1)) -> str:
    """A `modified` stamp (the site's local time, here UTC) of a change made `ago` before now:
    consumers refuse changes older than their claims outlive."""
    return (datetime.now(UTC) - ago).strftime(MODIFIED_FORMAT)


def template_data(doc: dict[str, object], event: str = "on_submit") -> dict[str, object]:
    """What the bridge's Webhook JSON template renders for `doc`: the event and the document."""
    return {"event": event, "doc": doc}


def v15_body(doc: dict[str, object], event: str = "on_submit") -> bytes:
    """Frappe v15's body for the bridge's template: `json.dumps(data, default=str)`, default
    separators, keys in order."""
    return json.dumps(template_data(doc, event), default=str).encode()


def develop_body(doc: dict[str, object], event: str = "on_submit") -> bytes:
    """Frappe develop (2026): `frappe.as_json`, indent 1 and sorted keys."""
    return json.dumps(template_data(doc, event), indent=1, sort_keys=True, default=str).encode()


def frappe_signature(secret: str, body: bytes) -> str:
    """X-Frappe-Webhook-Signature: base64 of HMAC-SHA256 over the body bytes."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def hex_signature(secret: str, body: bytes) -> str:
    """The same HMAC in hex: what a wrong implementation would send (and must be refused)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
