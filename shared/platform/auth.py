"""Who may call the admin API and the scheduled jobs: a Google OIDC identity, or a local key.

In the cloud, Cloud Scheduler (and an operator's `gcloud auth print-identity-token`) sends
`Authorization: Bearer <ID token>`; its signature, audience and expiry are verified against
Google's certificates (`IdTokens`, the adapter in `shared.adapters.google_identity`), its issuer
must be Google's and its email one of the allowed. Local runs, which have no
Google, may instead configure a key (`Authorization: Key <key>`). No header: 401; a token or key
that does not verify or an email not allowed: 403. Nothing of the credential is ever echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shared.errors import AccessDenied, InvalidPayload
from shared.platform.runtime import Headers

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")


@dataclass(frozen=True)
class Caller:
    identity: str
    """The verified email, or `local-key`."""


class IdTokens(Protocol):
    def claims(self, token: str, audience: str) -> Mapping[str, object]:
        """The claims of a token whose signature, audience and expiry verify (else
        AccessDenied); the adapter is `GoogleIdTokens`."""
        ...


@dataclass(frozen=True)
class AdminAuth:
    audience: str | None
    """The function's URL (what Scheduler puts in `aud`); None disables OIDC."""
    allowed: frozenset[str]
    tokens: IdTokens | None = None
    """Verifies bearer tokens; required when `audience` is set."""
    local_key: str | None = field(default=None, repr=False)

    def verify(self, headers: Headers) -> Caller:
        header = (headers.get("Authorization") or "").strip()
        if not header:
            raise InvalidPayload("authentication required", status=401)
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() == "key" and self.local_key:
            if hmac.compare_digest(credential.encode(), self.local_key.encode()):
                return Caller("local-key")
            raise AccessDenied("the key is not valid")
        if scheme.lower() == "bearer" and self.audience and self.tokens:
            return Caller(self._identity(self.tokens.claims(credential, self.audience)))
        raise AccessDenied("unsupported or disabled authentication scheme")

    def _identity(self, claims: Mapping[str, object]) -> str:
        email = str(claims.get("email") or "")
        if claims.get("iss") not in GOOGLE_ISSUERS or not claims.get("email_verified"):
            raise AccessDenied("the identity token is not a verified Google identity")
        if email not in self.allowed:
            raise AccessDenied("this identity may not call the admin API")
        return email
