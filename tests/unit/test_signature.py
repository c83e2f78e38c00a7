"""Frappe signature verification over raw bytes, for both Frappe eras' body formats."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from shared.core.signature import verify_frappe_signature
from shared.errors import InvalidSignature

SECRET = "s3cret-webhook-key"
DOC = {
    "doctype": "Sales Invoice",
    "name": "SINV-0001",
    "grand_total": 5000.0,
    "modified": "2026-11-23 10:00:00.000001",
}


def frappe_v15_body(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, default=str).encode()


def frappe_develop_body(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=True, default=str).encode()


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize("make_body", [frappe_v15_body, frappe_develop_body])
def test_signature_accepted_when_body_is_either_frappe_era(make_body) -> None:
    body = make_body(DOC)
    verify_frappe_signature(SECRET, body, sign(SECRET, body))


def test_eras_differ_in_bytes_so_verification_must_use_raw_bytes() -> None:
    assert frappe_v15_body(DOC) != frappe_develop_body(DOC)


@pytest.mark.parametrize(
    ("body", "header", "why"),
    [
        (frappe_v15_body(DOC) + b" ", sign(SECRET, frappe_v15_body(DOC)), "tampered body"),
        (frappe_v15_body(DOC), sign("other-secret", frappe_v15_body(DOC)), "wrong secret"),
        (
            frappe_v15_body(DOC),
            hmac.new(SECRET.encode(), frappe_v15_body(DOC), hashlib.sha256).hexdigest(),
            "hex encoding",
        ),
        (frappe_v15_body(DOC), None, "missing header"),
        (frappe_v15_body(DOC), "", "empty header"),
        (frappe_v15_body(DOC), "not base64!!", "garbage"),
    ],
)
def test_signature_rejected_when_wrong(body: bytes, header: str | None, why: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_frappe_signature(SECRET, body, header)
