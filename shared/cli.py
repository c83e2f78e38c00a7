"""Operator commands, configured by the same environment as the functions.

bridge sheet-setup   # header, frozen row, formats, Summary, Overhead, highlight rule (idempotent)
bridge reconcile     # bring the Invoice Tracker up to date with ERPNext now, with progress
bridge backfill      # copy to Drive the attachments that have no Drive copy yet, with progress
bridge telegram-webhook URL   # point Telegram at the bot's webhook, with its secret token
bridge link-code USER         # a one-time link for an ERPNext user's Telegram (the first admin)
bridge errors [FILTER=VALUE ...] [--csv]     # the error log (integration, operation, status,
                                             # entity_type, since, until, limit)
bridge resolve|ignore|reopen ID ...          # set error records' status
bridge replay [--current] ID ...             # publish failed events again
bridge executions [JOB]                      # recent runs of the scheduled jobs
bridge check                                 # every connection of every function, in a table
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence

from shared.errors import BridgeError, ConfigurationError
from shared.platform.executions import RunCounts
from shared.roots import FUNCTIONS, drive_upload, erp_webhook, notifier, root_of, sheets_sync


def sheet_setup(*args: str) -> int:
    from shared.adapters.sheets import GoogleSheetLayout
    from shared.sheets.sync import set_up_sheet

    root = sheets_sync.from_environment()
    sheets = root.settings.sheets
    sent = set_up_sheet(
        GoogleSheetLayout(root.sheets_service, sheets.spreadsheet_id), sheets.tracker
    )
    print(
        f"sheet {sheets.spreadsheet_id}: "
        + (f"set up with {sent} changes" if sent else "already set up, nothing changed")
    )
    return 0


def reconcile(*args: str) -> int:
    from shared.sheets.reconcile import JOB

    root = sheets_sync.from_environment()
    return _run_job(
        "reconciling {n} invoices read from ERPNext",
        lambda progress: root.jobs.run(
            JOB, lambda counts: root.reconciliation.run(counts, progress)
        ),
        ("seen", "updated", "skipped (stale)", "failed"),
    )


def backfill(*args: str) -> int:
    from shared.drive.filing import BACKFILL_JOB

    root = drive_upload.from_environment()
    return _run_job(
        "backfilling: {n} attachments without a Drive copy",
        lambda progress: root.jobs.run(
            BACKFILL_JOB, lambda counts: root.backfill.run(counts, progress)
        ),
        ("seen", "uploaded", "skipped", "failed"),
    )


def _run_job(
    label: str,
    run: Callable[[Callable[[int], None]], tuple[str, RunCounts]],
    headers: tuple[str, str, str, str],
) -> int:
    """A scheduled job run now, under its lock as when Cloud Scheduler runs it (refused while
    that run goes on), with a progress line and a table of its counts."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]" + label.replace("{n}", "{task.completed}")),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("job", total=None)
        execution, counts = run(lambda seen: progress.advance(task, seen))
    table = Table(title=f"sync execution {execution}")
    for column in headers:
        table.add_column(column, justify="right")
    table.add_row(*(str(n) for n in (counts.seen, counts.updated, counts.skipped, counts.failed)))
    Console().print(table)
    return 1 if counts.failed else 0


def telegram_webhook(*args: str) -> int:
    if len(args) != 1 or not args[0].startswith("https://"):
        raise ConfigurationError(
            "give the webhook's public https:// address, e.g. its Cloud Run URL"
        )
    root = notifier.from_environment()
    config = root.settings.alerts
    root.telegram.set_webhook(args[0], config.telegram_secret)
    print(f"Telegram now posts updates for @{config.bot_username} to {args[0]}")
    return 0


def link_code(*args: str) -> int:
    from datetime import UTC, datetime

    if len(args) != 1 or "@" not in args[0]:
        raise ConfigurationError("give the ERPNext user (an email), e.g. admin@example.com")
    bot = notifier.from_environment().bot
    print(bot.deep_link(bot.create_link_code(args[0], datetime.now(UTC))))
    print("Usable once; send it to that person only.", file=sys.stderr)
    return 0


def errors(*args: str) -> int:
    from rich.console import Console
    from rich.table import Table

    from shared.operations.error_query import ErrorFilter, to_csv

    as_csv = "--csv" in args
    pairs = [arg for arg in args if arg != "--csv"]
    if any("=" not in pair for pair in pairs):
        raise ConfigurationError("filters are NAME=VALUE, e.g. status=pending integration=notifier")
    wanted = ErrorFilter.parse(dict(pair.split("=", 1) for pair in pairs))
    records = erp_webhook.from_environment().triage.find(wanted)
    if as_csv:
        sys.stdout.write(to_csv(records))
        return 0
    table = Table(title=f"{len(records)} error records, newest first")
    for column in ("id", "status", "integration", "entity", "attempts", "last seen", "message"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            record.id,
            record.status.value,
            record.integration,
            f"{record.entity_type} {record.entity_id}",
            str(record.attempts),
            str(record.last_seen or "")[:19],
            record.message[:120],
        )
    Console().print(table)
    return 0


def _set_status(status: str) -> Callable[..., int]:
    def command(*ids: str) -> int:
        triage = erp_webhook.from_environment().triage
        changed = triage.set_status(list(ids), status, note="bridge command")
        print(f"{len(changed)} of {len(ids)} records now {status}")
        return 0 if len(changed) == len(ids) else 1

    return command


def replay(*args: str) -> int:
    from shared.operations.triage import Source

    ids = [arg for arg in args if arg != "--current"]
    source: Source = "current" if "--current" in args else "original"
    execution, report = erp_webhook.from_environment().triage.replay(ids, source)
    for record_id in report.replayed:
        print(f"replayed {record_id}")
    for record_id, why in report.skipped.items():
        print(f"skipped {record_id}: {why}", file=sys.stderr)
    print(f"sync execution {execution}")
    return 0 if not report.skipped else 1


def executions(*args: str) -> int:
    from rich.console import Console
    from rich.table import Table

    executions = erp_webhook.from_environment().stores.executions
    runs = executions.recent(args[0] if args else None, limit=50)
    table = Table(title="recent sync executions")
    for column in ("job", "status", "started", "finished", "seen", "updated", "skipped", "failed"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.job,
            run.status.value,
            str(run.started_at)[:19],
            str(run.finished_at or "")[:19],
            *(
                str(n)
                for n in (
                    run.counts.seen,
                    run.counts.updated,
                    run.counts.skipped,
                    run.counts.failed,
                )
            ),
        )
    Console().print(table)
    return 0


def _checks() -> list[tuple[str, Callable[[], str]]]:
    """(what, check) pairs: each check returns a detail or raises; settings come first."""
    root = functools.cache(root_of)  # each function's root built once for all the checks

    def settings_of(function: str) -> Callable[[], str]:
        return lambda: f"project {root(function).common.project}"

    def erpnext() -> str:
        return f"logged in as {root('sheets_sync').erpnext.logged_user()}"

    def firestore() -> str:
        root("erp_webhook").stores.executions.recent(limit=1)
        return "read sync_executions"

    def topics() -> str:
        from shared.adapters.pubsub import missing_topics
        from shared.core.routing import DEAD_LETTER, TOPICS

        missing = missing_topics(root("erp_webhook").common.project, [*TOPICS, DEAD_LETTER])
        if missing:
            raise ConfigurationError(f"missing topics: {', '.join(missing)}")
        return f"{len(TOPICS) + 1} topics exist"

    def sheet() -> str:
        rows = len(root("sheets_sync").sheet.read_index())
        return f"Invoice Tracker readable, {rows} invoice rows"

    def drive() -> str:
        uploader = root("drive_upload").uploader  # checks the shared drive when one is set
        config = uploader.config
        return f"root folder {config.root_folder} ({config.auth})"

    def telegram() -> str:
        return f"bot @{root('notifier').telegram.me()}"

    def whatsapp() -> str:
        notifier_root = root("notifier")
        config = notifier_root.settings.alerts
        if not config.twilio_account_sid:
            return "not configured (no WhatsApp)"
        assert notifier_root.whatsapp_webhook  # building it refuses an incomplete configuration
        return f"account {config.twilio_account_sid}, webhook {config.whatsapp_public_url}"

    return [
        *((f"{name} settings", settings_of(name)) for name in FUNCTIONS),
        ("ERPNext API token", erpnext),
        ("Firestore", firestore),
        ("Pub/Sub topics", topics),
        ("Sheets: the Invoice Tracker", sheet),
        ("Drive", drive),
        ("Telegram bot token", telegram),
        ("WhatsApp (Twilio) settings", whatsapp),
    ]


def check(*args: str) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bridge connection test")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    failed = 0
    for what, run in _checks():
        try:
            detail, result = run(), "[green]ok[/green]"
        except (BridgeError, ConfigurationError) as exc:
            detail, result = str(exc).splitlines()[0][:200], "[red]FAILED[/red]"
            failed += 1
        table.add_row(what, result, detail)
    Console().print(table)
    return 1 if failed else 0


COMMANDS: dict[str, Callable[..., int]] = {
    "check": check,
    "errors": errors,
    "resolve": _set_status("resolved"),
    "ignore": _set_status("ignored"),
    "reopen": _set_status("pending"),
    "replay": replay,
    "executions": executions,
    "sheet-setup": sheet_setup,
    "reconcile": reconcile,
    "backfill": backfill,
    "telegram-webhook": telegram_webhook,
    "link-code": link_code,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bridge", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("arguments", nargs="*", help="the command's own (see above)")
    args, extra = parser.parse_known_args(argv)
    args.arguments += extra  # flags of the commands themselves (--csv, --current)
    try:
        return COMMANDS[args.command](*args.arguments)
    except ConfigurationError as exc:
        print(f"bridge {args.command}: {exc}", file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(f"bridge {args.command} failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
