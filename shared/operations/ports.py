"""Operations' ports: the error records as the triage reads and changes them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from shared.operations.error_query import ErrorFilter
from shared.platform.failures import ErrorRecord


class ErrorRecords(Protocol):
    def search(self, wanted: ErrorFilter) -> list[ErrorRecord]: ...

    def get(self, record_id: str) -> ErrorRecord | None: ...

    def set_status(
        self, record_ids: Sequence[str], status: str, *, now: datetime, note: str | None = None
    ) -> list[str]: ...

    def mark_replayed(self, record_id: str, event_id: str, *, now: datetime) -> None: ...
