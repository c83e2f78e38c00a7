"""Sheets benchmark: how many Google Sheets and ERPNext requests the Invoice Tracker costs.

Runs the whole devstack (emulators, functions, the ERPNext stand-in, the Sheets stand-in with
Google's per-user quotas: 60 reads and 60 writes a minute) and measures, from the stand-ins'
own request counts:

1. a lone invoice: seconds from ERPNext's insert to its row in the sheet (target: 5 s);
2. a burst of 1,000 invoice events through webhooks, Pub/Sub and sheets_sync: Sheets write and
   read requests (target: at most 10 each) and 429s (target: none);
3. reconciliation over 10,000 invoices imported without webhooks: ERPNext list calls (target:
   at most 25), then a second run with nothing changed (target: one call per invoice doctype).

    python -m bench.sheets_bench            # or: make bench-sheets
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.figures import Figure as ReportFigure
from bench.figures import write_figures
from devstack.stack import Devstack, running_devstack

console = Console()
LIST_PATHS = ("/api/resource/Sales Invoice", "/api/resource/Purchase Invoice")


@dataclass
class Figure:
    what: str
    measured: float
    target: str
    ok: bool


def wait_for_rows(stack: Devstack, count: int, timeout: float, label: str) -> float:
    """Seconds until the tracker holds `count` invoice rows, with a progress bar."""
    started = time.monotonic()
    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(label, total=count)
        while time.monotonic() - started < timeout:
            rows = len(stack.tracker_rows()) - 1
            progress.update(task, completed=rows)
            if rows >= count:
                return time.monotonic() - started
            time.sleep(0.1)
    raise SystemExit(f"{label}: the sheet did not reach {count} rows in {timeout:.0f} s")


def sheets_calls(stack: Devstack) -> tuple[int, int, int]:
    calls = stack.sheets.calls
    return calls["write"], calls["read"], calls["refused:429"]


def list_calls(stack: Devstack) -> int:
    return sum(stack.erpnext.request_count("GET", path) for path in LIST_PATHS)


def invoice(number: int, project: str, **party: str) -> dict[str, object]:
    return {
        **party,
        "project": project,
        "posting_date": "2026-11-23",
        "grand_total": 100 + number,
        "currency": "USD",
        "docstatus": 1,
    }


def measure(stack: Devstack, burst: int, reconciled: int) -> list[Figure]:
    erp = stack.erpnext
    secret = stack.env["WEBHOOK_SECRET"]
    for doctype in ("Sales Invoice", "Purchase Invoice"):
        erp.add_bridge_webhook(doctype, "after_insert", stack.webhook_url, secret)
    project = str(erp.all("Project")[0]["name"])
    figures: list[Figure] = []

    console.print("[bold]1. a lone invoice")
    started = time.monotonic()
    erp.insert("Sales Invoice", invoice(0, project, customer="Acme Builders"))
    wait_for_rows(stack, 1, 60, "lone invoice")
    lone = time.monotonic() - started
    figures.append(Figure("lone invoice: seconds to its row", round(lone, 2), "<= 5", lone <= 5))
    time.sleep(2)

    console.print(f"[bold]2. a burst of {burst} invoice events")
    writes0, reads0, refused0 = sheets_calls(stack)
    started = time.monotonic()
    for number in range(1, burst + 1):
        erp.insert("Sales Invoice", invoice(number, project, customer="Blue River Foods"))
    wait_for_rows(stack, burst + 1, 300, "burst")
    seconds = time.monotonic() - started
    time.sleep(3)  # a flusher still looping would show here
    writes, reads, refused = (
        a - b for a, b in zip(sheets_calls(stack), (writes0, reads0, refused0), strict=True)
    )
    figures += [
        Figure(f"burst of {burst}: Sheets write requests", writes, "<= 10", writes <= 10),
        Figure(f"burst of {burst}: Sheets read requests", reads, "<= 10", reads <= 10),
        Figure(f"burst of {burst}: 429 answers", refused, "0", refused == 0),
        Figure(f"burst of {burst}: seconds until all rows are in", round(seconds, 1), "-", True),
    ]

    console.print(f"[bold]3. reconciliation over {reconciled} invoices that fired no webhook")
    timed(stack.reconcile, "a first run, to set the watermarks past the burst")
    half = reconciled // 2
    erp.import_docs(
        "Sales Invoice", [invoice(n, project, customer="Cobalt Clinics") for n in range(half)]
    )
    erp.import_docs(
        "Purchase Invoice",
        [invoice(n, project, supplier="Delta Steel") for n in range(reconciled - half)],
    )
    before = list_calls(stack)
    answer = timed(stack.reconcile, f"the run that finds the {reconciled} imported invoices")
    first = list_calls(stack) - before
    before = list_calls(stack)
    again = timed(stack.reconcile, "second run, nothing changed")
    second = list_calls(stack) - before
    rows = len(stack.tracker_rows()) - 1
    expected_rows = burst + 1 + reconciled
    figures += [
        Figure(f"reconciliation of {reconciled}: ERPNext list calls", first, "<= 25", first <= 25),
        Figure(
            "reconciliation, nothing changed: ERPNext list calls",
            second,
            "1 per invoice doctype (2)",
            second <= 2,
        ),
        Figure("reconciliation: invoices seen", float(str(answer.get("seen"))), "-", True),
        Figure("rows in the sheet afterwards", rows, str(expected_rows), rows == expected_rows),
        Figure("second run: invoices seen", float(str(again.get("seen"))), "-", True),
    ]
    return figures


def timed(call: Callable[[], dict[str, object]], label: str) -> dict[str, object]:
    started = time.monotonic()
    with console.status(f"{label} ..."):
        answer = call()
    console.print(f"   {label}: {time.monotonic() - started:.1f} s, {answer}")
    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--reconciled", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="write the figures here (for bench/report.py)")
    args = parser.parse_args()
    console.print("starting the devstack (emulators, stand-ins, functions) ...")
    with running_devstack(
        webhook_secret=secrets.token_urlsafe(24), project="bench-sheets"
    ) as stack:
        figures = measure(stack, args.burst, args.reconciled)
    table = Table(title="Invoice Tracker: requests to Google Sheets and ERPNext")
    for column in ("what", "measured", "target", "met"):
        table.add_column(column)
    for figure in figures:
        measured = f"{figure.measured:g}"
        table.add_row(figure.what, measured, figure.target, "yes" if figure.ok else "[red]NO")
    console.print(table)
    if args.json:
        write_figures(
            args.json,
            [ReportFigure(f.what, f"{f.measured:g}", f.target, f.ok) for f in figures],
        )
    return 0 if all(figure.ok for figure in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
