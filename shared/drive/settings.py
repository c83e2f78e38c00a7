"""Drive filing's settings: how it authenticates, where it files, and how it uploads."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.platform.settings import EnvReader

AUTH_CHOICES = ("shared_drive", "delegation", "oauth_user")
FOLDER_TEMPLATE = "{project_or_doctype}/{document}"
CHUNK_UNIT = 256 * 1024
"""Drive's resumable uploads take chunks in multiples of 256 KiB."""


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
    folder_template: str = FOLDER_TEMPLATE
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

    @classmethod
    def read(cls, env: EnvReader) -> DriveConfig | None:
        before = len(env.problems)
        auth = env.text("DRIVE_AUTH")
        shared_drive = env.optional("DRIVE_SHARED_DRIVE_ID")
        if auth not in AUTH_CHOICES:
            env.problem(f"DRIVE_AUTH must be one of {', '.join(AUTH_CHOICES)}, not {auth!r}")
        if auth == "shared_drive" and not shared_drive:
            env.problem("DRIVE_AUTH=shared_drive needs DRIVE_SHARED_DRIVE_ID")
        impersonate = env.optional("DRIVE_IMPERSONATE")
        if auth == "delegation" and not impersonate:
            env.problem("DRIVE_AUTH=delegation needs DRIVE_IMPERSONATE (the user to act as)")
        oauth = (
            env.secret("DRIVE_OAUTH_CLIENT_ID", "drive-oauth-client-id"),
            env.secret("DRIVE_OAUTH_CLIENT_SECRET", "drive-oauth-client-secret"),
            env.secret("DRIVE_OAUTH_REFRESH_TOKEN", "drive-oauth-refresh-token"),
        )
        if auth == "oauth_user" and not all(oauth):
            env.problem(
                "DRIVE_AUTH=oauth_user needs DRIVE_OAUTH_CLIENT_ID, DRIVE_OAUTH_CLIENT_SECRET and "
                "DRIVE_OAUTH_REFRESH_TOKEN (or their secrets)"
            )
        template = env.env.get("DRIVE_FOLDER_TEMPLATE", FOLDER_TEMPLATE)
        try:
            template.format(project_or_doctype="p", doctype="d", document="n", project="p")
        except (KeyError, IndexError, ValueError) as exc:
            env.problem(f"DRIVE_FOLDER_TEMPLATE has an unknown placeholder: {exc}")
        chunk = env.integer(
            "DRIVE_CHUNK_BYTES", 8 * 1024 * 1024, multiple_of=CHUNK_UNIT, unit="256 KiB"
        )
        endpoint = env.local_only("DRIVE_ENDPOINT")
        ca_certs = env.local_only("DRIVE_CA_CERTS")
        token_uri = env.local_only("DRIVE_TOKEN_URI") or "https://oauth2.googleapis.com/token"
        env.local_only("DRIVE_TOKEN")
        if len(env.problems) > before:
            return None
        return cls(
            auth=auth,
            root_folder=env.text("DRIVE_ROOT_FOLDER_ID") or shared_drive or "root",
            shared_drive=shared_drive,
            impersonate=impersonate,
            oauth_client_id=oauth[0],
            oauth_client_secret=oauth[1],
            oauth_refresh_token=oauth[2],
            folder_template=template,
            file_id_field=env.env.get("DRIVE_FILE_ID_FIELD", "drive_file_id"),
            link_field=env.env.get("DRIVE_LINK_FIELD", "drive_link"),
            endpoint=endpoint,
            ca_certs=ca_certs,
            static_token=env.secret("DRIVE_TOKEN", "drive-token") if endpoint else None,
            token_uri=token_uri,
            chunk_bytes=chunk,
            offload=env.flag("DRIVE_OFFLOAD"),
        )
