"""Settings read once per instance from the environment; secrets from env locally, Secret Manager in the cloud.

`Settings.from_env` fails fast with one error that lists every missing or malformed setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, TypeAlias, cast

from shared.alerts.settings import NotifierSettings
from shared.core.routing import RouteTable, default_routes
from shared.drive.settings import DriveConfig
from shared.errors import ConfigurationError

if TYPE_CHECKING:  # imported where used: erp_webhook's cold start does not pay for them
    from shared.sheets.rows import TrackerConfig


INSECURE_FLAG = "BRIDGE_INSECURE_UNSIGNED_WEBHOOKS"
INSECURE_VALUE = "local-only"

SecretReader: TypeAlias = Callable[[str], str | None]
"""Reads a secret by its Secret Manager name (`webhook-secret`); None when it does not exist."""


DRIVE_AUTH_CHOICES = ("shared_drive", "delegation", "oauth_user")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a function needs to know about its environment; secrets never show in repr."""

    project: str
    site: str = ""
    webhook_secret: str | None = field(default=None, repr=False)
    allow_unsigned_webhooks: bool = False
    max_body_bytes: int = 1_000_000
    service_request_doctype: str = "Issue"
    routes: RouteTable = field(default_factory=default_routes)
    claim_lease: timedelta = timedelta(seconds=120)
    max_event_age: timedelta = timedelta(days=7)
    error_retry_after: timedelta = timedelta(minutes=10)
    """The scheduled retry replays a pending error record once it has been quiet this long."""
    publish_timeout_s: float = 10.0
    erpnext_url: str | None = None
    erpnext_api_key: str | None = field(default=None, repr=False)
    erpnext_api_secret: str | None = field(default=None, repr=False)
    erpnext_timeout_s: float = 30.0
    spreadsheet_id: str = ""
    sheets_endpoint: str | None = None
    """A local Sheets stand-in's address; unset in the cloud (Google's own endpoint)."""
    sheets_timeout_s: float = 30.0
    sheets_gather_s: float = 1.0
    tracker: TrackerConfig | None = None
    project_manager_field: str = "project_manager"
    drive: DriveConfig | None = None
    notifier: NotifierSettings | None = None
    admin_audience: str | None = None
    """The function's URL, the `aud` of the OIDC tokens Cloud Scheduler and operators send."""
    admin_allowed: frozenset[str] = frozenset()
    """Emails (service accounts, operators) allowed to call the admin API and scheduled jobs."""
    admin_key: str | None = field(default=None, repr=False)
    """Local runs: a key accepted instead of a Google identity (`Authorization: Key ...`)."""
    google_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        function: str,
        read_secret: SecretReader | None = None,
    ) -> Settings:
        """Read the settings `function` needs; raise one ConfigurationError naming every problem.

        Secrets are taken from the environment (local runs, or Cloud Functions' secret env vars)
        and otherwise from `read_secret` (Secret Manager) when one is given.
        """
        problems: list[str] = []

        def secret(env_key: str, secret_name: str) -> str | None:
            value = env.get(env_key) or (read_secret(secret_name) if read_secret else None)
            return value or None

        def number(key: str, default: float) -> float:
            raw = env.get(key)
            if raw is None or raw == "":
                return default
            try:
                value = float(raw)
            except ValueError:
                problems.append(f"{key} must be a number, not {raw!r}")
                return default
            if value <= 0:
                problems.append(f"{key} must be positive")
            return value

        project = env.get("GCP_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT") or ""
        if not project:
            problems.append("GCP_PROJECT (the Google Cloud project id) is not set")
        service_request_doctype = env.get("SERVICE_REQUEST_DOCTYPE", "Issue").strip() or "Issue"
        service_report_doctype = env.get("SERVICE_REPORT_DOCTYPE", "Service Report").strip()
        routes = default_routes(service_request_doctype, service_report_doctype)
        if env.get("ROUTES_JSON"):
            try:
                routes = parse_routes(env["ROUTES_JSON"])
            except ValueError as exc:
                problems.append(f"ROUTES_JSON: {exc}")

        site = env.get("ERP_SITE", "").strip()
        webhook_secret: str | None = None
        allow_unsigned = False
        if function == "erp_webhook":
            if not site:
                problems.append(
                    "ERP_SITE (the ERPNext site name, part of every event id) is not set"
                )
            webhook_secret = secret("WEBHOOK_SECRET", "webhook-secret")
            allow_unsigned = env.get(INSECURE_FLAG) == INSECURE_VALUE
            if allow_unsigned and not env.get("PUBSUB_EMULATOR_HOST"):
                problems.append(
                    f"{INSECURE_FLAG} is only honoured against the Pub/Sub emulator (local runs)"
                )
            elif webhook_secret is None and not allow_unsigned:
                problems.append(
                    "WEBHOOK_SECRET is not set (or secret 'webhook-secret'); for a local run "
                    f"without signatures set {INSECURE_FLAG}={INSECURE_VALUE}"
                )

        erpnext_url, erpnext_key, erpnext_secret = _erpnext(env, secret, function, problems)
        spreadsheet_id = env.get("SHEETS_SPREADSHEET_ID", "").strip()
        tracker: TrackerConfig | None = None
        if function == "sheets_sync":
            if not spreadsheet_id:
                problems.append(
                    "SHEETS_SPREADSHEET_ID (the Invoice Tracker spreadsheet) is not set"
                )
            tracker = _tracker_config(env, erpnext_url, problems)
        drive = _drive_config(env, secret, problems) if function == "drive_upload" else None
        notifier = (
            _notifier_config(env, secret, erpnext_url, service_request_doctype, problems)
            if function == "notifier"
            else None
        )

        settings = cls(
            project=project,
            site=site,
            webhook_secret=webhook_secret,
            allow_unsigned_webhooks=allow_unsigned and webhook_secret is None,
            max_body_bytes=int(number("MAX_BODY_BYTES", 1_000_000)),
            service_request_doctype=service_request_doctype,
            routes=routes,
            claim_lease=timedelta(seconds=number("CLAIM_LEASE_SECONDS", 120)),
            max_event_age=timedelta(hours=number("MAX_EVENT_AGE_HOURS", 24 * 7)),
            error_retry_after=timedelta(seconds=number("ERROR_RETRY_AFTER_SECONDS", 600)),
            publish_timeout_s=number("PUBLISH_TIMEOUT_SECONDS", 10.0),
            erpnext_url=erpnext_url,
            erpnext_api_key=erpnext_key,
            erpnext_api_secret=erpnext_secret,
            erpnext_timeout_s=number("ERPNEXT_TIMEOUT_SECONDS", 30.0),
            spreadsheet_id=spreadsheet_id,
            sheets_endpoint=env.get("SHEETS_ENDPOINT") or None,
            sheets_timeout_s=number("SHEETS_TIMEOUT_SECONDS", 30.0),
            sheets_gather_s=number("SHEETS_GATHER_SECONDS", 1.0),
            tracker=tracker,
            project_manager_field=env.get("PROJECT_MANAGER_FIELD", "project_manager").strip()
            or "project_manager",
            drive=drive,
            notifier=notifier,
            admin_audience=env.get("ADMIN_AUDIENCE", "").strip() or None,
            admin_allowed=frozenset(
                email.strip()
                for email in env.get("ADMIN_ALLOWED_EMAILS", "").split(",")
                if email.strip()
            ),
            admin_key=_local_admin_key(env, problems),
            google_certs_url=env.get("GOOGLE_CERTS_URL")
            or "https://www.googleapis.com/oauth2/v1/certs",
        )
        if problems:
            raise ConfigurationError(
                f"{function} cannot start; fix these settings:\n- " + "\n- ".join(problems)
            )
        return settings


def _erpnext(
    env: Mapping[str, str],
    secret: Callable[[str, str], str | None],
    function: str,
    problems: list[str],
) -> tuple[str | None, str | None, str | None]:
    """ERPNext's address and token; required by the functions that read ERPNext."""
    url = env.get("ERPNEXT_URL", "").strip().rstrip("/") or None
    key = secret("ERPNEXT_API_KEY", "erpnext-api-key")
    api_secret = secret("ERPNEXT_API_SECRET", "erpnext-api-secret")
    if function in ("sheets_sync", "drive_upload", "notifier") and not (url and key and api_secret):
        problems.append(
            "ERPNEXT_URL, ERPNEXT_API_KEY and ERPNEXT_API_SECRET (or secrets "
            "'erpnext-api-key', 'erpnext-api-secret') are all needed to read ERPNext"
        )
    return url, key, api_secret


def _drive_config(
    env: Mapping[str, str], secret: Callable[[str, str], str | None], problems: list[str]
) -> DriveConfig | None:
    auth = env.get("DRIVE_AUTH", "").strip()
    shared_drive = env.get("DRIVE_SHARED_DRIVE_ID", "").strip() or None
    root = env.get("DRIVE_ROOT_FOLDER_ID", "").strip() or shared_drive
    before = len(problems)
    if auth not in DRIVE_AUTH_CHOICES:
        problems.append(f"DRIVE_AUTH must be one of {', '.join(DRIVE_AUTH_CHOICES)}, not {auth!r}")
    if auth == "shared_drive" and not shared_drive:
        problems.append("DRIVE_AUTH=shared_drive needs DRIVE_SHARED_DRIVE_ID")
    impersonate = env.get("DRIVE_IMPERSONATE", "").strip() or None
    if auth == "delegation" and not impersonate:
        problems.append("DRIVE_AUTH=delegation needs DRIVE_IMPERSONATE (the user to act as)")
    oauth = (
        secret("DRIVE_OAUTH_CLIENT_ID", "drive-oauth-client-id"),
        secret("DRIVE_OAUTH_CLIENT_SECRET", "drive-oauth-client-secret"),
        secret("DRIVE_OAUTH_REFRESH_TOKEN", "drive-oauth-refresh-token"),
    )
    if auth == "oauth_user" and not all(oauth):
        problems.append(
            "DRIVE_AUTH=oauth_user needs DRIVE_OAUTH_CLIENT_ID, DRIVE_OAUTH_CLIENT_SECRET and "
            "DRIVE_OAUTH_REFRESH_TOKEN (or their secrets)"
        )
    template = env.get("DRIVE_FOLDER_TEMPLATE", "{project_or_doctype}/{document}")
    try:
        template.format(project_or_doctype="p", doctype="d", document="n", project="p")
    except (KeyError, IndexError, ValueError) as exc:
        problems.append(f"DRIVE_FOLDER_TEMPLATE has an unknown placeholder: {exc}")
    chunk = int(env.get("DRIVE_CHUNK_BYTES", str(8 * 1024 * 1024)) or 0)
    if chunk <= 0 or chunk % (256 * 1024):
        problems.append("DRIVE_CHUNK_BYTES must be a positive multiple of 262144 (256 KiB)")
    if len(problems) > before:
        return None
    return DriveConfig(
        auth=auth,
        root_folder=root or "root",
        shared_drive=shared_drive,
        impersonate=impersonate,
        oauth_client_id=oauth[0],
        oauth_client_secret=oauth[1],
        oauth_refresh_token=oauth[2],
        folder_template=template,
        file_id_field=env.get("DRIVE_FILE_ID_FIELD", "drive_file_id"),
        link_field=env.get("DRIVE_LINK_FIELD", "drive_link"),
        endpoint=env.get("DRIVE_ENDPOINT") or None,
        ca_certs=env.get("DRIVE_CA_CERTS") or None,
        static_token=secret("DRIVE_TOKEN", "drive-token") if env.get("DRIVE_ENDPOINT") else None,
        token_uri=env.get("DRIVE_TOKEN_URI") or "https://oauth2.googleapis.com/token",
        chunk_bytes=chunk,
        offload=env.get("DRIVE_OFFLOAD", "false").strip().lower() in ("1", "true", "yes"),
    )


def _notifier_config(
    env: Mapping[str, str],
    secret: Callable[[str, str], str | None],
    erpnext_url: str | None,
    service_request_doctype: str,
    problems: list[str],
) -> NotifierSettings | None:
    before = len(problems)
    token = secret("TELEGRAM_BOT_TOKEN", "telegram-bot-token")
    webhook_secret = secret("TELEGRAM_WEBHOOK_SECRET", "telegram-webhook-secret")
    username = env.get("TELEGRAM_BOT_USERNAME", "").strip().removeprefix("@")
    if not (token and webhook_secret and username):
        problems.append(
            "TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET (or secrets 'telegram-bot-token', "
            "'telegram-webhook-secret') and TELEGRAM_BOT_USERNAME are all needed"
        )
    elif not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", webhook_secret):
        problems.append(
            "TELEGRAM_WEBHOOK_SECRET must be 1-256 of A-Z a-z 0-9 _ - (Telegram's rule)"
        )
    chats: dict[str, int] = {}
    try:
        raw = json.loads(env.get("ALERT_CHATS_JSON") or "{}")
        chats = {str(name): int(chat) for name, chat in dict(raw).items()}
    except (ValueError, TypeError):
        problems.append('ALERT_CHATS_JSON must map names to chat ids: {"admins": -100123}')
    from shared.alerts.rules import AlertNames, default_rules, parse_rules

    names = AlertNames(
        service_request=service_request_doctype,
        service_report=env.get("SERVICE_REPORT_DOCTYPE", "Service Report").strip()
        or "Service Report",
        report_request_field=env.get("SERVICE_REPORT_REQUEST_FIELD", "service_request").strip(),
        emergency_priorities=tuple(
            p.strip() for p in env.get("EMERGENCY_PRIORITIES", "Urgent").split(",") if p.strip()
        ),
        completed_content_sid=env.get("WHATSAPP_TEMPLATE_REQUEST_COMPLETED") or None,
    )
    rules = default_rules(names)
    if env.get("ALERT_RULES_JSON"):
        try:
            rules = parse_rules(env["ALERT_RULES_JSON"])
        except ValueError as exc:
            problems.append(f"ALERT_RULES_JSON: {exc}")
    for rule in rules:
        for destination in rule.to:
            name = destination.removeprefix("chat:")
            if destination.startswith("chat:") and name not in chats:
                try:
                    int(name)
                except ValueError:
                    problems.append(
                        f"alert rule {rule.id} sends to chat {name!r}: add it to ALERT_CHATS_JSON"
                    )
    twilio = (
        env.get("TWILIO_ACCOUNT_SID", "").strip() or None,
        secret("TWILIO_AUTH_TOKEN", "twilio-auth-token"),
        env.get("TWILIO_WHATSAPP_FROM", "").strip() or None,
        env.get("WHATSAPP_WEBHOOK_PUBLIC_URL", "").strip() or None,
    )
    if any(twilio) and not all(twilio):
        problems.append(
            "WhatsApp needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN (or secret 'twilio-auth-token'), "
            "TWILIO_WHATSAPP_FROM and WHATSAPP_WEBHOOK_PUBLIC_URL together"
        )
    admins = env.get("TELEGRAM_BOOTSTRAP_ADMIN_IDS", "")
    try:
        admin_ids = frozenset(int(part) for part in admins.split(",") if part.strip())
    except ValueError:
        problems.append("TELEGRAM_BOOTSTRAP_ADMIN_IDS must be Telegram user ids, comma separated")
        admin_ids = frozenset()
    if len(problems) > before or not (token and webhook_secret):
        return None
    return NotifierSettings(
        telegram_token=token,
        telegram_secret=webhook_secret,
        bot_username=username,
        chats=chats,
        rules=rules,
        names=names,
        site_url=(env.get("ERPNEXT_PUBLIC_URL") or erpnext_url or "").rstrip("/"),
        telegram_api_url=env.get("TELEGRAM_API_URL", "").rstrip("/") or None,
        group_window_s=_seconds(env, "TELEGRAM_GROUP_WINDOW_SECONDS", 60.0, problems),
        budget_s=_seconds(env, "NOTIFIER_BUDGET_SECONDS", 20.0, problems),
        bootstrap_admin_ids=admin_ids,
        twilio_account_sid=twilio[0],
        twilio_auth_token=twilio[1],
        whatsapp_from=twilio[2],
        whatsapp_public_url=twilio[3],
        twilio_api_url=env.get("TWILIO_API_URL", "").rstrip("/") or None,
    )


def _local_admin_key(env: Mapping[str, str], problems: list[str]) -> str | None:
    """A key for the admin API is for local runs only (against the Firestore emulator); in the
    cloud, callers prove a Google identity."""
    key = env.get("ADMIN_API_KEY") or None
    if key and not env.get("FIRESTORE_EMULATOR_HOST"):
        problems.append(
            "ADMIN_API_KEY is only honoured against the Firestore emulator (local runs)"
        )
    return key


def _seconds(env: Mapping[str, str], key: str, default: float, problems: list[str]) -> float:
    raw = env.get(key) or ""
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = 0.0
    if value <= 0:
        problems.append(f"{key} must be a positive number of seconds, not {raw!r}")
        return default
    return value


def _tracker_config(
    env: Mapping[str, str], erpnext_url: str | None, problems: list[str]
) -> TrackerConfig | None:
    from shared.sheets.rows import DEFAULT_COLUMNS, DeletedPolicy, TrackerConfig, parse_columns

    try:
        return TrackerConfig(
            site_url=env.get("ERPNEXT_PUBLIC_URL") or erpnext_url or "",
            columns=parse_columns(env.get("TRACKER_COLUMNS") or ",".join(DEFAULT_COLUMNS)),
            deleted_policy=cast(DeletedPolicy, env.get("TRACKER_DELETED", "remove")),
            overhead_projects=frozenset(
                name.strip()
                for name in env.get("TRACKER_OVERHEAD_PROJECTS", "").split(",")
                if name.strip()
            ),
        )
    except ValueError as exc:
        problems.append(f"TRACKER_COLUMNS / TRACKER_DELETED: {exc}")
        return None


def parse_routes(text: str) -> RouteTable:
    """ROUTES_JSON: `[{"doctype": "Sales Invoice", "event": "*", "topics": ["erp-invoices"]}]`."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from exc
    table: dict[tuple[str, str], tuple[str, ...]] = {}
    if not isinstance(rows, list):
        raise ValueError("must be a list of {doctype, event, topics}")
    for row in rows:
        if not isinstance(row, dict):
            raise ValueError("every route must be an object")
        doctype, event, topics = row.get("doctype"), row.get("event", "*"), row.get("topics")
        if not isinstance(doctype, str) or not isinstance(event, str):
            raise ValueError("every route needs a doctype and an event (or '*')")
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise ValueError(f"route {doctype}/{event}: topics must be a list of names")
        table[(doctype, event)] = tuple(topics)
    return table
