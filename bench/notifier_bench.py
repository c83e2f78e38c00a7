"""Notifier benchmark: alerts drained into the Telegram stand-in, which enforces Telegram's limits.

Two runs through the real drainer (python-telegram-bot, the Firestore outbox on the emulator):
N alerts to one group, and one alert to each of 100 private chats. Reported: messages a second,
messages in the busiest group window (limit 20), and the 429s the stand-in answered (target 0).
The group window is shortened (60 s -> `--group-window`) on both sides, so a run takes seconds
while keeping the same 20-per-window limit; the per-chat and global limits are Telegram's own.

    python -m bench.notifier_bench [--group-alerts 200] [--group-window 3]   # or: make bench-notifier
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.figures import Figure, write_figures
from devstack.emulators import running_emulators
from devstack.telegram import TelegramStandIn
from shared.adapters.firestore import FirestoreStores
from shared.adapters.telegram import TelegramApi
from shared.alerts.notifier import AlertDrainer, NotifierConfig
from shared.alerts.pacing import Limits
from shared.alerts.rules import Alert

TOKEN = "7000009:bench-token"
GROUP = -1009999
console = Console()


def utc_now() -> datetime:
    return datetime.now(UTC)


def run(
    stores: FirestoreStores, telegram: TelegramStandIn, limits: Limits, alerts: list[Alert]
) -> tuple[float, int]:
    stores.alerts.put(alerts, now=utc_now())
    drainer = AlertDrainer(
        outbox=stores.alerts,
        lease=stores.alert_drain_lease,
        telegram=TelegramApi(TOKEN, base_url=telegram.base_url),
        whatsapp=None,
        sessions=stores.whatsapp_sessions,
        errors=stores.errors,
        config=NotifierConfig(rules=(), chats={}, telegram_limits=limits, budget_s=3600),
        owner="bench",
        clock=utc_now,
    )
    started = time.monotonic()
    sent = drainer.drain().sent
    return time.monotonic() - started, sent


def alert(n: int, to: int) -> Alert:
    return Alert(f"bench|{n}|{to}", "bench", "telegram", str(to), f"alert {n}", f"e{n}", "Issue/x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group-alerts", type=int, default=200)
    parser.add_argument("--group-window", type=float, default=3.0)
    parser.add_argument("--json", type=Path, help="write the figures here (for bench/report.py)")
    args = parser.parse_args()
    limits = Limits(group_window_s=args.group_window)
    figures: list[Figure] = []
    table = Table(title="Notifier: alerts drained into the Telegram stand-in")
    for column in ("run", "messages", "seconds", "messages/s", "busiest window", "429s"):
        table.add_column(column, justify="right")
    with (
        tempfile.TemporaryDirectory(prefix="bench-notifier-") as logs,
        running_emulators("bench-notifier", Path(logs)) as emulators,
        Progress(console=console, transient=True) as progress,
    ):
        os.environ.update(emulators.env())
        stores = FirestoreStores("bench-notifier")
        task = progress.add_task("one group", total=None)
        with TelegramStandIn(TOKEN, group_window_s=args.group_window) as telegram:
            telegram.added_to(GROUP)
            seconds, sent = run(
                stores, telegram, limits, [alert(n, GROUP) for n in range(args.group_alerts)]
            )
            table.add_row(
                f"{args.group_alerts} to one group (20 per {args.group_window:g} s)",
                str(sent),
                f"{seconds:.1f}",
                f"{sent / seconds:.1f}",
                f"{telegram.busiest_window([GROUP], args.group_window)} / 20",
                str(len(telegram.refused)),
            )
            group = f"{args.group_alerts} to one group"
            busiest_group = telegram.busiest_window([GROUP], args.group_window)
            figures += [
                Figure(f"{group}: messages/s", f"{sent / seconds:.1f}", "-", None),
                Figure(
                    f"{group}: busiest {args.group_window:g} s window",
                    str(busiest_group),
                    "<= 20",
                    busiest_group <= 20,
                ),
                Figure(f"{group}: 429s", str(len(telegram.refused)), "0", not telegram.refused),
            ]
        progress.update(task, description="100 chats")
        with TelegramStandIn(TOKEN) as telegram:
            chats = range(10_001, 10_101)
            telegram.started_by(*chats)
            seconds, sent = run(
                stores, telegram, limits, [alert(n, c) for n, c in enumerate(chats)]
            )
            busiest = max(telegram.busiest_window([chat], 1.0) for chat in chats)
            table.add_row(
                "1 to each of 100 chats (30/s overall)",
                str(sent),
                f"{seconds:.1f}",
                f"{sent / seconds:.1f}",
                f"{busiest} / 1 per chat",
                str(len(telegram.refused)),
            )
            figures += [
                Figure("1 to each of 100 chats: messages/s", f"{sent / seconds:.1f}", "-", None),
                Figure("100 chats: busiest second in one chat", str(busiest), "<= 1", busiest <= 1),
                Figure("100 chats: 429s", str(len(telegram.refused)), "0", not telegram.refused),
            ]
    console.print(table)
    if args.json:
        write_figures(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
