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

from shared import bootstrap, runtime

_settings = bootstrap.settings("notifier")  # fail fast at start when settings are missing


@functions_framework.cloud_event
def send_alerts(cloud_event: CloudEvent) -> None:
    runtime.serve_event("notifier", cloud_event.data, bootstrap.consumer("notifier").handle)


@functions_framework.http
def telegram_webhook(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http(
        "telegram_webhook", _settings.project, request, bootstrap.telegram_webhook().handle
    )


@functions_framework.http
def whatsapp_webhook(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http(
        "whatsapp_webhook", _settings.project, request, bootstrap.whatsapp_webhook().handle
    )


def _drain(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    report = bootstrap.notifier().drainer.drain()
    return runtime.answer(200, sent=report.sent, throttled=report.throttled, failed=report.failed)


@functions_framework.http
def drain_alerts(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("drain_alerts", _settings.project, request, _drain)


def _digest(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    return runtime.answer(200, result=bootstrap.notifier().daily_digest())


@functions_framework.http
def daily_digest(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("daily_digest", _settings.project, request, _digest)
