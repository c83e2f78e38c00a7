"""Sync executions: one record per run of a scheduled job (reconciliation, backfill, replay)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(slots=True)
class RunCounts:
    """What one run saw and did; the job adds to it as it goes."""

    seen: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class SyncExecution:
    id: str
    job: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None = None
    counts: RunCounts = field(default_factory=RunCounts)
    error: str | None = None
