"""The ingress baseline: a plain functions-framework handler that verifies the Frappe HMAC,
publishes the raw body to Pub/Sub and waits for that publish, and does nothing else.

    functions-framework --source=bench/naive_webhook.py --target=naive_webhook

Settings: WEBHOOK_SECRET, GCP_PROJECT, NAIVE_TOPIC (default erp-invoices), PUBSUB_EMULATOR_HOST.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

import flask
import functions_framework
from google.cloud import pubsub_v1

SECRET = os.environ["WEBHOOK_SECRET"].encode()
TOPIC = os.environ.get("NAIVE_TOPIC", "erp-invoices")
PROJECT = os.environ.get("GCP_PROJECT") or os.environ["GOOGLE_CLOUD_PROJECT"]


@functools.cache
def _publisher() -> tuple[pubsub_v1.PublisherClient, str]:
    """Built once per instance, on the first request."""
    client = pubsub_v1.PublisherClient()
    return client, client.topic_path(PROJECT, TOPIC)


@functions_framework.http
def naive_webhook(request: flask.Request) -> tuple[str, int]:
    raw_body = request.get_data()
    expected = base64.b64encode(hmac.new(SECRET, raw_body, hashlib.sha256).digest()).decode()
    given = request.headers.get("X-Frappe-Webhook-Signature", "")
    if not hmac.compare_digest(expected, given):
        return "bad signature", 401
    client, topic = _publisher()
    client.publish(topic, raw_body).result(timeout=30)
    return "ok", 200
