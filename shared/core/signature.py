"""Frappe webhook signature check: base64 HMAC-SHA256 of the raw request bytes, constant time.

We verify bytes, never re-serialised JSON, so both Frappe eras' body formats verify alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from shared.errors import InvalidSignature


def expected_signature(secret: str, raw_body: bytes) -> bytes:
    """The raw HMAC digest Frappe signs a body with (before base64)."""
    return hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()


def verify_frappe_signature(secret: str, raw_body: bytes, header: str | None) -> None:
    """Raise InvalidSignature unless `header` is the base64 HMAC-SHA256 of `raw_body`."""
    if not header:
        raise InvalidSignature("missing X-Frappe-Webhook-Signature header")
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature("signature is not base64") from exc
    if not hmac.compare_digest(given, expected_signature(secret, raw_body)):
        raise InvalidSignature("signature does not match the body")
