"""Who may call the admin API and the scheduled jobs: a Google OIDC identity, or a local key.

In the cloud, Cloud Scheduler (and an operator's `gcloud auth print-identity-token`) sends
`Authorization: Bearer <ID token>`; it is verified here as Google signs it (certificates,
issuer, audience, expiry) and its email must be one of the allowed. Local runs, which have no
Google, may instead configure a key (`Authorization: Key <key>`). No header: 401; a token or key
that does not verify or an email not allowed: 403. Nothing of the credential is ever echoed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from shared.errors import AccessDenied, InvalidPayload
from shared.runtime import Headers

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")


@dataclass(frozen=True)
class Caller:
    identity: str
    """The verified email, or `local-key`."""


@dataclass(frozen=True)
class AdminAuth:
    audience: str | None
    """The function's URL (what Scheduler puts in `aud`); None disables OIDC."""
    allowed: frozenset[str]
    local_key: str | None = field(default=None, repr=False)
    certs_url: str = GOOGLE_CERTS_URL

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
        if scheme.lower() == "bearer" and self.audience:
            return Caller(self._identity(credential))
        raise AccessDenied("unsupported or disabled authentication scheme")

    def _identity(self, token: str) -> str:
        import google.auth.exceptions
        import google.auth.transport.requests
        from google.oauth2 import id_token

        try:
            claims = id_token.verify_token(
                token,
                google.auth.transport.requests.Request(),
                audience=self.audience,
                certs_url=self.certs_url,
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError):
            raise AccessDenied("the identity token does not verify") from None
        email = str(claims.get("email") or "")
        if claims.get("iss") not in GOOGLE_ISSUERS or not claims.get("email_verified"):
            raise AccessDenied("the identity token is not a verified Google identity")
        if email not in self.allowed:
            raise AccessDenied("this identity may not call the admin API")
        return email
