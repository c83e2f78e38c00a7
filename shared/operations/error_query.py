"""What a person asks of the error log: filters, a limit, and the CSV they can take away.

The same filters serve the admin API's query string and the `bridge errors` command.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.errors import InvalidPayload
from shared.platform.failures import ErrorRecord, ErrorStatus

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CSV_COLUMNS = (
    "id",
    "status",
    "integration",
    "operation",
    "entity_type",
    "entity_id",
    "event_id",
    "message",
    "details",
    "attempts",
    "first_seen",
    "last_seen",
    "resolved_at",
)
SETTABLE = (ErrorStatus.RESOLVED.value, ErrorStatus.IGNORED.value, ErrorStatus.PENDING.value)


@dataclass(frozen=True, slots=True)
class ErrorFilter:
    integration: str | None = None
    operation: str | None = None
    status: str | None = None
    entity_type: str | None = None
    since: datetime | None = None
    """Records last seen at or after this time."""
    until: datetime | None = None
    """Records last seen before this time."""
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> ErrorFilter:
        """From a query string; a bad value is a 400 naming it, and nothing is read."""
        unknown = sorted(set(args) - {*_TEXT_FIELDS, "status", "since", "until", "limit"})
        if unknown:
            raise InvalidPayload(f"unknown filter {', '.join(unknown)}")
        status = args.get("status") or None
        if status is not None and status not in {s.value for s in ErrorStatus}:
            raise InvalidPayload(f"status must be one of {', '.join(s.value for s in ErrorStatus)}")
        raw_limit = args.get("limit") or str(DEFAULT_LIMIT)
        try:
            limit = int(raw_limit)
        except ValueError:
            raise InvalidPayload(f"limit must be a number, not {raw_limit!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidPayload(f"limit must be between 1 and {MAX_LIMIT}")
        since, until = _when(args, "since"), _when(args, "until")
        if since and until and since >= until:
            raise InvalidPayload("since must be before until")
        texts = {key: (args.get(key) or None) for key in _TEXT_FIELDS}
        return cls(**texts, status=status, since=since, until=until, limit=limit)

    def equalities(self) -> dict[str, str]:
        """The fields that must equal a value."""
        pairs = {
            "integration": self.integration,
            "operation": self.operation,
            "status": self.status,
            "entity_type": self.entity_type,
        }
        return {key: value for key, value in pairs.items() if value is not None}

    def matches(self, record: ErrorRecord) -> bool:
        fields = record.fields()
        if any(fields[key] != value for key, value in self.equalities().items()):
            return False
        seen = record.last_seen
        if seen is None:
            return self.since is None and self.until is None
        return (self.since is None or seen >= self.since) and (
            self.until is None or seen < self.until
        )


_TEXT_FIELDS = ("integration", "operation", "entity_type")


def _when(args: Mapping[str, str], key: str) -> datetime | None:
    raw = args.get(key)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidPayload(f"{key} must be an ISO date or time, e.g. 2026-12-01") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_csv(records: Iterable[ErrorRecord]) -> str:
    """Spreadsheet-safe CSV: a cell starting with = + - @ is prefixed with ' so no formula runs."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for record in records:
        fields = record.fields()
        writer.writerow([_cell(fields[column]) for column in CSV_COLUMNS])
    return out.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
"""What a spreadsheet may read a cell as a formula by (OWASP's CSV injection list, with LF): such
a cell gets a leading `'`, which the spreadsheet shows as text."""


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text[:1] in FORMULA_STARTS else text
