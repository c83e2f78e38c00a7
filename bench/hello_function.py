"""Bare functions-framework functions: the cold-start floor the bridge's functions are compared to."""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent


@functions_framework.http
def hello_http(request: flask.Request) -> str:
    return "hello"


@functions_framework.cloud_event
def hello_event(cloud_event: CloudEvent) -> None:
    return None
