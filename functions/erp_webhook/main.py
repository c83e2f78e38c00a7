"""erp_webhook: the bridge's front door (signed ERPNext webhooks in), its back door (dead letters)
and its operations desk (the admin API over error records and sync executions, and the scheduled
retry of pending errors; both need a Google identity allowed by the settings).

Wiring only. Settings are checked at import, so an instance without a webhook secret never starts.
"""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.ingress.webhook import Accepted
from shared.platform import runtime

SIGNATURE_HEADER = "X-Frappe-Webhook-Signature"

_settings = bootstrap.settings("erp_webhook")


def _accept(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    raw_body = runtime.read_body(request, _settings.max_body_bytes)
    result = bootstrap.ingress().accept(
        raw_body, request.headers.get(SIGNATURE_HEADER), request.args
    )
    if isinstance(result, Accepted):
        return runtime.answer(
            200,
            status="accepted",
            event_id=result.envelope.event_id,
            event_type=result.envelope.event_type,
            topics=list(result.topics),
        )
    return runtime.answer(202, status="unrouted", doctype=result.doctype, event=result.event)


@functions_framework.http
def receive_erp_webhook(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("receive_erp_webhook", _settings.project, request, _accept)


@functions_framework.cloud_event
def record_dead_letter(cloud_event: CloudEvent) -> None:
    runtime.serve_event(
        "record_dead_letter",
        "dead_letter",
        cloud_event.data,
        bootstrap.dead_letter_recorder().handle,
    )


def _admin(request: flask.Request) -> runtime.HttpAnswer:
    return bootstrap.admin_api().handle(request, request.method, request.path)


@functions_framework.http
def admin_api(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("admin_api", _settings.project, request, lambda _: _admin(request))


def _retry(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    bootstrap.admin_auth("erp_webhook").verify(request.headers)
    return runtime.job_answer(bootstrap.error_triage().retry_pending())


@functions_framework.http
def retry_errors(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("retry_errors", _settings.project, request, _retry)
