"""Reading an ERPNext document's fields, wherever the document came from (a webhook's body, a
REST answer, a stored envelope): the one reader of text fields every feature uses."""

from __future__ import annotations

from collections.abc import Mapping

from shared.core.envelope import Json


def text(value: Json) -> str | None:
    """A field's value as text, trimmed; None when empty, missing or not a single value (a child
    table or a nested object)."""
    if value is None or isinstance(value, dict | list):
        return None
    return str(value).strip() or None


def field_text(doc: Mapping[str, Json], key: str) -> str | None:
    """`doc[key]` as `text` reads it (None when the field is absent)."""
    return text(doc.get(key))
