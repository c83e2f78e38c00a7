"""Each function's settings: read from the environment, typed, every problem reported at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.core.claims import MAX_EVENT_AGE
from shared.core.routing import INVOICES, SERVICE_REQUESTS, topics_for
from shared.errors import ConfigurationError
from shared.ingress.settings import INSECURE_FLAG
from shared.roots import read_settings

WEBHOOK_ENV = {"GCP_PROJECT": "p", "ERP_SITE": "erp.example.com", "WEBHOOK_SECRET": "x" * 16}
ERPNEXT_ENV = {
    "GCP_PROJECT": "p",
    "ERPNEXT_URL": "https://erp.example.com",
    "ERPNEXT_API_KEY": "k",
    "ERPNEXT_API_SECRET": "s",
}
DRIVE_ENV = {**ERPNEXT_ENV, "DRIVE_AUTH": "shared_drive", "DRIVE_SHARED_DRIVE_ID": "d"}
SHEETS_ENV = {**ERPNEXT_ENV, "SHEETS_SPREADSHEET_ID": "sheet"}


def problems(function: str, env: dict[str, str]) -> list[str]:
    """The problems `function`'s settings name, one per line of the error."""
    with pytest.raises(ConfigurationError) as caught:
        read_settings(function, env)
    head, *lines = str(caught.value).splitlines()
    assert head == f"{function} cannot start; fix these settings:"
    return [line.removeprefix("- ") for line in lines]


def test_one_error_lists_every_missing_setting() -> None:
    text = "\n".join(problems("erp_webhook", {}))
    assert "GCP_PROJECT" in text and "ERP_SITE" in text and "WEBHOOK_SECRET" in text


def test_every_malformed_setting_is_named_together_not_only_the_first() -> None:
    found = problems(
        "drive_upload",
        {
            **DRIVE_ENV,
            "DRIVE_CHUNK_BYTES": "8MiB",
            "CLAIM_LEASE_SECONDS": "two minutes",
            "ERPNEXT_TIMEOUT_SECONDS": "-1",
            "DRIVE_FOLDER_TEMPLATE": "{client}",
        },
    )
    assert found == [
        "CLAIM_LEASE_SECONDS must be a number, not 'two minutes'",
        "ERPNEXT_TIMEOUT_SECONDS must be positive, not '-1'",
        "DRIVE_FOLDER_TEMPLATE has an unknown placeholder: 'client'",
        "DRIVE_CHUNK_BYTES must be a positive whole number, a multiple of 262144 (256 KiB), "
        "not '8MiB'",
    ]


def test_each_function_reads_only_its_own_settings() -> None:
    """A Drive or Telegram mistake does not stop the webhook, nor a sheet mistake the Drive."""
    broken_elsewhere = {
        "DRIVE_CHUNK_BYTES": "8MiB",
        "DRIVE_AUTH": "nonsense",
        "TELEGRAM_WEBHOOK_SECRET": "not allowed!",
        "TRACKER_COLUMNS": "invoice,nonsense",
        "SHEETS_GATHER_SECONDS": "soon",
    }
    webhook = read_settings("erp_webhook", {**WEBHOOK_ENV, **broken_elsewhere})
    assert webhook.common.site == "erp.example.com"
    assert not hasattr(webhook, "drive") and not hasattr(webhook, "sheets")
    drive = read_settings(
        "drive_upload",
        {**DRIVE_ENV, **broken_elsewhere, "DRIVE_AUTH": "shared_drive", "DRIVE_CHUNK_BYTES": ""},
    )
    assert drive.drive.chunk_bytes == 8 * 1024 * 1024
    assert not hasattr(drive, "sheets") and not hasattr(drive, "alerts")


def test_an_unknown_function_is_refused() -> None:
    with pytest.raises(ValueError, match="no function is called 'routes_only'"):
        read_settings("routes_only", WEBHOOK_ENV)


def test_webhook_refuses_to_start_without_secret_unless_local_insecure_flag() -> None:
    env = {k: v for k, v in WEBHOOK_ENV.items() if k != "WEBHOOK_SECRET"}
    with pytest.raises(ConfigurationError):
        read_settings("erp_webhook", env)
    with pytest.raises(ConfigurationError, match="emulator"):
        read_settings("erp_webhook", {**env, INSECURE_FLAG: "local-only"})
    local = read_settings(
        "erp_webhook", {**env, INSECURE_FLAG: "local-only", "PUBSUB_EMULATOR_HOST": "127.0.0.1:1"}
    )
    assert local.ingress.allow_unsigned and local.ingress.webhook_secret is None


def test_insecure_flag_needs_its_exact_value() -> None:
    env = {"GCP_PROJECT": "p", "ERP_SITE": "s", INSECURE_FLAG: "1", "PUBSUB_EMULATOR_HOST": "h:1"}
    with pytest.raises(ConfigurationError):
        read_settings("erp_webhook", env)


def test_secret_is_read_through_the_secret_reader_and_never_shown_in_repr() -> None:
    env = {k: v for k, v in WEBHOOK_ENV.items() if k != "WEBHOOK_SECRET"}
    settings = read_settings("erp_webhook", env, {"webhook-secret": "from-manager"}.get)
    assert settings.ingress.webhook_secret == "from-manager"
    assert "from-manager" not in repr(settings)


def test_bad_numbers_are_reported_with_their_names() -> None:
    with pytest.raises(ConfigurationError, match="MAX_BODY_BYTES"):
        read_settings("erp_webhook", {**WEBHOOK_ENV, "MAX_BODY_BYTES": "lots"})


def test_an_event_age_beyond_what_claims_outlive_is_refused() -> None:
    (problem,) = problems("sheets_sync", {**SHEETS_ENV, "MAX_EVENT_AGE_HOURS": "168"})
    assert problem.startswith("MAX_EVENT_AGE_HOURS may be at most 142")
    settings = read_settings("sheets_sync", {**SHEETS_ENV, "MAX_EVENT_AGE_HOURS": "48"})
    assert settings.common.max_event_age == timedelta(hours=48)
    assert read_settings("sheets_sync", SHEETS_ENV).common.max_event_age == MAX_EVENT_AGE


def test_service_request_doctype_is_configurable() -> None:
    settings = read_settings(
        "erp_webhook", {**WEBHOOK_ENV, "SERVICE_REQUEST_DOCTYPE": "Service Call"}
    )
    assert topics_for(settings.common.routes, "Service Call", "after_insert") == (SERVICE_REQUESTS,)
    assert topics_for(settings.common.routes, "Issue", "after_insert") == ()


def test_routes_json_replaces_the_table() -> None:
    env = {
        **WEBHOOK_ENV,
        "ROUTES_JSON": '[{"doctype": "Quotation", "event": "*", "topics": ["erp-invoices"]}]',
    }
    settings = read_settings("erp_webhook", env)
    assert topics_for(settings.common.routes, "Quotation", "on_update") == (INVOICES,)
    with pytest.raises(ConfigurationError, match="ROUTES_JSON"):
        read_settings("erp_webhook", {**WEBHOOK_ENV, "ROUTES_JSON": "{"})


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"DRIVE_AUTH": ""}, "DRIVE_AUTH must be one of shared_drive, delegation, oauth_user"),
        ({"DRIVE_SHARED_DRIVE_ID": ""}, "needs DRIVE_SHARED_DRIVE_ID"),
        ({"DRIVE_AUTH": "delegation"}, "needs DRIVE_IMPERSONATE"),
        ({"DRIVE_AUTH": "oauth_user", "DRIVE_OAUTH_CLIENT_ID": "c"}, "DRIVE_OAUTH_REFRESH_TOKEN"),
        ({"DRIVE_CHUNK_BYTES": "1000"}, "256 KiB"),
        ({"DRIVE_CHUNK_BYTES": "8MiB"}, "DRIVE_CHUNK_BYTES must be a positive whole number"),
        ({"DRIVE_FOLDER_TEMPLATE": "{client}"}, "placeholder"),
    ],
)
def test_a_drive_choice_that_cannot_work_stops_the_function_at_start(
    extra: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        read_settings("drive_upload", {**DRIVE_ENV, **extra})


def test_drive_settings_default_to_the_shared_drive_as_root_and_hide_tokens() -> None:
    settings = read_settings(
        "drive_upload",
        {
            **DRIVE_ENV,
            "DRIVE_AUTH": "oauth_user",
            "DRIVE_SHARED_DRIVE_ID": "",
            "DRIVE_OAUTH_CLIENT_ID": "client-id",
            "DRIVE_OAUTH_CLIENT_SECRET": "client-secret-value",
            "DRIVE_OAUTH_REFRESH_TOKEN": "refresh-token-value",
        },
    )
    assert settings.drive.root_folder == "root"
    assert "refresh-token-value" not in repr(settings)
    assert "client-secret-value" not in repr(settings)
    shared = read_settings("drive_upload", {**DRIVE_ENV, "DRIVE_SHARED_DRIVE_ID": "0ABC"})
    assert shared.drive.root_folder == "0ABC"


def test_the_sheet_and_its_columns_are_checked_with_the_rest() -> None:
    found = problems(
        "sheets_sync",
        {**ERPNEXT_ENV, "TRACKER_COLUMNS": "project,amount", "SHEETS_GATHER_SECONDS": "soon"},
    )
    assert found[0] == "SHEETS_SPREADSHEET_ID (the Invoice Tracker spreadsheet) is not set"
    assert found[1] == "SHEETS_GATHER_SECONDS must be a number, not 'soon'"
    assert found[2].startswith("TRACKER_COLUMNS / TRACKER_DELETED:")
    settings = read_settings(
        "sheets_sync",
        {
            **SHEETS_ENV,
            "ERPNEXT_API_SECRET": "erp-secret-9f2c",
            "ERPNEXT_PUBLIC_URL": "https://erp/",
        },
    )
    assert settings.sheets.tracker.site_url == "https://erp"
    assert settings.erpnext.api_secret == "erp-secret-9f2c"
    assert "erp-secret-9f2c" not in repr(settings)


def test_the_local_admin_key_is_refused_outside_the_emulators() -> None:
    env = {**WEBHOOK_ENV, "ADMIN_API_KEY": "local-only-key"}
    with pytest.raises(ConfigurationError, match="ADMIN_API_KEY is only honoured"):
        read_settings("erp_webhook", env)
    local = read_settings("erp_webhook", {**env, "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"})
    assert local.admin.local_key == "local-only-key"
    assert "local-only-key" not in repr(local)


NOTIFIER_ENV = {
    **ERPNEXT_ENV,
    "TELEGRAM_BOT_TOKEN": "1:token",
    "TELEGRAM_WEBHOOK_SECRET": "hook-secret",
    "TELEGRAM_BOT_USERNAME": "bridge_bot",
    "ALERT_CHATS_JSON": '{"service_team": -1, "oncall": -2, "admins": -3}',
}
LOCAL_ONLY = [
    ("erp_webhook", WEBHOOK_ENV, "GOOGLE_CERTS_URL", "http://keys.example.com/certs"),
    ("erp_webhook", WEBHOOK_ENV, "SECRET_MANAGER_ENDPOINT", "http://secrets.example.com"),
    ("sheets_sync", SHEETS_ENV, "SHEETS_ENDPOINT", "http://sheets.example.com"),
    ("drive_upload", DRIVE_ENV, "DRIVE_ENDPOINT", "http://drive.example.com"),
    ("drive_upload", DRIVE_ENV, "DRIVE_CA_CERTS", "stand-in-ca.pem"),
    ("drive_upload", DRIVE_ENV, "DRIVE_TOKEN", "a-fixed-token"),
    ("drive_upload", DRIVE_ENV, "DRIVE_TOKEN_URI", "http://tokens.example.com"),
    ("notifier", NOTIFIER_ENV, "TELEGRAM_API_URL", "http://telegram.example.com"),
    ("notifier", NOTIFIER_ENV, "TWILIO_API_URL", "http://twilio.example.com"),
]


@pytest.mark.parametrize(("function", "base", "key", "value"), LOCAL_ONLY)
def test_a_stand_ins_address_is_refused_outside_the_emulators(
    function: str, base: dict[str, str], key: str, value: str
) -> None:
    """Each would hand a token (or the trust in admin tokens) to whoever serves at that address."""
    assert problems(function, {**base, key: value}) == [
        f"{key} is only honoured against the emulators (local runs)"
    ]
    local = {**base, key: value, "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"}
    assert read_settings(function, local).common.project == "p"
