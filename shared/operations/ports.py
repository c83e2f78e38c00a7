"""Operations' ports: the error records as the triage reads and changes them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from shared.operations.error_query import ErrorFilter

Record = dict[str, object]
"""An error record as stored (Firestore's fields)."""


class ErrorRecords(Protocol):
    def search(self, wanted: ErrorFilter) -> list[Record]: ...

    def get(self, record_id: str) -> Record | None: ...

    def set_status(
        self, record_ids: Sequence[str], status: str, *, now: datetime, note: str | None = None
    ) -> list[str]: ...

    def mark_replayed(self, record_id: str, event_id: str, *, now: datetime) -> None: ...
