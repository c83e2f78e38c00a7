"""notifier: turns events into Telegram and WhatsApp alerts. Wiring only; the work happens in shared/."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, runtime

bootstrap.settings("notifier")  # fail fast at start when settings are missing


@functions_framework.cloud_event
def send_alerts(cloud_event: CloudEvent) -> None:
    runtime.serve_event("notifier", cloud_event.data, bootstrap.consumer("notifier").handle)
