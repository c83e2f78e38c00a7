"""Google-signed OIDC identity tokens verified with google-auth: Google's certificates, the
audience and the expiry. The admin policy (issuer, verified email, who is allowed) stays in
`shared.platform.auth`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.errors import AccessDenied


@dataclass(frozen=True)
class GoogleIdTokens:
    certs_url: str
    """Google's (the settings' GOOGLE_CERTS_URL), or a local stand-in's."""

    def claims(self, token: str, audience: str) -> Mapping[str, object]:
        """The token's claims once its signature, audience and expiry verify; AccessDenied
        otherwise (never saying more, and never echoing the token)."""
        import google.auth.exceptions
        import google.auth.transport.requests
        from google.oauth2 import id_token

        try:
            claims: Mapping[str, object] = id_token.verify_token(
                token,
                google.auth.transport.requests.Request(),
                audience=audience,
                certs_url=self.certs_url,
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError):
            raise AccessDenied("the identity token does not verify") from None
        return claims
