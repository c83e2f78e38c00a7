"""Newest wins: compare Frappe `modified` stamps ("2026-11-23 10:00:00.123456", site local time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from shared.errors import InvalidPayload


def parse_modified(text: str, site_tz: tzinfo = UTC) -> datetime:
    """A Frappe `modified` stamp as an aware datetime in the site's timezone."""
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidPayload(f"modified {text[:40]!r} is not a Frappe timestamp") from exc
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=site_tz)


SITE_CLOCK_SPREAD = timedelta(hours=26)
"""`modified` is the site's local time, and sites run from UTC-12 to UTC+14: read as UTC, a stamp
may be up to 14 hours early or 12 hours late."""


def least_age(modified: str, now: datetime) -> timedelta | None:
    """How old a `modified` stamp is at least, in whatever time zone the site runs (None when it
    is not a timestamp). The stamp is signed, unlike the arrival time, so this is how long ago the
    change was made whoever sends its body again."""
    try:
        stamp = parse_modified(modified)
    except InvalidPayload:
        return None
    return now - (stamp + timedelta(hours=12))


def is_stale(incoming: str | None, last_applied: str | None) -> bool:
    """True when `incoming` is strictly older than what was applied; unknown versions never are."""
    if incoming is None or last_applied is None:
        return False
    return parse_modified(incoming) < parse_modified(last_applied)
