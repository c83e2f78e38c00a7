"""Settings from the environment, the routing table, version comparison, and the purity of core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shared.core.routing import (
    FILES,
    INVOICES,
    SERVICE_REQUESTS,
    consumer_of,
    default_routes,
    topics_for,
)
from shared.core.versions import is_stale
from shared.errors import ConfigurationError, InvalidPayload
from shared.settings import INSECURE_FLAG, Settings

WEBHOOK_ENV = {"GCP_PROJECT": "p", "ERP_SITE": "erp.example.com", "WEBHOOK_SECRET": "x" * 16}


def test_one_error_lists_every_missing_setting() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({}, function="erp_webhook")
    text = str(caught.value)
    assert "GCP_PROJECT" in text and "ERP_SITE" in text and "WEBHOOK_SECRET" in text


def test_webhook_refuses_to_start_without_secret_unless_local_insecure_flag() -> None:
    env = {k: v for k, v in WEBHOOK_ENV.items() if k != "WEBHOOK_SECRET"}
    with pytest.raises(ConfigurationError):
        Settings.from_env(env, function="erp_webhook")
    with pytest.raises(ConfigurationError, match="emulator"):
        Settings.from_env({**env, INSECURE_FLAG: "local-only"}, function="erp_webhook")
    local = Settings.from_env(
        {**env, INSECURE_FLAG: "local-only", "PUBSUB_EMULATOR_HOST": "127.0.0.1:1"},
        function="erp_webhook",
    )
    assert local.allow_unsigned_webhooks and local.webhook_secret is None


def test_insecure_flag_needs_its_exact_value() -> None:
    env = {"GCP_PROJECT": "p", "ERP_SITE": "s", INSECURE_FLAG: "1", "PUBSUB_EMULATOR_HOST": "h:1"}
    with pytest.raises(ConfigurationError):
        Settings.from_env(env, function="erp_webhook")


def test_secret_is_read_through_the_secret_reader_and_never_shown_in_repr() -> None:
    env = {k: v for k, v in WEBHOOK_ENV.items() if k != "WEBHOOK_SECRET"}
    settings = Settings.from_env(
        env, function="erp_webhook", read_secret={"webhook-secret": "from-manager"}.get
    )
    assert settings.webhook_secret == "from-manager"
    assert "from-manager" not in repr(settings)


def test_bad_numbers_are_reported_with_their_names() -> None:
    with pytest.raises(ConfigurationError, match="MAX_BODY_BYTES"):
        Settings.from_env({**WEBHOOK_ENV, "MAX_BODY_BYTES": "lots"}, function="erp_webhook")


def test_service_request_doctype_is_configurable() -> None:
    settings = Settings.from_env(
        {"GCP_PROJECT": "p", "SERVICE_REQUEST_DOCTYPE": "Service Call"}, function="routes_only"
    )
    assert topics_for(settings.routes, "Service Call", "after_insert") == (SERVICE_REQUESTS,)
    assert topics_for(settings.routes, "Issue", "after_insert") == ()


def test_routes_json_replaces_the_table() -> None:
    env = {
        "GCP_PROJECT": "p",
        "ROUTES_JSON": '[{"doctype": "Quotation", "event": "*", "topics": ["erp-invoices"]}]',
    }
    settings = Settings.from_env(env, function="erp_webhook_unused")
    assert topics_for(settings.routes, "Quotation", "on_update") == (INVOICES,)
    with pytest.raises(ConfigurationError, match="ROUTES_JSON"):
        Settings.from_env({"GCP_PROJECT": "p", "ROUTES_JSON": "{"}, function="routes_only")


@pytest.mark.parametrize(
    ("doctype", "event", "topics"),
    [
        ("Sales Invoice", "on_submit", (INVOICES,)),
        ("Purchase Invoice", "on_change", (INVOICES,)),
        ("File", "after_insert", (FILES,)),
        ("File", "on_update", ()),
        ("Issue", "after_insert", (SERVICE_REQUESTS,)),
        ("ToDo", "after_insert", ()),
    ],
)
def test_default_routes(doctype: str, event: str, topics: tuple[str, ...]) -> None:
    assert topics_for(default_routes(), doctype, event) == topics


def test_consumer_of_reads_short_and_full_subscription_names() -> None:
    assert consumer_of("sheets-sync-invoices") == "sheets_sync"
    assert consumer_of("projects/p/subscriptions/notifier-service-requests") == "notifier"
    assert consumer_of("nobody") is None


@pytest.mark.parametrize(
    ("incoming", "applied", "stale"),
    [
        ("2026-11-23 10:00:00", "2026-11-23 10:00:01", True),
        ("2026-11-23 10:00:00.5", "2026-11-23 10:00:00.400000", False),
        ("2026-11-23 10:00:00", "2026-11-23 10:00:00", False),
        ("2026-11-23 10:00:00", None, False),
        (None, "2026-11-23 10:00:00", False),
    ],
)
def test_is_stale(incoming: str | None, applied: str | None, stale: bool) -> None:
    assert is_stale(incoming, applied) is stale


def test_unparseable_modified_is_invalid_payload() -> None:
    with pytest.raises(InvalidPayload):
        is_stale("yesterday", "2026-11-23 10:00:00")


FORBIDDEN = (
    "google",
    "telegram",
    "twilio",
    "requests",
    "httpx",
    "shared.adapters",
    "flask",
    "os",
    "time",
)


def test_core_imports_no_sdk_network_clock_or_environment() -> None:
    core = Path(__file__).resolve().parents[2] / "shared" / "core"
    assert list(core.glob("*.py"))
    for path in core.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN), (
                    path,
                    name,
                )


DRIVE_ENV = {
    "GCP_PROJECT": "p",
    "ERPNEXT_URL": "https://erp.example.com",
    "ERPNEXT_API_KEY": "k",
    "ERPNEXT_API_SECRET": "s",
}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({}, "DRIVE_AUTH must be one of shared_drive, delegation, oauth_user"),
        ({"DRIVE_AUTH": "shared_drive"}, "needs DRIVE_SHARED_DRIVE_ID"),
        ({"DRIVE_AUTH": "delegation"}, "needs DRIVE_IMPERSONATE"),
        ({"DRIVE_AUTH": "oauth_user", "DRIVE_OAUTH_CLIENT_ID": "c"}, "DRIVE_OAUTH_REFRESH_TOKEN"),
        (
            {
                "DRIVE_AUTH": "shared_drive",
                "DRIVE_SHARED_DRIVE_ID": "d",
                "DRIVE_CHUNK_BYTES": "1000",
            },
            "256 KiB",
        ),
        (
            {
                "DRIVE_AUTH": "shared_drive",
                "DRIVE_SHARED_DRIVE_ID": "d",
                "DRIVE_FOLDER_TEMPLATE": "{client}",
            },
            "placeholder",
        ),
    ],
)
def test_a_drive_choice_that_cannot_work_stops_the_function_at_start(
    extra: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_env({**DRIVE_ENV, **extra}, function="drive_upload")


def test_drive_settings_default_to_the_shared_drive_as_root_and_hide_tokens() -> None:
    settings = Settings.from_env(
        {
            **DRIVE_ENV,
            "DRIVE_AUTH": "oauth_user",
            "DRIVE_OAUTH_CLIENT_ID": "client-id",
            "DRIVE_OAUTH_CLIENT_SECRET": "client-secret-value",
            "DRIVE_OAUTH_REFRESH_TOKEN": "refresh-token-value",
        },
        function="drive_upload",
    )
    assert settings.drive is not None and settings.drive.root_folder == "root"
    assert "refresh-token-value" not in repr(settings) and "client-secret-value" not in repr(
        settings
    )
    shared = Settings.from_env(
        {**DRIVE_ENV, "DRIVE_AUTH": "shared_drive", "DRIVE_SHARED_DRIVE_ID": "0ABC"},
        function="drive_upload",
    )
    assert shared.drive is not None and shared.drive.root_folder == "0ABC"


def test_the_local_admin_key_is_refused_outside_the_emulators() -> None:
    env = {"GCP_PROJECT": "p", "ADMIN_API_KEY": "local-only-key"}
    with pytest.raises(ConfigurationError, match="ADMIN_API_KEY is only honoured"):
        Settings.from_env(env, function="routes_only")
    local = Settings.from_env({**env, "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"}, function="x")
    assert local.admin_key == "local-only-key"
    assert "local-only-key" not in repr(local)
