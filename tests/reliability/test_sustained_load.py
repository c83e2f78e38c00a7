"""60 seconds of webhooks at the highest rate erp_webhook answers (16 connections, each sending
its next webhook as soon as the last is answered, from a separate process), through the whole
devstack: every webhook answered 200 must end as its row in the Invoice Tracker, once.

Some minutes (the consumers drain the backlog after the load): `make reliability`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load import LoadResult
from devstack.emulators import Emulators
from devstack.stack import ROOT, Devstack, running_devstack
from devstack.waiting import wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(2400)]

SECRET = "sustained-load-secret"
SECONDS = 60
PREFIX = "SINV-SUSTAIN"


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[Devstack]:
    extra = {"SHEETS_GATHER_SECONDS": "1", "LOG_LEVEL": "WARNING"}
    with running_devstack(
        webhook_secret=SECRET, extra_env=extra, project="sustained", emulators=emulators
    ) as running:
        yield running


def test_sixty_seconds_at_the_highest_rate_lose_nothing(
    stack: Devstack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "load.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load",
            f"--url={stack.webhook_url}",
            f"--secret={SECRET}",
            f"--seconds={SECONDS}",
            "--connections=16",
            f"--prefix={PREFIX}",
            f"--out={out}",
        ],
        check=True,
        timeout=SECONDS * 3,
        cwd=ROOT,
    )
    load = LoadResult.read(out)
    statuses = Counter(sample.status for sample in load.samples)
    accepted = {sample.name for sample in load.accepted}
    assert 0 not in statuses, f"requests without an answer: {statuses}"
    assert len(accepted) == len(load.accepted), "a document name was sent twice"
    loaded_at = time.monotonic()

    def rows() -> Counter[str]:
        return Counter(
            str(row[0]) for row in stack.tracker_rows()[1:] if row and str(row[0]) in accepted
        )

    assert wait_until(lambda: len(rows()) == len(accepted), timeout=1800, every=10), (
        f"{len(accepted) - len(rows())} of {len(accepted)} accepted webhooks never reached the sheet"
    )
    drained_s = time.monotonic() - loaded_at
    found = rows()
    assert set(found.values()) == {1}, [name for name, n in found.items() if n > 1][:10]
    with capsys.disabled():  # the figures, for the report
        sys.stderr.write(
            f"\n60 s at 16 connections: {len(load.samples)} webhooks, answers {dict(statuses)}, "
            f"{load.throughput:.0f} accepted/s; every accepted one in the sheet once, "
            f"{drained_s:.0f} s after the load ended\n"
        )
