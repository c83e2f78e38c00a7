"""notifier: Telegram and WhatsApp alerts, and the two bots. Wiring only; the work happens in shared/.

- `send_alerts`: each invoice and service-request event from Pub/Sub, turned into alerts by rules;
- `telegram_webhook`: the bot's webhook (Telegram's secret token checked);
- `whatsapp_webhook`: Twilio's inbound WhatsApp webhook (its signature checked);
- `drain_alerts` and `daily_digest`: Cloud Scheduler targets (HTTP; in the cloud only the
  scheduler's OIDC identity may invoke them): a backlog left by throttling, the admins' digest.
"""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared.platform import runtime
from shared.platform.executions import RunCounts
from shared.roots import notifier

_root = notifier.from_environment()  # fails fast at start when settings are missing
_project = _root.common.project


@functions_framework.cloud_event
def send_alerts(cloud_event: CloudEvent) -> None:
    runtime.serve_event("send_alerts", "notifier", cloud_event.data, _root.consumer.handle)


@functions_framework.http
def telegram_webhook(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("telegram_webhook", _project, request, _root.telegram_webhook.handle)


@functions_framework.http
def whatsapp_webhook(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("whatsapp_webhook", _project, request, _root.whatsapp_webhook.handle)


def _drain(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    _root.auth.verify(request.headers)

    def work(counts: RunCounts) -> None:
        report = _root.alerts.drainer.drain()
        counts.seen = report.sent + report.failed + report.deferred
        counts.updated, counts.skipped, counts.failed = report.sent, report.deferred, report.failed

    return runtime.job_answer(_root.jobs.run("drain_alerts", work))


@functions_framework.http
def drain_alerts(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("drain_alerts", _project, request, _drain)


def _digest(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    _root.auth.verify(request.headers)
    result: list[str] = []

    def work(counts: RunCounts) -> None:
        result.append(_root.alerts.daily_digest())
        counts.seen = counts.updated = 1

    execution, _ = _root.jobs.run("daily_digest", work)
    return runtime.answer(200, execution=execution, result=result[0])


@functions_framework.http
def daily_digest(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("daily_digest", _project, request, _digest)
