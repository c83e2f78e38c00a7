"""Secret Manager: read a secret's pinned (or latest) version by name, once per instance."""

from __future__ import annotations

from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager

from shared.adapters.gcp_errors import GOOGLE_FAILURES, describe
from shared.errors import ConfigurationError


class SecretManagerReader:
    """Reads `projects/<project>/secrets/<name>/versions/<version>`; absent secrets read as None.

    `endpoint` (e.g. `http://127.0.0.1:PORT`) points the REST transport at a local stand-in.
    """

    def __init__(
        self, project: str, version: str = "latest", *, endpoint: str | None = None
    ) -> None:
        if endpoint:
            self._client = secretmanager.SecretManagerServiceClient(
                transport="rest",
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options=ClientOptions(api_endpoint=endpoint),
            )
        else:
            self._client = secretmanager.SecretManagerServiceClient()
        self._project = project
        self._version = version

    def __call__(self, name: str) -> str | None:
        path = f"projects/{self._project}/secrets/{name}/versions/{self._version}"
        try:
            response = self._client.access_secret_version(name=path, timeout=10)
        except google_errors.NotFound:
            return None
        except GOOGLE_FAILURES as exc:
            # The message names the secret, never its value.
            raise ConfigurationError(f"cannot read secret {name!r}: {describe(exc)}") from None
        payload: bytes = response.payload.data
        return payload.decode()
