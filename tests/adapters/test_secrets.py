"""Secrets through Secret Manager's REST API (a local stand-in), as the cloud functions read them."""

from __future__ import annotations

import pytest
from functions_framework import create_app

from devstack.emulators import Emulators
from devstack.secretmanager import SecretManagerStandIn
from shared.adapters.pubsub import ensure_topic
from shared.adapters.secrets import SecretManagerReader
from shared.errors import ConfigurationError
from tests.helpers.frappe import frappe_signature, v15_body

SECRET = "secret-from-secret-manager"


def test_reader_returns_the_value_and_none_when_the_secret_does_not_exist() -> None:
    with SecretManagerStandIn({"webhook-secret": SECRET}) as manager:
        reader = SecretManagerReader("p", endpoint=manager.url)
        assert reader("webhook-secret") == SECRET
        assert reader("erpnext-api-key") is None
        assert manager.accessed == ["webhook-secret", "erpnext-api-key"]


def test_unreachable_secret_manager_is_a_configuration_error_naming_the_secret_only() -> None:
    with SecretManagerStandIn({}) as manager:
        url = manager.url
    with pytest.raises(ConfigurationError, match="webhook-secret") as caught:
        SecretManagerReader("p", endpoint=url)("webhook-secret")
    assert SECRET not in str(caught.value)


def test_webhook_reads_its_secret_from_secret_manager_when_env_has_none(
    emulators: Emulators, project_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_topic(project_id, "erp-invoices")
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    with SecretManagerStandIn({"webhook-secret": SECRET}) as manager:
        for key, value in {
            "GCP_PROJECT": project_id,
            "ERP_SITE": "erp.example.com",
            "SECRETS_BACKEND": "secret-manager",
            "SECRET_MANAGER_ENDPOINT": manager.url,
        }.items():
            monkeypatch.setenv(key, value)
        client = create_app(
            "receive_erp_webhook", "functions/erp_webhook/main.py", "http"
        ).test_client()
        body = v15_body(
            {"doctype": "Sales Invoice", "name": "SINV-1", "modified": "2026-11-23 10:00:00"}
        )
        good = frappe_signature(SECRET, body)
        assert (
            client.post("/", data=body, headers={"X-Frappe-Webhook-Signature": good}).status_code
            == 200
        )
        bad = frappe_signature("other", body)
        assert (
            client.post("/", data=body, headers={"X-Frappe-Webhook-Signature": bad}).status_code
            == 401
        )
