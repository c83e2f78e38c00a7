"""The cached ERPNext lookups behind the tracker's "entered by" and "project manager" columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.adapters.erpnext_directory import ErpNextDirectory
from tests.helpers.fakes import InMemoryDocuments

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def site() -> InMemoryDocuments:
    return InMemoryDocuments(
        {
            ("User", "ana@example.com"): {"full_name": "Ana Lopez"},
            ("User", "ben@example.com"): {"full_name": "Ben Okafor"},
            ("Project", "PROJ-0001"): {"pm_user": "ben@example.com"},
            ("Project", "PROJ-0002"): {},
        }
    )


def test_manager_is_read_through_the_configured_field_and_shown_by_full_name() -> None:
    directory = ErpNextDirectory(site(), clock=lambda: NOW, manager_field="pm_user")
    assert directory.project_manager("PROJ-0001") == "Ben Okafor"
    assert directory.project_manager("PROJ-0002") is None
    assert directory.user_full_name("ana@example.com") == "Ana Lopez"


def test_missing_user_or_project_reads_as_none() -> None:
    directory = ErpNextDirectory(site(), clock=lambda: NOW, manager_field="pm_user")
    assert directory.user_full_name("gone@example.com") is None
    assert directory.project_manager("PROJ-9999") is None


def test_lookups_are_cached_until_the_ttl_runs_out() -> None:
    erp, now = site(), [NOW]
    directory = ErpNextDirectory(erp, clock=lambda: now[0], ttl=timedelta(minutes=10))
    for _ in range(100):
        directory.user_full_name("ana@example.com")
    assert erp.reads == 1
    now[0] = NOW + timedelta(minutes=11)
    directory.user_full_name("ana@example.com")
    assert erp.reads == 2
