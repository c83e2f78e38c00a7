"""What each consumer would do with an event, in words; the placeholder effect until the real ones land."""

from __future__ import annotations

from collections.abc import Mapping

from shared.core.envelope import Envelope, Json


def _field(doc: Mapping[str, Json], key: str, default: str = "?") -> str:
    value = doc.get(key)
    return default if value in (None, "") else str(value)


def describe_sheet_row(envelope: Envelope) -> str:
    doc = envelope.doc
    if envelope.event == "on_trash":
        return f"remove Invoice Tracker row {envelope.name}"
    amount = f"{_field(doc, 'grand_total')} {_field(doc, 'currency', '')}".strip()
    return (
        f"upsert Invoice Tracker row {envelope.name}: {_field(doc, 'status')}, {amount}, "
        f"project {_field(doc, 'project', '-')}"
    )


def describe_drive_upload(envelope: Envelope) -> str:
    doc = envelope.doc
    if envelope.event == "on_trash":
        return f"trash the Drive copy of {_field(doc, 'file_name', envelope.name)}"
    return (
        f"upload {_field(doc, 'file_name', envelope.name)} attached to "
        f"{_field(doc, 'attached_to_doctype')} {_field(doc, 'attached_to_name')} to Drive"
    )


def describe_alert(envelope: Envelope) -> str:
    doc = envelope.doc
    if envelope.doctype in ("Sales Invoice", "Purchase Invoice"):
        return f"alert admins: {envelope.doctype} {envelope.name} {envelope.event}"
    priority = _field(doc, "priority", "Medium")
    group = "on-call group" if priority.lower() == "emergency" else "service team group"
    return f"alert {group}: {envelope.doctype} {envelope.name} {envelope.event} ({priority})"


PLANS = {
    "sheets_sync": describe_sheet_row,
    "drive_upload": describe_drive_upload,
    "notifier": describe_alert,
}
