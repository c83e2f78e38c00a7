"""Names the Invoice Tracker shows that an invoice does not carry, looked up in ERPNext and cached.

A user's full name and a project's manager change rarely; a short-lived cache per instance keeps
a burst of a thousand invoices from becoming a thousand lookups.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.core import documents
from shared.core.envelope import Json
from shared.errors import UpstreamRejected
from shared.platform.ports import DocumentReader


@dataclass
class ErpNextDirectory:
    """The InvoiceDirectory port over ERPNext. A missing user or project reads as None."""

    erp: DocumentReader
    clock: Callable[[], datetime]
    manager_field: str = "project_manager"
    ttl: timedelta = timedelta(minutes=10)
    _cache: dict[tuple[str, str], tuple[str | None, datetime]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def user_full_name(self, user_id: str) -> str | None:
        return self._cached("User", user_id, lambda doc: documents.text(doc.get("full_name")))

    def project_manager_user(self, project: str) -> str | None:
        """The project manager's user id (email)."""
        return self._cached(
            "Project", project, lambda doc: documents.text(doc.get(self.manager_field))
        )

    def project_manager(self, project: str) -> str | None:
        """The project manager's full name (the user id when the user has none)."""
        manager = self.project_manager_user(project)
        if manager is None:
            return None
        return self.user_full_name(manager) or manager

    def _cached(
        self, doctype: str, name: str, pick: Callable[[Mapping[str, Json]], str | None]
    ) -> str | None:
        now = self.clock()
        with self._lock:
            hit = self._cache.get((doctype, name))
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            value = pick(self.erp.get_doc(doctype, name))
        except UpstreamRejected:
            value = None  # deleted or not ours to read: show the cell empty, not fail the row
        with self._lock:
            self._cache[(doctype, name)] = (value, now + self.ttl)
        return value
