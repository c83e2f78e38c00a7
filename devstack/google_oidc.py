"""Google's ID-token issuer, as Cloud Scheduler's OIDC tokens reach a function: RS256 JWTs from
`https://accounts.google.com` for a service account's email, checked against the certificates
Google publishes at https://www.googleapis.com/oauth2/v1/certs ({key id: PEM certificate}).

The stand-in serves its own certificate at `certs_url` and mints tokens with `token_for`, so
google-auth's own verification (signature, issuer, audience, expiry) runs unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

from devstack.httpserver import LoopbackServer, Reply, certificate_for, private_pem

ISSUER = "https://accounts.google.com"
KEY_ID = "devstack-oidc-1"


class OidcIssuer(LoopbackServer):
    name = "google-oidc-stand-in"

    def __init__(self) -> None:
        super().__init__()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._certificate = certificate_for(key, "devstack oidc").decode()
        self._signer = crypt.RSASigner.from_string(private_pem(key), key_id=KEY_ID)

    @property
    def certs_url(self) -> str:
        return self.url + "/oauth2/v1/certs"

    def token_for(
        self, email: str, audience: str, *, lifetime_s: int = 3600, verified: bool = True
    ) -> str:
        """An ID token as Cloud Scheduler sends for its service account (`Bearer <token>`)."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": audience,
            "sub": str(abs(hash(email)) % 10**21),
            "email": email,
            "email_verified": verified,
            "iat": now,
            "exp": now + lifetime_s,
        }
        return jwt.encode(self._signer, claims).decode()

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if raw_path.split("?", maxsplit=1)[0] == "/oauth2/v1/certs":
            return Reply(
                200,
                json.dumps({KEY_ID: self._certificate}).encode(),
                (("Content-Type", "application/json"),),
            )
        return Reply(404, b"not found")
