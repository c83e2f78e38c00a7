"""The routing table (shared/core/routing.py), and the purity of core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shared.core.routing import (
    FILES,
    INVOICES,
    SERVICE_REQUESTS,
    consumer_of,
    default_routes,
    topics_for,
)


@pytest.mark.parametrize(
    ("doctype", "event", "topics"),
    [
        ("Sales Invoice", "on_submit", (INVOICES,)),
        ("Purchase Invoice", "on_change", (INVOICES,)),
        ("File", "after_insert", (FILES,)),
        ("File", "on_update", ()),
        ("Issue", "after_insert", (SERVICE_REQUESTS,)),
        ("ToDo", "after_insert", ()),
    ],
)
def test_default_routes(doctype: str, event: str, topics: tuple[str, ...]) -> None:
    assert topics_for(default_routes(), doctype, event) == topics


def test_consumer_of_reads_short_and_full_subscription_names() -> None:
    assert consumer_of("sheets-sync-invoices") == "sheets_sync"
    assert consumer_of("projects/p/subscriptions/notifier-service-requests") == "notifier"
    assert consumer_of("nobody") is None


FORBIDDEN = (
    "google",
    "telegram",
    "twilio",
    "requests",
    "httpx",
    "shared.adapters",
    "flask",
    "os",
    "time",
)


def test_core_imports_no_sdk_network_clock_or_environment() -> None:
    core = Path(__file__).resolve().parents[2] / "shared" / "core"
    assert list(core.glob("*.py"))
    for path in core.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN), (
                    path,
                    name,
                )
