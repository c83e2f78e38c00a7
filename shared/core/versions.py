"""Newest wins: compare Frappe `modified` stamps ("2026-11-23 10:00:00.123456", site local time)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from shared.errors import InvalidPayload


def parse_modified(text: str, site_tz: tzinfo = UTC) -> datetime:
    """A Frappe `modified` stamp as an aware datetime in the site's timezone."""
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidPayload(f"modified {text[:40]!r} is not a Frappe timestamp") from exc
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=site_tz)


def is_stale(incoming: str | None, last_applied: str | None) -> bool:
    """True when `incoming` is strictly older than what was applied; unknown versions never are."""
    if incoming is None or last_applied is None:
        return False
    return parse_modified(incoming) < parse_modified(last_applied)
