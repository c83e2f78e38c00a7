"""erp_webhook: the bridge's front door (signed ERPNext webhooks in), its back door (dead letters)
and its operations (the admin API over error records and sync executions, and the scheduled
retry of pending errors; both need a Google identity allowed by the settings).

Wiring only. Settings are checked at import, so an instance without a webhook secret never starts.
"""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared.ingress.webhook import Accepted
from shared.platform import runtime
from shared.roots import erp_webhook

SIGNATURE_HEADER = "X-Frappe-Webhook-Signature"

_root = erp_webhook.from_environment()
_project = _root.common.project


def _accept(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    raw_body = runtime.read_body(request, _root.settings.ingress.max_body_bytes)
    result = _root.ingress.accept(raw_body, request.headers.get(SIGNATURE_HEADER))
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
    return runtime.serve_http("receive_erp_webhook", _project, request, _accept)


@functions_framework.cloud_event
def record_dead_letter(cloud_event: CloudEvent) -> None:
    runtime.serve_event(
        "record_dead_letter",
        "dead_letter",
        cloud_event.data,
        _root.dead_letters.handle,
    )


def _admin(request: flask.Request) -> runtime.HttpAnswer:
    return _root.admin_api.handle(request, request.method, request.path)


@functions_framework.http
def admin_api(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("admin_api", _project, request, lambda _: _admin(request))


def _retry(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    _root.auth.verify(request.headers)
    return runtime.job_answer(_root.triage.retry_pending())


@functions_framework.http
def retry_errors(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("retry_errors", _project, request, _retry)
