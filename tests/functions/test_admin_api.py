"""erp_webhook's operations entry points (admin_api, retry_errors) through functions-framework,
called as Cloud Scheduler calls them: only a token Google's key signed opens them.

The tokens here are the issuer stand-in's genuine ones with their signature forged: every claim
is right (issuer, audience, expiry, an allowed and verified email), so only the signature check
can refuse them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from devstack.emulators import Emulators
from devstack.google_oidc import OidcIssuer
from devstack.stack import ADMIN, RETRY, RunningFunction, launch_function, wait_serving
from shared.adapters.firestore import FirestoreStores
from shared.adapters.pubsub import ensure_topic
from shared.core.envelope import document_envelope
from shared.core.routing import DEAD_LETTER, TOPICS
from shared.platform.failures import FailureReport
from tests.helpers.frappe import recent_modified

AUDIENCE = "https://bridge.example.com/"
SCHEDULER = "scheduler@bridge-test.iam.gserviceaccount.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def signed_by_another_key(token: str) -> str:
    """The same header (key id included) and claims, signed by an RSA key that is not the
    issuer's."""
    header, payload, _ = token.split(".")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64(signature)}"


def with_claims_swapped(token: str, email: str) -> str:
    """A genuine token's signature over a payload edited to name `email`."""
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims["email"] = email
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


@pytest.fixture
def operations(
    emulators: Emulators, project_id: str, tmp_path: Path
) -> Iterator[tuple[OidcIssuer, dict[str, RunningFunction]]]:
    for topic in (*TOPICS, DEAD_LETTER):
        ensure_topic(project_id, topic)
    with OidcIssuer() as issuer:
        env = {
            **emulators.env(),
            "GCP_PROJECT": project_id,
            "GOOGLE_CLOUD_PROJECT": project_id,
            "ERP_SITE": "erp.example.com",
            "ADMIN_AUDIENCE": AUDIENCE,
            "ADMIN_ALLOWED_EMAILS": SCHEDULER,
            "GOOGLE_CERTS_URL": issuer.certs_url,
        }
        running: dict[str, RunningFunction] = {}
        try:
            for spec in (ADMIN, RETRY):
                running[spec.target] = launch_function(spec, env, tmp_path, serve_metrics=False)
            for function in running.values():
                wait_serving(function)
            yield issuer, running
        finally:
            for function in running.values():
                function.stop()


def pending_failure(stores: FirestoreStores) -> str:
    """A replayable error record, quiet for an hour: what the retry job and a replay act on."""
    past = datetime.now(UTC) - timedelta(hours=1)
    doc = {"doctype": "Sales Invoice", "name": "SINV-9", "modified": recent_modified()}
    envelope = document_envelope(
        doc, doctype="Sales Invoice", event="on_submit", site="erp.example.com", received_at=past
    )
    report = FailureReport(
        integration="sheets_sync",
        operation="sync_invoice_row",
        entity_type="Sales Invoice",
        entity_id="SINV-9",
        event_id=envelope.event_id,
        message="failed",
        details="MappingError",
        envelope=envelope.to_json().decode(),
    )
    return stores.errors.record_failure(report, now=past)


def test_a_token_not_signed_by_the_issuers_key_opens_nothing(
    operations: tuple[OidcIssuer, dict[str, RunningFunction]], project_id: str
) -> None:
    """Proves the signature is verified: a forged token (another key, or a genuine signature
    over an edited payload) is 403 at the admin API and at the retry job, and neither runs
    (each run of a replay or of the retry job is an execution record); the genuine token, the
    control, runs the retry job over the same record."""
    issuer, functions = operations
    stores = FirestoreStores(project_id)
    record = pending_failure(stores)
    genuine = issuer.token_for(SCHEDULER, AUDIENCE)
    forged = {
        "signed by another key": signed_by_another_key(genuine),
        "payload edited": with_claims_swapped(
            issuer.token_for("someone@evil.example", AUDIENCE), SCHEDULER
        ),
    }
    admin_url, retry_url = functions[ADMIN.target].url, functions[RETRY.target].url
    answers = {}
    for why, token in forged.items():
        bearer = {"Authorization": f"Bearer {token}"}
        replay = requests.post(
            admin_url + "/errors/replay", json={"ids": [record]}, headers=bearer, timeout=30
        )
        retry = requests.post(retry_url + "/", headers=bearer, timeout=30)
        assert token not in replay.text + retry.text
        answers[why] = (replay.status_code, retry.status_code)
    assert answers == {why: (403, 403) for why in forged}
    assert stores.executions.recent() == []  # no replay, no retry run: nothing was done

    retried = requests.post(
        retry_url + "/", headers={"Authorization": f"Bearer {genuine}"}, timeout=60
    )
    assert retried.status_code == 200 and retried.json()["updated"] == 1
    assert [run.job for run in stores.executions.recent()] == ["retry_pending_errors"]
