"""Google API clients (google-api-python-client): built from the shipped discovery documents, one
per thread, since an httplib2 connection must never be shared between threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def per_thread(build: Callable[[], Any]) -> Callable[[], Any]:
    """A factory that builds one client for each thread that asks, once."""
    local = threading.local()

    def client() -> Any:
        if not hasattr(local, "client"):
            local.client = build()
        return local.client

    return client


def discovery_client(
    api: str,
    version: str,
    credentials: Any,
    *,
    endpoint: str | None = None,
    ca_certs: str | None = None,
    timeout_s: float = 30.0,
) -> Any:
    """A client for `api` (no network call to build it); `endpoint` and `ca_certs` point it at a
    local stand-in."""
    import httplib2
    from google_auth_httplib2 import AuthorizedHttp
    from googleapiclient.discovery import build

    transport = httplib2.Http(timeout=timeout_s, ca_certs=ca_certs)
    # A resumable upload's "308 Resume Incomplete" is not a redirect: googleapiclient's own
    # build_http says so too; we build our own Http for the timeout and a stand-in's certificate.
    transport.redirect_codes = transport.redirect_codes - {308}
    return build(
        api,
        version,
        http=AuthorizedHttp(credentials, http=transport),
        static_discovery=True,
        client_options={"api_endpoint": endpoint} if endpoint else None,
        cache_discovery=False,
    )
