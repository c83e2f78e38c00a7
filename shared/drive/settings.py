"""Drive filing's settings: how it authenticates, where it files, and how it uploads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: erp_webhook's cold start does not pay for them
    pass


@dataclass(frozen=True, slots=True)
class DriveConfig:
    """How drive_upload reaches Drive and where it files attachments."""

    auth: str
    """shared_drive (a service account, member of the shared drive), delegation (a service
    account impersonating `impersonate`), or oauth_user (a user's refresh token)."""
    root_folder: str
    """The folder under which the template's folders are made (the shared drive by default)."""
    shared_drive: str | None = None
    impersonate: str | None = None
    oauth_client_id: str | None = field(default=None, repr=False)
    oauth_client_secret: str | None = field(default=None, repr=False)
    oauth_refresh_token: str | None = field(default=None, repr=False)
    folder_template: str = "{project_or_doctype}/{document}"
    file_id_field: str = "drive_file_id"
    link_field: str = "drive_link"
    endpoint: str | None = None
    """Local runs only: a Drive stand-in's `api_endpoint`, its certificate and its token."""
    ca_certs: str | None = None
    static_token: str | None = field(default=None, repr=False)
    token_uri: str = "https://oauth2.googleapis.com/token"  # noqa: S105 (an endpoint, not a secret)
    chunk_bytes: int = 8 * 1024 * 1024
    timeout_s: float = 60.0
    offload: bool = False
    """Remove ERPNext's copy once Drive's checksum matches (the File then points at Drive)."""
