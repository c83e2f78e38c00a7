"""The composition roots: one module per function builds that function's services from its own
settings and adapters (`erp_webhook`, `sheets_sync`, `drive_upload`, `notifier`).

Each root is an object whose every piece (stores, clients, services) is a cached property built
on first use, so a function pays only for the SDKs it uses. Any piece can be handed in instead
(`SheetsSyncRoot(settings, stores=..., clock=...)`): a whole function runs on fakes in a test, and a
new root is a fresh start, with nothing to reset. `functions/*/main.py` holds one root each.
"""

from __future__ import annotations

import functools
import importlib
import os
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.platform import logs, metrics, observability
from shared.platform.settings import EnvReader, SecretReader, is_local

FUNCTIONS = ("erp_webhook", "sheets_sync", "drive_upload", "notifier")


def utc_now() -> datetime:
    return datetime.now(UTC)


@functools.cache
def instance_id() -> str:
    """Who holds a claim: this host and process, unique per instance."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def read_settings(
    function: str, env: Mapping[str, str], read_secret: SecretReader | None = None
) -> Any:
    """`function`'s own settings (`<root module>.Settings`); one ConfigurationError names every
    problem. Only the function's root module is imported, so only its sections are read."""
    reader = EnvReader(env, read_secret)
    settings = _module(function).Settings.read(reader)
    reader.check(function)
    assert settings is not None, "a section that could not be read notes why"
    return settings


def root_of(function: str) -> Any:
    """`function`'s root, from this instance's environment (`<root module>.from_environment`)."""
    return _module(function).from_environment()


def start(function: str) -> Any:
    """Once per instance: logs, metrics and Sentry on, and the settings read from the environment
    (secrets from Secret Manager when SECRETS_BACKEND says so)."""
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"))
    if os.environ.get("METRICS_PORT"):
        # Only where something scrapes them: the exporter and the OTel SDK cost ~45 ms of cold
        # start, and without a provider the instruments are OpenTelemetry's no-ops.
        metrics.install_prometheus()
    project = os.environ.get("GCP_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT") or ""
    settings = read_settings(function, os.environ, _secret_reader(project) if project else None)
    observability.start(function, settings)  # secrets scrubbed; Sentry and /metrics when set
    return settings


def _module(function: str) -> Any:
    """The root module of `function`; only it is imported, so only its sections are read."""
    if function not in FUNCTIONS:
        raise ValueError(f"no function is called {function!r}; one of {', '.join(FUNCTIONS)}")
    return importlib.import_module(f"shared.roots.{function}")


def _secret_reader(project: str) -> SecretReader | None:
    if os.environ.get("SECRETS_BACKEND") != "secret-manager":
        return None
    from shared.adapters.secrets import SecretManagerReader

    return SecretManagerReader(
        project,
        os.environ.get("SECRETS_VERSION", "latest"),
        # A stand-in's address only in local runs (the settings refuse it elsewhere): Secret
        # Manager calls carry the function's Google credentials.
        endpoint=(os.environ.get("SECRET_MANAGER_ENDPOINT") or None)
        if is_local(os.environ)
        else None,
    )
