"""Where events go: (doctype, event) -> topics, and which consumer reads which topic, as data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

INVOICES = "erp-invoices"
FILES = "erp-files"
SERVICE_REQUESTS = "erp-service-requests"
DEAD_LETTER = "erp-dead-letter"
TOPICS = (INVOICES, FILES, SERVICE_REQUESTS)

ANY_EVENT = "*"

RouteTable: TypeAlias = Mapping[tuple[str, str], tuple[str, ...]]


def default_routes(
    service_request_doctype: str = "Issue", service_report_doctype: str = "Service Report"
) -> RouteTable:
    """The stock table; the service-request doctype is `Issue` in stock ERPNext, often custom,
    and service reports are a site's own doctype."""
    return {
        ("Sales Invoice", ANY_EVENT): (INVOICES,),
        ("Purchase Invoice", ANY_EVENT): (INVOICES,),
        ("File", "after_insert"): (FILES,),
        ("File", "on_trash"): (FILES,),
        (service_request_doctype, ANY_EVENT): (SERVICE_REQUESTS,),
        (service_report_doctype, ANY_EVENT): (SERVICE_REQUESTS,),
    }


def topics_for(routes: RouteTable, doctype: str, event: str) -> tuple[str, ...]:
    """Topics for one event: an exact (doctype, event) row wins over the doctype's `*` row."""
    exact = routes.get((doctype, event))
    if exact is not None:
        return exact
    return routes.get((doctype, ANY_EVENT), ())


@dataclass(frozen=True, slots=True)
class Subscription:
    """One push subscription: a consumer reading a topic, dead-lettering to DEAD_LETTER."""

    name: str
    topic: str
    consumer: str


CONSUMERS = ("sheets_sync", "drive_upload", "notifier")
OPERATIONS = {
    "sheets_sync": "sync_invoice_row",
    "drive_upload": "upload_attachment",
    "notifier": "send_alerts",
}
"""The operation each consumer performs, as error records name it."""

SUBSCRIPTIONS = (
    Subscription("sheets-sync-invoices", INVOICES, "sheets_sync"),
    Subscription("drive-upload-files", FILES, "drive_upload"),
    Subscription("notifier-invoices", INVOICES, "notifier"),
    Subscription("notifier-service-requests", SERVICE_REQUESTS, "notifier"),
)
DEAD_LETTER_SUBSCRIPTION = Subscription("dead-letter-recorder", DEAD_LETTER, "dead_letter")


def consumer_of(subscription_name: str) -> str | None:
    """The consumer behind a subscription, from its short name or its full resource path."""
    short = subscription_name.rsplit("/", 1)[-1]
    return next((s.consumer for s in SUBSCRIPTIONS if s.name == short), None)


def parse_routes(text: str) -> RouteTable:
    """ROUTES_JSON: `[{"doctype": "Sales Invoice", "event": "*", "topics": ["erp-invoices"]}]`."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from exc
    table: dict[tuple[str, str], tuple[str, ...]] = {}
    if not isinstance(rows, list):
        raise ValueError("must be a list of {doctype, event, topics}")
    for row in rows:
        if not isinstance(row, dict):
            raise ValueError("every route must be an object")
        doctype, event, topics = row.get("doctype"), row.get("event", "*"), row.get("topics")
        if not isinstance(doctype, str) or not isinstance(event, str):
            raise ValueError("every route needs a doctype and an event (or '*')")
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise ValueError(f"route {doctype}/{event}: topics must be a list of names")
        table[(doctype, event)] = tuple(topics)
    return table
