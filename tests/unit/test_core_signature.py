"""Frappe signature verification over raw bytes, for both Frappe eras' body formats."""

from __future__ import annotations

import pytest

from shared.core.signature import verify_frappe_signature
from shared.errors import InvalidSignature
from tests.helpers.frappe import develop_body, frappe_signature, hex_signature, v15_body

SECRET = "s3cret-webhook-key"
DOC = {
    "doctype": "Sales Invoice",
    "name": "SINV-0001",
    "grand_total": 5000.0,
    "modified": "2026-11-23 10:00:00.000001",
}


@pytest.mark.parametrize("make_body", [v15_body, develop_body])
def test_signature_accepted_when_body_is_either_frappe_era(make_body) -> None:
    body = make_body(DOC)
    verify_frappe_signature(SECRET, body, frappe_signature(SECRET, body))


def test_eras_differ_in_bytes_so_verification_must_use_raw_bytes() -> None:
    assert v15_body(DOC) != develop_body(DOC)


@pytest.mark.parametrize(
    ("body", "header", "why"),
    [
        (v15_body(DOC) + b" ", frappe_signature(SECRET, v15_body(DOC)), "tampered body"),
        (v15_body(DOC), frappe_signature("other-secret", v15_body(DOC)), "wrong secret"),
        (
            v15_body(DOC),
            hex_signature(SECRET, v15_body(DOC)),
            "hex encoding",
        ),
        (v15_body(DOC), None, "missing header"),
        (v15_body(DOC), "", "empty header"),
        (v15_body(DOC), "not base64!!", "garbage"),
    ],
)
def test_signature_rejected_when_wrong(body: bytes, header: str | None, why: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_frappe_signature(SECRET, body, header)
