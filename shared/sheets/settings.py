"""The Invoice Tracker's settings: which spreadsheet, how its rows look, how writes are batched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from shared.platform.settings import EnvReader
from shared.sheets.rows import DEFAULT_COLUMNS, DeletedPolicy, TrackerConfig, parse_columns


@dataclass(frozen=True, slots=True)
class SheetsSettings:
    spreadsheet_id: str
    tracker: TrackerConfig
    endpoint: str | None = None
    """A local Sheets stand-in's address; unset in the cloud (Google's own endpoint)."""
    timeout_s: float = 30.0
    gather_s: float = 1.0
    """How long a flush waits for more invoices to share its write."""

    @classmethod
    def read(cls, env: EnvReader, *, site_url: str) -> SheetsSettings | None:
        spreadsheet = env.required("SHEETS_SPREADSHEET_ID", "the Invoice Tracker spreadsheet")
        timeout_s = env.number("SHEETS_TIMEOUT_SECONDS", 30.0)
        gather_s = env.number("SHEETS_GATHER_SECONDS", 1.0)
        try:
            tracker = TrackerConfig(
                site_url=site_url,
                columns=parse_columns(env.text("TRACKER_COLUMNS") or ",".join(DEFAULT_COLUMNS)),
                deleted_policy=cast(DeletedPolicy, env.text("TRACKER_DELETED", "remove")),
                overhead_projects=frozenset(env.names("TRACKER_OVERHEAD_PROJECTS")),
            )
        except ValueError as exc:
            env.problem(f"TRACKER_COLUMNS / TRACKER_DELETED: {exc}")
            return None
        return cls(
            spreadsheet_id=spreadsheet,
            tracker=tracker,
            endpoint=env.local_only("SHEETS_ENDPOINT"),
            timeout_s=timeout_s,
            gather_s=gather_s,
        )
