"""Reading an ERPNext document's fields, wherever the document came from (a webhook's body, a
REST answer, a stored envelope): the one reader of text fields every feature uses."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from urllib.parse import quote

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


def desk_url(site_url: str, doctype: str, name: str) -> str:
    """The document's page in ERPNext's desk: `/app/<doctype slug>/<name>`, the name encoded, so
    `INV 2026/07#3?x` stays one path segment."""
    slug = doctype.lower().replace(" ", "-")
    return f"{site_url.rstrip('/')}/app/{quote(slug, safe='')}/{quote(name, safe='')}"


FILE_URL_PREFIXES = ("/files/", "/private/files/")


def is_site_file(file_url: str) -> bool:
    """Whether a File's `file_url` names a file ERPNext stores (not a link elsewhere)."""
    return file_url.startswith(FILE_URL_PREFIXES)


def is_plain_file_path(file_url: str) -> bool:
    """Whether `file_url` is one of ERPNext's file paths as it stands: under /files/ or
    /private/files/, with no `.` or `..` segment and no empty one, so that no HTTP client or server
    resolves it to another path (`/files/../api/resource/User` is the API)."""
    return is_site_file(file_url) and posixpath.normpath(file_url) == file_url
