"""drive_upload: copies ERPNext attachments to Google Drive. Wiring only; the work happens in shared/."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, runtime

bootstrap.settings("drive_upload")  # fail fast at start when settings are missing


@functions_framework.cloud_event
def upload_attachment(cloud_event: CloudEvent) -> None:
    runtime.serve_event("drive_upload", cloud_event.data, bootstrap.consumer("drive_upload").handle)
