"""Which of two `modified` stamps is newer (shared/core/versions.py): newest wins."""

from __future__ import annotations

import pytest

from shared.core.versions import is_stale
from shared.errors import InvalidPayload


@pytest.mark.parametrize(
    ("incoming", "applied", "stale"),
    [
        ("2026-11-23 10:00:00", "2026-11-23 10:00:01", True),
        ("2026-11-23 10:00:00.5", "2026-11-23 10:00:00.400000", False),
        ("2026-11-23 10:00:00", "2026-11-23 10:00:00", False),
        ("2026-11-23 10:00:00", None, False),
        (None, "2026-11-23 10:00:00", False),
    ],
)
def test_is_stale(incoming: str | None, applied: str | None, stale: bool) -> None:
    assert is_stale(incoming, applied) is stale


def test_unparseable_modified_is_invalid_payload() -> None:
    with pytest.raises(InvalidPayload):
        is_stale("yesterday", "2026-11-23 10:00:00")
