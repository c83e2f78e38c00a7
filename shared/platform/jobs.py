"""Scheduled jobs, whoever starts them (Cloud Scheduler, an operator's `bridge` command, the admin
API): one run of a job at a time across every instance and caller, and each run recorded as a
sync execution with its counts and, if it failed, why."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import AlreadyRunning
from shared.platform.executions import RunCounts
from shared.platform.ports import Lease, SyncExecutionLog

Work = Callable[[RunCounts], str | None]
"""A job's work: fills the counts, and may return a note for the record (None: all went well)."""


@dataclass(frozen=True)
class Jobs:
    lease: Callable[[str], Lease]
    """The lease named for a job (`job-<name>`), shared by every instance."""
    executions: SyncExecutionLog
    owner: str
    clock: Callable[[], datetime]
    ttl: timedelta = timedelta(minutes=10)

    @contextmanager
    def exclusive(self, job: str) -> Iterator[None]:
        """Hold the job's lock for the block; AlreadyRunning (409) while another run holds it."""
        holder = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        lease = self.lease(f"job-{job}")
        if not lease.acquire(holder, now=self.clock(), ttl=self.ttl):
            raise AlreadyRunning(f"{job} is already running; it was not started again")
        try:
            yield
        finally:
            lease.release(holder)

    def run(self, job: str, work: Work) -> tuple[str, RunCounts]:
        """Run `work` under the job's lock, recorded as a sync execution: (its id, the counts)."""
        with self.exclusive(job):
            execution = self.executions.start(job, now=self.clock())
            counts = RunCounts()
            try:
                problem = work(counts)
            except Exception as exc:
                self.executions.finish(execution, counts, error=str(exc), now=self.clock())
                raise
            self.executions.finish(execution, counts, error=problem, now=self.clock())
            return execution, counts
