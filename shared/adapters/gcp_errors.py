"""What the Google adapters share about SDK failures: which exceptions they are, and how to name one."""

from __future__ import annotations

import grpc  # type: ignore[import-untyped]  # grpcio ships no type stubs; we only catch RpcError
import requests
from google.api_core import exceptions as google_errors
from google.auth import exceptions as auth_errors

GOOGLE_FAILURES: tuple[type[Exception], ...] = (
    google_errors.GoogleAPIError,
    grpc.RpcError,
    auth_errors.GoogleAuthError,
    requests.RequestException,  # REST transports (Secret Manager's, googleapiclient's) use requests
)
"""Everything a Google client raises for a failed call: the adapters translate exactly these."""

TRANSIENT: tuple[type[Exception], ...] = (
    google_errors.Aborted,
    google_errors.Cancelled,
    google_errors.DeadlineExceeded,
    google_errors.InternalServerError,
    google_errors.ResourceExhausted,
    google_errors.ServiceUnavailable,
    google_errors.Unknown,
)
"""Failures worth retrying inside one call, within the adapter's own deadline."""


def describe(exc: BaseException) -> str:
    """A short, secret-free description: the error class and gRPC code, never request data."""
    if isinstance(exc, google_errors.GoogleAPICallError) and exc.grpc_status_code is not None:
        return f"{type(exc).__name__} ({exc.grpc_status_code.name})"
    return type(exc).__name__
