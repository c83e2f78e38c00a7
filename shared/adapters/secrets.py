"""Secret Manager: read a secret's pinned (or latest) version by name, once per instance."""

from __future__ import annotations

from google.api_core import exceptions as google_errors

from shared.errors import ConfigurationError


class SecretManagerReader:
    """Reads `projects/<project>/secrets/<name>/versions/<version>`; absent secrets read as None."""

    def __init__(self, project: str, version: str = "latest") -> None:
        from google.cloud import secretmanager

        self._client = secretmanager.SecretManagerServiceClient()
        self._project = project
        self._version = version

    def __call__(self, name: str) -> str | None:
        path = f"projects/{self._project}/secrets/{name}/versions/{self._version}"
        try:
            response = self._client.access_secret_version(name=path)
        except google_errors.NotFound:
            return None
        except google_errors.GoogleAPICallError as exc:
            # The message names the secret, never its value.
            raise ConfigurationError(f"cannot read secret {name!r}: {exc.code}") from None
        payload: bytes = response.payload.data
        return payload.decode()
