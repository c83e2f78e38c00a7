"""Error-log filters as people type them, and a CSV export a spreadsheet cannot execute."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shared.errors import InvalidPayload
from shared.operations.error_query import MAX_LIMIT, ErrorFilter, to_csv
from shared.platform.failures import ErrorRecord, ErrorStatus


def test_every_filter_is_read_and_dates_default_to_utc() -> None:
    wanted = ErrorFilter.parse(
        {
            "integration": "notifier",
            "operation": "send_telegram",
            "status": "pending",
            "entity_type": "Issue",
            "since": "2026-12-01",
            "until": "2026-12-02T06:00:00+01:00",
            "limit": "250",
        }
    )
    assert wanted.equalities() == {
        "integration": "notifier",
        "operation": "send_telegram",
        "status": "pending",
        "entity_type": "Issue",
    }
    assert wanted.since == datetime(2026, 12, 1, tzinfo=UTC)
    assert wanted.until is not None and wanted.until.utcoffset() is not None
    assert wanted.limit == 250
    assert ErrorFilter.parse({}).limit == 100


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({"limit": "0"}, "between 1 and"),
        ({"limit": str(MAX_LIMIT + 1)}, "between 1 and"),
        ({"limit": "many"}, "must be a number"),
        ({"status": "lost"}, "status must be one of"),
        ({"since": "yesterday"}, "ISO date"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "since must be before until"),
        ({"colour": "red"}, "unknown filter colour"),
    ],
)
def test_a_bad_filter_is_a_400_that_names_it(args: dict[str, str], says: str) -> None:
    with pytest.raises(InvalidPayload, match=says) as raised:
        ErrorFilter.parse(args)
    assert raised.value.status == 400


def record(**fields: object) -> ErrorRecord:
    """A stored error record; what a test does not name is blank."""
    blank: dict[str, object] = {
        "id": "r1",
        "integration": "sheets_sync",
        "operation": "write_row",
        "entity_type": "Sales Invoice",
        "entity_id": "SINV-1",
        "message": "",
        "status": ErrorStatus.PENDING,
        "attempts": 1,
        "first_seen": None,
        "last_seen": None,
    }
    return ErrorRecord(**{**blank, **fields})  # type: ignore[arg-type]


def test_matches_applies_every_filter_and_the_date_range() -> None:
    wanted = ErrorFilter.parse({"status": "pending", "since": "2026-12-01", "until": "2026-12-02"})
    inside = record(last_seen=datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert wanted.matches(inside)
    assert not wanted.matches(replace(inside, status=ErrorStatus.RESOLVED))
    assert not wanted.matches(replace(inside, last_seen=datetime(2026, 12, 2, tzinfo=UTC)))
    assert not wanted.matches(record())  # no date, a date range asked
    assert not ErrorFilter(integration="notifier").matches(inside)


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "\n"])
def test_a_cell_a_spreadsheet_could_read_as_a_formula_is_exported_as_text(start: str) -> None:
    text = start + 'cmd|" /C calc"!A0'
    (row,) = list(csv.DictReader(io.StringIO(to_csv([record(message=text)]))))
    assert row["message"] == "'" + text


def test_csv_has_every_column_and_no_cell_a_spreadsheet_would_run() -> None:
    records = [
        record(
            message='=HYPERLINK("http://evil.example","x")',
            details="+1 555 0100",
            entity_id="-cmd",
            last_seen=datetime(2026, 12, 1, 9, tzinfo=UTC),
            attempts=3,
        )
    ]
    (row,) = list(csv.DictReader(io.StringIO(to_csv(records))))
    assert row["message"].startswith("'=") and row["details"].startswith("'+")
    assert row["entity_id"] == "'-cmd"
    assert row["last_seen"] == "2026-12-01T09:00:00+00:00" and row["attempts"] == "3"
    assert row["resolved_at"] == ""
