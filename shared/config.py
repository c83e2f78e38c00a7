"""Settings read once per instance from the environment; secrets from env locally, Secret Manager in the cloud.

`Settings.from_env` fails fast with one error that lists every missing or malformed setting.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeAlias, cast

from shared.core.invoice_rows import DEFAULT_COLUMNS, DeletedPolicy, TrackerConfig, parse_columns
from shared.core.routing import RouteTable, default_routes
from shared.errors import ConfigurationError

INSECURE_FLAG = "BRIDGE_INSECURE_UNSIGNED_WEBHOOKS"
INSECURE_VALUE = "local-only"

SecretReader: TypeAlias = Callable[[str], str | None]
"""Reads a secret by its Secret Manager name (`webhook-secret`); None when it does not exist."""


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
        routes = default_routes(service_request_doctype)
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

        erpnext_url = env.get("ERPNEXT_URL", "").strip().rstrip("/") or None
        erpnext_key = secret("ERPNEXT_API_KEY", "erpnext-api-key")
        erpnext_secret = secret("ERPNEXT_API_SECRET", "erpnext-api-secret")
        spreadsheet_id = env.get("SHEETS_SPREADSHEET_ID", "").strip()
        tracker: TrackerConfig | None = None
        if function == "sheets_sync":
            if not spreadsheet_id:
                problems.append(
                    "SHEETS_SPREADSHEET_ID (the Invoice Tracker spreadsheet) is not set"
                )
            if not (erpnext_url and erpnext_key and erpnext_secret):
                problems.append(
                    "ERPNEXT_URL, ERPNEXT_API_KEY and ERPNEXT_API_SECRET (or secrets "
                    "'erpnext-api-key', 'erpnext-api-secret') are all needed to read ERPNext"
                )
            tracker = _tracker_config(env, erpnext_url, problems)

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
        )
        if problems:
            raise ConfigurationError(
                f"{function} cannot start; fix these settings:\n- " + "\n- ".join(problems)
            )
        return settings


def _tracker_config(
    env: Mapping[str, str], erpnext_url: str | None, problems: list[str]
) -> TrackerConfig | None:
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
