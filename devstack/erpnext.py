"""A local ERPNext/Frappe site for tests and `make demo`: REST API v1 over in-memory documents, and
webhooks sent byte for byte as Frappe sends them (v15 era and 2026 develop era).

In-process: `with ErpNextStandIn(api_key=..., api_secret=...) as erp: ...`; as a process:
`python -m devstack.erpnext --port 0 --api-key K --api-secret S` prints `ERPNEXT_URL=...`.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import json
import mimetypes
import os
import random
import re
import secrets
import signal
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.message import Message
from email.utils import parseaddr
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from jinja2.sandbox import SandboxedEnvironment

from devstack.httpserver import LoopbackServer, Reply
from shared.ingress.webhook import webhook_template

Doc = dict[str, Any]
Era = Literal["v15", "develop"]
RequestStructure = Literal["json", "form"]
Template = Callable[[Doc], Any]
Condition = Callable[[Doc], bool]

MODIFIED_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
DEFAULT_PAGE_LENGTH = 20
DEFAULT_ORDER_BY = "modified desc"
WEBHOOK_SIGNATURE_HEADER = "X-Frappe-Webhook-Signature"
DEFAULT_WEBHOOK_TIMEOUT_S = 5.0
V15_ATTEMPTS = 3
# PR frappe#38913 (2026 develop): one attempt, then a scheduler resends the stored payload.
DEVELOP_RETRY_DELAYS = (
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
STANDARD_FIELDS = ("name", "owner", "creation", "modified", "modified_by", "docstatus", "idx")

# Stock ERPNext naming series; `.YYYY.` is the year, `#` one digit of the per-prefix counter.
NAMING_SERIES = {
    "Sales Invoice": "ACC-SINV-.YYYY.-.#####",
    "Purchase Invoice": "ACC-PINV-.YYYY.-.#####",
    "Payment Entry": "ACC-PAY-.YYYY.-.#####",
    "Project": "PROJ-.####",
    "Issue": "ISS-.YYYY.-.#####",
}
# Doctypes named after one of their fields (ERPNext's default "By fieldname" settings).
NAME_FROM_FIELD = {
    "Customer": "customer_name",
    "Supplier": "supplier_name",
    "User": "email",
    "Role": "role_name",
    "Issue Priority": "priority",
}
# The child doctype of each child table the stand-in knows (rows carry it as `doctype`, and
# get_list filters such as `["Contact Phone", "phone", "=", x]` join through it).
CHILD_TABLES = {
    ("Contact", "phone_nos"): "Contact Phone",
    ("Contact", "email_ids"): "Contact Email",
    ("Contact", "links"): "Dynamic Link",
    ("User", "roles"): "Has Role",
}
ISSUE_STATUSES = ("Open", "Replied", "On Hold", "Resolved", "Closed")
ISSUE_RESOLVED_STATUSES = ("Resolved", "Closed")
DEFAULT_ISSUE_PRIORITY = "Medium"
# Frappe lets these users stand in an Email field when they are the document's owner.
STANDARD_USERS = ("Administrator", "Guest")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

OPERATORS = frozenset(
    {"=", "!=", ">", ">=", "<", "<=", "in", "not in", "like", "not like", "is", "between"}
)


class FrappeError(Exception):
    """An error answered as Frappe answers it: HTTP status, `exc_type`, `_server_messages`."""

    def __init__(
        self,
        status: int,
        exc_type: str,
        message: str,
        *,
        module: str = "frappe.exceptions",
        server_message: bool = True,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.exc_type = exc_type
        self.message = message
        self.module = module
        self.server_message = server_message
        self.retry_after = retry_after

    def body(self) -> Doc:
        answer: Doc = {
            "exception": f"{self.module}.{self.exc_type}: {self.message}",
            "exc_type": self.exc_type,
        }
        if self.server_message:
            # Frappe's message log: a JSON list of JSON-encoded message dicts (encoded twice).
            message = {"message": self.message, "title": "Message", "indicator": "red"}
            answer["_server_messages"] = json.dumps([json.dumps({**message, "raise_exception": 1})])
        else:
            # An exception Frappe did not throw itself: no message log, a traceback in `exc`.
            trace = (
                f"Traceback (most recent call last):\n{self.module}.{self.exc_type}: {self.message}"
            )
            answer["exc"] = json.dumps([trace])
        return answer


def _not_found(doctype: str, name: str) -> FrappeError:
    return FrappeError(404, "DoesNotExistError", f"{doctype} {name} not found")


def _validation(message: str, exc_type: str = "ValidationError") -> FrappeError:
    return FrappeError(417, exc_type, message)


def as_json(obj: Any, indent: int | None = 1) -> str:
    """`frappe.as_json`: indent 1, sorted keys, separators (",", ": "), Frappe's json_handler.

    Checked against frappe/__init__.py: `as_json(obj, indent=1, separators=None)` with separators
    defaulting to (",", ": "), `sort_keys=True`, `default=json_handler`, and a retry without
    `sort_keys` when sorting raises TypeError (mixed key types). Newer versions add
    `ensure_ascii=True`, the json default, so the bytes are the same.
    """
    try:
        return json.dumps(
            obj, indent=indent, sort_keys=True, default=_json_handler, separators=(",", ": ")
        )
    except TypeError:
        return json.dumps(obj, indent=indent, default=_json_handler, separators=(",", ": "))


def _reply(status: int, payload: Any, headers: Sequence[tuple[str, str]] = ()) -> Reply:
    return Reply.json(status, payload, headers, default=_json_handler)


def _json_handler(obj: Any) -> Any:
    """The subset of frappe.utils.response.json_handler a stand-in document can contain."""
    if isinstance(obj, datetime | date | timedelta):
        return str(obj)
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"Object of type {type(obj)} is not JSON serializable")


# ---------------------------------------------------------------------------------------------
# Queries: filters, ordering and paging as frappe.get_list applies them (MariaDB semantics).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldFilter:
    """One `[field, operator, value]` condition; `doctype` is set for `[doctype, field, op, value]`
    (a child doctype there filters the parents by their child rows)."""

    fieldname: str
    operator: str
    value: Any
    doctype: str | None = None


def _clean_fieldname(raw: str) -> str:
    """`\\`tabSales Invoice\\`.\\`status\\`` -> `status`."""
    text = raw.strip()
    if "." in text:
        text = text.rsplit(".", 1)[1]
    return text.strip("`").strip()


def parse_filters(raw: Any) -> list[FieldFilter]:
    """Frappe's filter forms: a list of `[field, op, value]` / `[doctype, field, op, value]`,
    or a dict of `{field: value}` / `{field: [op, value]}`."""
    if raw in (None, "", [], {}):
        return []
    if isinstance(raw, Mapping):
        parsed = [_filter_from_pair(str(name), condition) for name, condition in raw.items()]
    elif isinstance(raw, list):
        parsed = [_filter_from_row(row) for row in raw]
    else:
        raise _validation(f"Invalid filters: {raw!r}")
    for condition in parsed:
        if str(condition.operator).lower() not in OPERATORS:
            raise _validation(f"Operator must be one of {', '.join(sorted(OPERATORS))}")
    return parsed


def _filter_from_pair(fieldname: str, condition: Any) -> FieldFilter:
    is_pair = isinstance(condition, list | tuple) and len(condition) == 2
    if is_pair and str(condition[0]).lower() in OPERATORS:
        return FieldFilter(_clean_fieldname(fieldname), condition[0], condition[1])
    return FieldFilter(_clean_fieldname(fieldname), "=", condition)


def _filter_from_row(row: Any) -> FieldFilter:
    if isinstance(row, list | tuple) and len(row) in (3, 4):
        fieldname, operator, value = row[-3:]
        doctype = str(row[0]) if len(row) == 4 else None
        return FieldFilter(_clean_fieldname(str(fieldname)), operator, value, doctype)
    raise _validation(f"Invalid filter: {row!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparable(actual: Any, expected: Any) -> tuple[Any, Any]:
    """Coerce a pair as MariaDB would: numbers numerically, text case-insensitively, NULL as ''."""
    if isinstance(actual, bool):
        actual = int(actual)
    if isinstance(expected, bool):
        expected = int(expected)
    if _is_number(expected) or _is_number(actual):
        try:
            return float(actual or 0), float(expected or 0)
        except (TypeError, ValueError):
            pass
    return str("" if actual is None else actual).casefold(), str(
        "" if expected is None else expected
    ).casefold()


def _like(actual: Any, pattern: Any) -> bool:
    regex = "".join(
        ".*" if char == "%" else "." if char == "_" else re.escape(char) for char in str(pattern)
    )
    return (
        re.fullmatch(regex, str("" if actual is None else actual), re.IGNORECASE | re.DOTALL)
        is not None
    )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    return list(value or [])


def matches(doc: Mapping[str, Any], condition: FieldFilter) -> bool:
    """True when `doc` satisfies one filter."""
    actual = doc.get(condition.fieldname)
    operator = str(condition.operator).lower()
    expected = condition.value
    if operator == "is":
        is_set = actual not in (None, "")
        return is_set if str(expected).lower() == "set" else not is_set
    if operator in ("in", "not in"):
        found = any(
            left == right
            for left, right in (_comparable(actual, item) for item in _as_list(expected))
        )
        return found if operator == "in" else not found
    if operator in ("like", "not like"):
        return _like(actual, expected) == (operator == "like")
    if operator == "between":
        low, high = _as_list(expected)[:2]
        left, low_value = _comparable(actual, low)
        left, high_value = _comparable(actual, high)
        return bool(low_value <= left <= high_value)
    left, right = _comparable(actual, expected)
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }
    return comparisons[operator](left, right)


def matches_document(doc: Mapping[str, Any], doctype: str, filters: Sequence[FieldFilter]) -> bool:
    """True when `doc` satisfies every filter: conditions on its own columns, and per child doctype
    one child row satisfying all of that doctype's conditions (get_list joins each child table
    once, so conditions on one child doctype hold on the same row)."""
    by_child: dict[str, list[FieldFilter]] = {}
    for condition in filters:
        if condition.doctype in (None, doctype):
            if not matches(doc, condition):
                return False
        else:
            by_child.setdefault(str(condition.doctype), []).append(condition)
    return all(
        any(all(matches(row, c) for c in conditions) for row in _child_rows(doc, child))
        for child, conditions in by_child.items()
    )


def _child_rows(doc: Mapping[str, Any], child_doctype: str) -> list[Mapping[str, Any]]:
    return [
        row
        for value in doc.values()
        if isinstance(value, list)
        for row in value
        if isinstance(row, Mapping) and row.get("doctype") == child_doctype
    ]


def _sort_key(value: Any) -> tuple[int, Any]:
    # MariaDB sorts NULL first in ascending order; numbers before text keeps keys comparable.
    if value is None:
        return (0, "")
    if _is_number(value) or isinstance(value, bool):
        return (1, float(value))
    return (2, str(value).casefold())


def order_docs(docs: list[Doc], order_by: str) -> list[Doc]:
    """Sort by `field [asc|desc], ...` (stable, last key applied first)."""
    ordered = list(docs)
    clauses = [part.split() for part in order_by.split(",") if part.strip()]
    for clause in reversed(clauses):
        fieldname = _clean_fieldname(clause[0])
        descending = len(clause) > 1 and clause[1].lower() == "desc"
        ordered.sort(key=lambda doc: _sort_key(doc.get(fieldname)), reverse=descending)
    return ordered


def select_fields(doc: Doc, fields: Sequence[str]) -> Doc:
    """One row of a list answer; `*` is every column of the main table (no child tables)."""
    if "*" in fields:
        return {key: value for key, value in doc.items() if not isinstance(value, list)}
    return {_clean_fieldname(name): doc.get(_clean_fieldname(name)) for name in fields}


# ---------------------------------------------------------------------------------------------
# The document store.
# ---------------------------------------------------------------------------------------------


class DocumentStore:
    """Documents per doctype, names, and one site-wide strictly increasing `modified` clock."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.lock = threading.RLock()
        self._clock = clock
        self._docs: dict[str, dict[str, Doc]] = {}
        self._series: Counter[str] = Counter()
        self._last_stamp: datetime | None = None

    def now(self) -> datetime:
        stamp = self._clock()
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)

    def tick(self) -> str:
        """The next `modified` stamp: the clock, or 1 µs after the last stamp if not later."""
        with self.lock:
            stamp = self.now().astimezone(UTC)
            if self._last_stamp is not None and stamp <= self._last_stamp:
                stamp = self._last_stamp + timedelta(microseconds=1)
            self._last_stamp = stamp
            return stamp.replace(tzinfo=None).strftime(MODIFIED_FORMAT)

    def new_name(self, doctype: str, doc: Mapping[str, Any]) -> str:
        series = NAMING_SERIES.get(doctype)
        if series is not None:
            prefix, _, hashes = series.rpartition(".")
            prefix = prefix.replace(".YYYY.", str(self.now().year)).replace(".", "")
            self._series[prefix] += 1
            return f"{prefix}{self._series[prefix]:0{len(hashes)}d}"
        source_field = NAME_FROM_FIELD.get(doctype)
        if source_field and doc.get(source_field):
            return str(doc[source_field])
        if doctype == "Contact" and _contact_full_name(doc):
            return self._contact_name(doc)
        return secrets.token_hex(5)  # Frappe's "hash" autoname: 10 hex characters

    def _contact_name(self, doc: Mapping[str, Any]) -> str:
        """Contact.autoname: the full name, `-` the first link's name, then `-1`, `-2`... if taken."""
        base = _contact_full_name(doc)
        links = doc.get("links") or []
        if links and isinstance(links[0], Mapping) and links[0].get("link_name"):
            base = f"{base}-{str(links[0]['link_name']).strip()}"
        name, number = base, 0
        while name in self.table("Contact"):
            number += 1
            name = f"{base}-{number}"
        return name

    def table(self, doctype: str) -> dict[str, Doc]:
        return self._docs.setdefault(doctype, {})

    def get(self, doctype: str, name: str) -> Doc:
        """The stored document itself (callers hold `lock` and copy before handing it out)."""
        stored = self._docs.get(doctype, {}).get(name)
        if stored is None:
            raise _not_found(doctype, name)
        return stored

    def create(self, doctype: str, values: Mapping[str, Any], user: str) -> Doc:
        with self.lock:
            fields = {k: copy.deepcopy(v) for k, v in values.items() if k != "doctype"}
            name = str(fields.pop("name", None) or self.new_name(doctype, fields))
            if name in self.table(doctype):
                raise FrappeError(409, "DuplicateEntryError", f"{doctype} {name} already exists")
            stamp = self.tick()
            doc: Doc = {
                "name": name,
                "owner": user,
                "creation": stamp,
                "modified": stamp,
                "modified_by": user,
                "docstatus": int(fields.pop("docstatus", 0) or 0),
                "idx": 0,
            }
            for key in ("owner", "creation", "modified", "modified_by", "idx"):
                fields.pop(key, None)
            doc.update(fields)
            doc["doctype"] = doctype
            _validate_document(doctype, doc, None, self.now(), user)
            _set_invoice_status(doctype, doc)
            _name_child_rows(doc)
            self.table(doctype)[name] = doc
            return doc

    def remove(self, doctype: str, name: str) -> None:
        with self.lock:
            self.get(doctype, name)
            del self._docs[doctype][name]

    def all(self, doctype: str) -> list[Doc]:
        with self.lock:
            return [copy.deepcopy(doc) for doc in self._docs.get(doctype, {}).values()]


INVOICE_DOCTYPES = ("Sales Invoice", "Purchase Invoice")


def _set_invoice_status(doctype: str, doc: Doc) -> None:
    """What an invoice's `set_status` does on save (erpnext/controllers/status_updater.py),
    without returns and due dates: Draft, Unpaid, Partly Paid, Paid, Cancelled."""
    if doctype not in INVOICE_DOCTYPES:
        return
    total = float(doc.get("grand_total") or 0)
    if doc.get("outstanding_amount") is None or doc["docstatus"] == 0:
        # A draft owes its whole total: calculate_outstanding_amount runs on every validate.
        doc["outstanding_amount"] = total
    outstanding = float(doc["outstanding_amount"])
    if doc["docstatus"] == 0:
        doc["status"] = "Draft"
    elif doc["docstatus"] == 2:
        doc["status"] = "Cancelled"
    elif outstanding <= 0:
        doc["status"] = "Paid"
    elif outstanding < total:
        doc["status"] = "Partly Paid"
    else:
        doc["status"] = "Unpaid"


def _name_child_rows(doc: Doc) -> None:
    """Give child-table rows the parent columns Frappe stores with them (and, for the child
    tables the stand-in knows, their doctype)."""
    for fieldname, value in doc.items():
        if isinstance(value, list) and all(isinstance(row, dict) for row in value):
            child_doctype = CHILD_TABLES.get((doc["doctype"], fieldname))
            for index, row in enumerate(value, start=1):
                row.setdefault("name", secrets.token_hex(5))
                if child_doctype is not None:
                    row.setdefault("doctype", child_doctype)
                row.update(
                    parent=doc["name"], parentfield=fieldname, parenttype=doc["doctype"], idx=index
                )
                row.setdefault("docstatus", doc.get("docstatus", 0))


def _validate_document(
    doctype: str, doc: Doc, before: Mapping[str, Any] | None, now: datetime, user: str
) -> None:
    """The parts of a doctype's `validate` the stand-in plays (insert: `before` is None)."""
    if doctype == "Issue":
        _validate_issue(doc, before, now, user)
    elif doctype == "Contact":
        _validate_contact(doc)


def _validate_issue(doc: Doc, before: Mapping[str, Any] | None, now: datetime, user: str) -> None:
    """Issue: defaults (status Open, priority Medium, opening date and time now), raised_by
    (the session user when empty, else an email address), and resolution_date set when the
    status becomes Resolved or Closed, cleared when it goes back to Open."""
    local = now.astimezone(UTC).replace(tzinfo=None)
    if before is None:
        doc["status"] = doc.get("status") or ISSUE_STATUSES[0]
        doc["priority"] = doc.get("priority") or DEFAULT_ISSUE_PRIORITY
        doc["opening_date"] = doc.get("opening_date") or local.date().isoformat()
        doc["opening_time"] = doc.get("opening_time") or local.strftime("%H:%M:%S.%f")
        doc.setdefault("resolution_date", None)
    status = doc.get("status")
    if status not in ISSUE_STATUSES:
        options = ", ".join(f'"{option}"' for option in ISSUE_STATUSES)
        raise _validation(f'Status cannot be "{status}". It should be one of {options}')
    if not doc.get("raised_by"):
        doc["raised_by"] = user
    raised_by = str(doc["raised_by"])
    standard_owner = raised_by == doc.get("owner") and raised_by in STANDARD_USERS
    if not standard_owner and not _EMAIL.match(parseaddr(raised_by)[1] or raised_by):
        raise _validation(f"{raised_by} is not a valid Email Address", "InvalidEmailAddressError")
    previous = before.get("status") if before is not None else None
    if status in ISSUE_RESOLVED_STATUSES and previous not in ISSUE_RESOLVED_STATUSES:
        doc["resolution_date"] = local.strftime(MODIFIED_FORMAT)
    elif status == "Open" and previous not in (None, "Open"):
        doc["resolution_date"] = None


def _contact_full_name(doc: Mapping[str, Any]) -> str:
    parts = (doc.get(key) for key in ("first_name", "middle_name", "last_name"))
    return " ".join(str(part).strip() for part in parts if part) or str(
        doc.get("company_name") or ""
    )


def _validate_contact(doc: Doc) -> None:
    """Contact.validate: full_name, and email_id, mobile_no and phone taken from the child row
    flagged primary (empty when none is: a number set only on the field does not stay)."""
    doc["full_name"] = _contact_full_name(doc)
    primaries = (
        ("email_id", "email_ids", "email_id", "is_primary", "Email ID"),
        ("mobile_no", "phone_nos", "phone", "is_primary_mobile_no", "Mobile No"),
        ("phone", "phone_nos", "phone", "is_primary_phone", "Phone"),
    )
    for fieldname, table, column, flag, label in primaries:
        flagged = [row.get(column) for row in doc.get(table) or [] if row.get(flag)]
        if len(flagged) > 1:
            raise _validation(f"Only one {label} can be set as primary.")
        doc[fieldname] = str(flagged[0]).strip() if flagged else ""


# ---------------------------------------------------------------------------------------------
# Webhooks and their delivery.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """One Webhook doc: doctype + event -> url. `fields=None` sends the whole document (a stand-in
    convenience: a real Webhook with neither data rows nor a JSON template sends `{}`, as
    `fields=[]` does here)."""

    id: int
    doctype: str
    event: str
    url: str
    secret: str | None = field(default=None, repr=False)
    era: Era = "v15"
    request_structure: RequestStructure = "json"
    fields: tuple[str, ...] | None = None
    template: Template | None = None
    condition: Condition | None = None
    timeout: float = DEFAULT_WEBHOOK_TIMEOUT_S
    webhook_json: str | None = None

    def data_for(self, doc: Doc) -> Any:
        if self.webhook_json is not None:
            return render_webhook_json(self.webhook_json, doc)
        if self.template is not None:
            return self.template(copy.deepcopy(doc))
        if self.fields is None:
            return copy.deepcopy(doc)
        return {fieldname: copy.deepcopy(doc.get(fieldname)) for fieldname in self.fields}

    def fires_on(self, event: str) -> bool:
        # v15's run_webhooks lists `before_update_after_submit`, so an `on_update_after_submit`
        # webhook never fires there; the 2026 develop branch fixed it.
        if self.era == "v15" and event == "on_update_after_submit":
            return False
        return self.event == event


@dataclass(frozen=True)
class DeliveryAttempt:
    """One HTTP request of a delivery: the status code, or the exception's class name."""

    number: int
    at: datetime
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        # Frappe calls `raise_for_status()`: only 4xx/5xx count as failures (3xx are followed).
        return self.status_code is not None and self.status_code < 400


DeliveryState = Literal["queued", "delivered", "dropped", "failed", "exhausted", "not_sent"]


@dataclass
class Delivery:
    """Every webhook sent: the exact body and headers, each attempt, and where it stands.

    States: queued; delivered; dropped (v15, after 3 failed attempts); failed (develop, waiting
    for `next_retry`); exhausted (develop, after the 6 retries); not_sent (v15 could not sign it).
    """

    id: int
    webhook_id: int
    era: Era
    doctype: str
    docname: str
    event: str
    url: str
    body: bytes
    headers: dict[str, str]
    timeout: float
    state: DeliveryState = "queued"
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    retries_done: int = 0
    next_retry: datetime | None = None
    redelivery_of: int | None = None

    @classmethod
    def for_webhook(cls, webhook: Webhook, event: str, doc: Doc) -> Delivery:
        return cls(
            id=0,
            webhook_id=webhook.id,
            era=webhook.era,
            doctype=doc["doctype"],
            docname=doc["name"],
            event=event,
            url=webhook.url,
            body=b"",
            headers={},
            timeout=webhook.timeout,
        )

    @property
    def status_codes(self) -> list[int | None]:
        return [attempt.status_code for attempt in self.attempts]


class _TemplateDoc:
    """The `doc` a Webhook's JSON template sees: a Document, its fields as attributes."""

    def __init__(self, doc: Doc) -> None:
        self.fields = doc

    def __getattr__(self, name: str) -> Any:
        return self.fields.get(name)


def _json_filter(value: Any) -> str:
    """Frappe's `json` filter is `frappe.as_json`; a Document becomes `as_dict(no_nulls=True)`."""
    if isinstance(value, _TemplateDoc):
        value = {key: item for key, item in value.fields.items() if item is not None}
    return as_json(value)


_TEMPLATES = SandboxedEnvironment()
_TEMPLATES.filters["json"] = _json_filter


def render_webhook_json(template: str, doc: Doc) -> Any:
    """What Frappe sends for a Webhook with a JSON template: the template rendered by its Jinja
    environment (sandboxed, with Frappe's `json` filter, `doc` in the context), then parsed. A
    result that is not JSON raises, as in Frappe (where the delivery is then never sent)."""
    return json.loads(_TEMPLATES.from_string(template).render(doc=_TemplateDoc(doc)))


def sign_body(secret: str, body: bytes) -> str:
    """X-Frappe-Webhook-Signature: the base64 of an HMAC-SHA256 over the bytes, keyed by the secret."""
    digest = hmac.new(secret.encode("utf8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def build_request(webhook: Webhook, doc: Doc) -> tuple[bytes, dict[str, str]]:
    """Body bytes and headers exactly as Frappe builds them for this webhook and document.

    v15 (frappe/integrations/doctype/webhook/webhook.py): body `json.dumps(data, default=str)`;
    the signature is computed over `json.dumps(data)` (no default), the same bytes for JSON
    data; a value json cannot encode makes signing raise and the event is never sent.
    develop: body and signature over `frappe.as_json(data)`.
    Headers: the signature first, then the Content-Type row the Webhook form adds for the
    request structure ("Form URL-Encoded" -> application/x-www-form-urlencoded; the body stays JSON).
    """
    data = webhook.data_for(doc)
    headers: dict[str, str] = {}
    if webhook.era == "v15":
        body = json.dumps(data, default=str).encode()
        signed = json.dumps(data).encode() if webhook.secret else body
    else:
        body = as_json(data).encode()
        signed = body
    if webhook.secret:
        headers[WEBHOOK_SIGNATURE_HEADER] = sign_body(webhook.secret, signed)
    headers["Content-Type"] = (
        "application/x-www-form-urlencoded"
        if webhook.request_structure == "form"
        else "application/json"
    )
    return body, headers


class WebhookSender:
    """Sends deliveries from background workers, with each era's retry rules, and logs them."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None],
        workers: int,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="erp-webhook")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._log: list[Delivery] = []
        self._closed = False

    # -- log ----------------------------------------------------------------------------------
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._log)

    def get(self, delivery_id: int) -> Delivery:
        with self._lock:
            for delivery in self._log:
                if delivery.id == delivery_id:
                    return delivery
        raise KeyError(f"no delivery {delivery_id}")

    def _record(self, delivery: Delivery) -> Delivery:
        with self._lock:
            delivery.id = len(self._log) + 1
            self._log.append(delivery)
        return delivery

    # -- sending ------------------------------------------------------------------------------
    def enqueue(self, webhook: Webhook, event: str, doc: Doc) -> Delivery:
        base = Delivery.for_webhook(webhook, event, doc)
        try:
            body, headers = build_request(webhook, doc)
        except TypeError as exc:
            # v15 signs json.dumps(data) without default=str: such an event is logged, never sent.
            base.state = "not_sent"
            base.attempts.append(DeliveryAttempt(0, self._now(), None, type(exc).__name__))
            return self._record(base)
        delivery = replace(base, body=body, headers=headers)
        self._record(delivery)
        job = self._run_v15 if webhook.era == "v15" else self._run_develop
        self._submit(job, delivery)
        return delivery

    def redeliver(self, delivery_id: int) -> Delivery:
        """Send a logged delivery again, byte for byte, once (a duplicate or a late delivery)."""
        original = self.get(delivery_id)
        again = replace(
            original,
            headers=dict(original.headers),
            state="queued",
            attempts=[],
            retries_done=0,
            next_retry=None,
            redelivery_of=original.id,
        )
        self._record(again)
        self._submit(self._run_once, again)
        return again

    def _submit(self, job: Callable[[Delivery], None], delivery: Delivery) -> None:
        with self._lock:
            if self._closed:
                return
            self._pending += 1

        def run() -> None:
            try:
                job(delivery)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._idle.notify_all()

        self._executor.submit(run)

    def wait(self, timeout: float) -> bool:
        with self._lock:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def _now(self) -> datetime:
        stamp = self._clock()
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)

    def _attempt(self, delivery: Delivery) -> DeliveryAttempt:
        number = len(delivery.attempts) + 1
        try:
            response = requests.request(
                "POST",
                delivery.url,
                data=delivery.body,
                headers=delivery.headers,
                timeout=delivery.timeout,
            )
            attempt = DeliveryAttempt(number, self._now(), response.status_code, None)
            response.close()
        except requests.RequestException as exc:
            attempt = DeliveryAttempt(number, self._now(), None, type(exc).__name__)
        with self._lock:
            delivery.attempts.append(attempt)
        return attempt

    def _run_v15(self, delivery: Delivery) -> None:
        """v15 `enqueue_webhook`: 3 tries in one job; after a 4xx/5xx or connection error it
        sleeps `3 * i + 1` s (1, 4, and 7 even after the last try); a read timeout retries at once."""
        for try_index in range(V15_ATTEMPTS):
            attempt = self._attempt(delivery)
            if attempt.ok:
                delivery.state = "delivered"
                return
            if attempt.error == "ReadTimeout":
                continue
            self._sleep(3 * try_index + 1)
            if self._closed:
                break  # the site stopped while this job slept: the worker is gone
        delivery.state = "dropped"

    def _run_develop(self, delivery: Delivery) -> None:
        self._settle_develop(delivery, self._attempt(delivery), self._now())

    def _run_once(self, delivery: Delivery) -> None:
        delivery.state = "delivered" if self._attempt(delivery).ok else "dropped"

    def _settle_develop(self, delivery: Delivery, attempt: DeliveryAttempt, now: datetime) -> None:
        if attempt.ok:
            delivery.state, delivery.next_retry = "delivered", None
        elif delivery.retries_done >= len(DEVELOP_RETRY_DELAYS):
            delivery.state, delivery.next_retry = "exhausted", None
        else:
            delivery.state = "failed"
            delivery.next_retry = now + DEVELOP_RETRY_DELAYS[delivery.retries_done]

    def run_due_retries(self, now: datetime | None, *, ignore_schedule: bool) -> list[Delivery]:
        """The develop-era scheduler tick: resend every failed delivery that is due, in order."""
        moment = now or self._now()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        due = [
            delivery
            for delivery in self.deliveries()
            if delivery.state == "failed"
            and delivery.next_retry is not None
            and (ignore_schedule or delivery.next_retry <= moment)
        ]
        for delivery in due:
            delivery.retries_done += 1
            self._settle_develop(delivery, self._attempt(delivery), moment)
        return due

    def refuse_new_work(self) -> None:
        """Stop taking jobs; a job between attempts gives up after its sleep."""
        with self._lock:
            self._closed = True

    def close(self) -> None:
        self.refuse_new_work()
        self._executor.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# Faults and request counts.
# ---------------------------------------------------------------------------------------------

_FAULT_EXC_TYPES = {429: "TooManyRequestsError", 503: "SessionStopped"}


@dataclass
class _Fault:
    status: int
    path_prefix: str
    retry_after: int | None


class FaultInjector:
    """Makes the next requests fail: `fail_next(2, status=503)`; `clear()` forgets pending faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._rate = 0.0
        self._statuses: tuple[int, ...] = (500,)
        self._random = random.Random(0)
        self.injected = 0
        """Requests failed by the random share (`set_rate`)."""

    def set_rate(
        self, rate: float, *, statuses: tuple[int, ...] = (429, 500, 503), seed: int = 0
    ) -> None:
        """Besides the queued faults, fail this share of requests with one of `statuses`."""
        with self._lock:
            self._rate, self._statuses, self._random = rate, statuses, random.Random(seed)

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        path_prefix: str = "/",
        retry_after: int | None = None,
    ) -> None:
        with self._lock:
            self._faults.extend(_Fault(status, path_prefix, retry_after) for _ in range(count))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> FrappeError | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if path.startswith(fault.path_prefix):
                    del self._faults[index]
                    exc_type = _FAULT_EXC_TYPES.get(fault.status, "InternalServerError")
                    return FrappeError(
                        fault.status, exc_type, "injected fault", retry_after=fault.retry_after
                    )
            if self._rate and self._random.random() < self._rate:
                status = self._random.choice(self._statuses)
                exc_type = _FAULT_EXC_TYPES.get(status, "InternalServerError")
                self.injected += 1
                return FrappeError(status, exc_type, "injected fault")
        return None


_FORBIDDEN_HTML = (
    b"<!doctype html>\n<html lang=en>\n<title>403 Forbidden</title>\n<h1>Forbidden</h1>\n"
    b"<p>You don't have permission to access this file</p>\n"
)

# ---------------------------------------------------------------------------------------------
# The site.
# ---------------------------------------------------------------------------------------------


class ErpNextStandIn(LoopbackServer):
    """An ERPNext site on 127.0.0.1 (port chosen by the OS) with webhooks and lifecycle helpers.

    Document events fired (checked in frappe/model/document.py and webhook/__init__.py):
    insert -> after_insert, on_update (on_change runs too, but webhooks skip it while inserting);
    save -> on_update, on_change; submit -> on_update, on_submit, on_change;
    cancel -> on_cancel, on_change; update after submit -> on_update_after_submit (never reaches
    a v15-era webhook), on_change; delete -> on_trash (the document before deletion);
    db_set -> on_change only; frappe.db.set_value, Data Import, patches -> nothing.
    Frappe sends each webhook at most once per document per transaction, with the document as
    it stood at commit; the helpers here are one transaction each.
    """

    def __init__(
        self,
        *,
        api_key: str = "stand-in-key",
        api_secret: str = "stand-in-secret",  # noqa: S107 (a local stand-in's default credential)
        user: str = "Administrator",
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        delivery_workers: int = 1,
    ) -> None:
        super().__init__(port=port)
        self.api_key = api_key
        self._api_secret = api_secret
        self.user = user
        self._clock = clock or (lambda: datetime.now(UTC))
        self.store = DocumentStore(self._clock)
        self.sender = WebhookSender(
            self._clock, sleep or self._interruptible_sleep, delivery_workers
        )
        self.faults = FaultInjector()
        self._webhooks: list[Webhook] = []
        self._files: dict[str, bytes] = {}
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._api_users: dict[str, tuple[str, str]] = {}
        self._can_read: dict[str, Callable[[str, str], bool]] = {}

    def __repr__(self) -> str:
        return f"ErpNextStandIn(url={self.url if self._server else None!r}, user={self.user!r})"

    # -- lifecycle of the server --------------------------------------------------------------
    name = "erpnext-stand-in"

    def stop(self) -> None:
        """Stop serving, cancel queued deliveries and join every thread we started."""
        self.sender.refuse_new_work()
        super().stop()
        self.sender.close()

    def _interruptible_sleep(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    @property
    def auth_header(self) -> dict[str, str]:
        """The header an API client sends (contains the secret: never log it)."""
        return {"Authorization": f"token {self.api_key}:{self._api_secret}"}

    # -- webhooks -----------------------------------------------------------------------------
    def add_webhook(
        self,
        doctype: str,
        event: str,
        url: str,
        secret: str | None = None,
        *,
        era: Era = "v15",
        request_structure: RequestStructure = "json",
        fields: Sequence[str] | None = None,
        template: Template | None = None,
        condition: Condition | None = None,
        timeout: float = DEFAULT_WEBHOOK_TIMEOUT_S,
        webhook_json: str | None = None,
    ) -> Webhook:
        """Configure a Webhook. `webhook_json` is a Jinja JSON template as Frappe renders it;
        `template(doc)` replaces the data with a Python function's result instead.

        As Frappe's `Webhook.validate`, a JSON template that does not render to JSON for a new
        document of the doctype is refused (ValueError)."""
        if webhook_json is not None:
            try:
                render_webhook_json(webhook_json, {"doctype": doctype})
            except Exception as exc:
                raise ValueError(f"the Webhook's JSON template is not valid: {exc}") from exc
        webhook = Webhook(
            len(self._webhooks) + 1,
            doctype,
            event,
            url,
            secret,
            era,
            request_structure,
            None if fields is None else tuple(fields),
            template,
            condition,
            timeout,
            webhook_json,
        )
        self._webhooks.append(webhook)
        return webhook

    def add_bridge_webhook(
        self, doctype: str, event: str, url: str, secret: str | None, **options: Any
    ) -> Webhook:
        """A Webhook as the bridge's install guide configures it: its JSON template writes the
        event into the signed body (shared/ingress/webhook.py `webhook_template`)."""
        return self.add_webhook(
            doctype, event, url, secret, webhook_json=webhook_template(event), **options
        )

    def remove_webhooks(self) -> None:
        self._webhooks.clear()

    def remove_webhook(self, webhook: Webhook) -> None:
        self._webhooks.remove(webhook)

    def _fire(self, doc: Doc, events: Sequence[str]) -> list[Delivery]:
        """After the change is committed: one delivery per matching webhook (Frappe dedupes on
        webhook + document per transaction)."""
        sent: list[Delivery] = []
        for webhook in list(self._webhooks):
            if webhook.doctype != doc["doctype"]:
                continue
            event = next((event for event in events if webhook.fires_on(event)), None)
            if event is None or (webhook.condition is not None and not webhook.condition(doc)):
                continue
            sent.append(self.sender.enqueue(webhook, event, doc))
        return sent

    def deliveries(self, *, event: str | None = None, docname: str | None = None) -> list[Delivery]:
        """The delivery log, oldest first, optionally for one event or document."""
        return [
            delivery
            for delivery in self.sender.deliveries()
            if (event is None or delivery.event == event)
            and (docname is None or delivery.docname == docname)
        ]

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Block until every background send has finished; False on timeout."""
        return self.sender.wait(timeout)

    def redeliver(self, delivery_id: int) -> Delivery:
        return self.sender.redeliver(delivery_id)

    def run_due_retries(self, now: datetime | None = None) -> list[Delivery]:
        """Develop era: resend (in this thread) every failed delivery whose next retry is due."""
        return self.sender.run_due_retries(now, ignore_schedule=False)

    def retry_failed_now(self) -> list[Delivery]:
        """Develop era: take one retry step for every failed delivery, whatever its schedule."""
        return self.sender.run_due_retries(None, ignore_schedule=True)

    # -- document lifecycle (each helper is one committed transaction) -----------------------
    def insert(self, doctype: str, doc: Mapping[str, Any], *, user: str | None = None) -> Doc:
        """Insert; fires after_insert, on_update (and on_submit when inserted with docstatus 1)."""
        with self.store.lock:
            stored = self.store.create(doctype, doc, user or self.user)
            snapshot = copy.deepcopy(stored)
        events = ["after_insert", "on_update"]
        if snapshot["docstatus"] == 1:
            events.append("on_submit")
        self._fire(snapshot, events)
        return snapshot

    def save(
        self,
        doctype: str,
        name: str,
        changes: Mapping[str, Any] | None = None,
        *,
        user: str | None = None,
        expected_modified: str | None = None,
    ) -> Doc:
        """Save a draft (on_update, on_change), or the transition `changes["docstatus"]` asks for."""
        with self.store.lock:
            current = self.store.get(doctype, name)["docstatus"]
        target = int((changes or {}).get("docstatus", current) or 0)
        return self._save_as(
            doctype, name, changes, target=target, user=user, expected_modified=expected_modified
        )

    def submit(
        self,
        doctype: str,
        name: str,
        changes: Mapping[str, Any] | None = None,
        *,
        user: str | None = None,
    ) -> Doc:
        """docstatus 0 -> 1; fires on_update, on_submit, on_change."""
        return self._save_as(doctype, name, changes, target=1, user=user)

    def cancel(self, doctype: str, name: str, *, user: str | None = None) -> Doc:
        """docstatus 1 -> 2 (status Cancelled where the doctype has one); fires on_cancel, on_change."""
        return self._save_as(doctype, name, None, target=2, user=user)

    def update_after_submit(
        self, doctype: str, name: str, changes: Mapping[str, Any], *, user: str | None = None
    ) -> Doc:
        """Edit an allow-on-submit field of a submitted doc; on_update_after_submit, on_change."""
        if self.get(doctype, name)["docstatus"] != 1:
            raise _validation(f"{doctype} {name} is not submitted")
        return self._save_as(doctype, name, changes, target=1, user=user)

    def _save_as(
        self,
        doctype: str,
        name: str,
        changes: Mapping[str, Any] | None,
        *,
        target: int,
        user: str | None,
        expected_modified: str | None = None,
    ) -> Doc:
        with self.store.lock:
            doc = self.store.get(doctype, name)
            if expected_modified is not None and str(expected_modified) != doc["modified"]:
                raise _validation(
                    "Error: Document has been modified after you have opened it "
                    f"({doc['modified']}, {expected_modified}). "
                    "Please refresh to get the latest document.",
                    "TimestampMismatchError",
                )
            events = _transition_events(int(doc["docstatus"]), target)
            changed = copy.deepcopy(doc)
            for key, value in (changes or {}).items():
                if key not in ("name", "doctype", "owner", "creation", "modified", "modified_by"):
                    changed[key] = copy.deepcopy(value)
            changed["docstatus"] = target
            if "on_cancel" in events and "status" in changed:
                changed["status"] = "Cancelled"
            _validate_document(doctype, changed, doc, self.store.now(), user or self.user)
            doc.clear()
            doc.update(changed)
            _set_invoice_status(doctype, doc)
            doc["modified"] = self.store.tick()
            doc["modified_by"] = user or self.user
            _name_child_rows(doc)
            snapshot = copy.deepcopy(doc)
        self._fire(snapshot, events)
        return snapshot

    def delete(self, doctype: str, name: str) -> Doc:
        """Delete; fires on_trash with the document as it was. Submitted documents refuse."""
        with self.store.lock:
            doc = self.store.get(doctype, name)
            if doc["docstatus"] == 1:
                raise _validation(
                    f"{doctype} {name}: Submitted Record cannot be deleted. "
                    "You must Cancel it first."
                )
            snapshot = copy.deepcopy(doc)
            self.store.remove(doctype, name)
            if doctype == "File" and not self._url_still_used(snapshot.get("file_url")):
                self._files.pop(str(snapshot.get("file_url")), None)
        self._fire(snapshot, ["on_trash"])
        return snapshot

    def db_set(
        self,
        doctype: str,
        name: str,
        fieldname: str | Mapping[str, Any],
        value: Any = None,
        *,
        update_modified: bool = True,
        user: str | None = None,
    ) -> Doc:
        """`doc.db_set`: how ERPNext records payments and status changes; fires on_change only."""
        snapshot = self._set_values(
            doctype, name, fieldname, value, update_modified=update_modified, user=user
        )
        self._fire(snapshot, ["on_change"])
        return snapshot

    def set_value_silently(
        self,
        doctype: str,
        name: str,
        fieldname: str | Mapping[str, Any],
        value: Any = None,
        *,
        update_modified: bool = True,
    ) -> Doc:
        """`frappe.db.set_value` (outstanding_amount, the nightly Overdue job): fires nothing."""
        return self._set_values(
            doctype, name, fieldname, value, update_modified=update_modified, user=None
        )

    def import_docs(self, doctype: str, docs: Sequence[Mapping[str, Any]]) -> list[Doc]:
        """Data Import: documents inserted with no webhook at all (`in_import`)."""
        with self.store.lock:
            return [copy.deepcopy(self.store.create(doctype, doc, self.user)) for doc in docs]

    def _set_values(
        self,
        doctype: str,
        name: str,
        fieldname: str | Mapping[str, Any],
        value: Any,
        *,
        update_modified: bool,
        user: str | None,
    ) -> Doc:
        values = dict(fieldname) if isinstance(fieldname, Mapping) else {fieldname: value}
        with self.store.lock:
            doc = self.store.get(doctype, name)
            doc.update(copy.deepcopy(values))
            if update_modified:
                doc["modified"] = self.store.tick()
                doc["modified_by"] = user or self.user
            return copy.deepcopy(doc)

    def get(self, doctype: str, name: str) -> Doc:
        with self.store.lock:
            return copy.deepcopy(self.store.get(doctype, name))

    def all(self, doctype: str) -> list[Doc]:
        return self.store.all(doctype)

    # -- files --------------------------------------------------------------------------------
    def add_file(
        self,
        file_name: str,
        content: bytes,
        *,
        is_private: bool = False,
        attached_to_doctype: str | None = None,
        attached_to_name: str | None = None,
        attached_to_field: str | None = None,
        imported: bool = False,
        folder: str | None = None,
        user: str | None = None,
    ) -> Doc:
        """Store `content` and insert its File doc (fires File after_insert, on_update), or with
        `imported`, as Data Import or a migration adds it: no webhook at all.

        `folder` defaults to Home/Attachments for an attachment, else Home (File.set_folder_name);
        `user` is the uploader (the File's owner)."""
        content_hash = hashlib.md5(content, usedforsecurity=False).hexdigest()
        url_prefix = "/private/files/" if is_private else "/files/"
        file_url = url_prefix + file_name
        with self.store.lock:
            existing = self._files.get(file_url)
            if existing is not None and existing != content:
                # Frappe keeps both: the new file's name gets the last 6 characters of its hash.
                stem, extension = os.path.splitext(file_name)
                file_name = f"{stem}{content_hash[-6:]}{extension}"
                file_url = url_prefix + file_name
            self._files[file_url] = content
        doc = {
            "file_name": file_name,
            "file_url": file_url,
            "is_private": int(is_private),
            "file_size": len(content),
            "content_hash": content_hash,
            "folder": folder or ("Home/Attachments" if attached_to_doctype else "Home"),
            "is_folder": 0,
            "attached_to_doctype": attached_to_doctype,
            "attached_to_name": attached_to_name,
            "attached_to_field": attached_to_field,
        }
        return (
            self.import_docs("File", [doc])[0] if imported else self.insert("File", doc, user=user)
        )

    def upload_file(
        self, fields: Mapping[str, str], upload: tuple[str, bytes] | None, *, user: str
    ) -> Doc:
        """`upload_file` (frappe/handler.py) without a `method`: the File of the part named `file`
        (its filename wins over the `file_name` field), attached to `doctype`/`docname`, in
        `folder` (Home by default), private when `is_private` is 1. Frappe does not check that
        the document exists; neither does the stand-in."""
        if upload is None:
            raise _validation("No file attached")
        part_filename, content = upload
        file_name = os.path.basename(part_filename or fields.get("file_name") or "")
        if not file_name:
            raise _validation("File name is required")
        return self.add_file(
            file_name,
            content,
            is_private=bool(_cint(fields.get("is_private"))),
            attached_to_doctype=fields.get("doctype") or None,
            attached_to_name=fields.get("docname") or None,
            attached_to_field=fields.get("fieldname") or None,
            folder=fields.get("folder") or "Home",
            user=user,
        )

    # -- assignments --------------------------------------------------------------------------
    def assign(
        self,
        doctype: str,
        name: str,
        users: Sequence[str],
        *,
        description: str | None = None,
        user: str | None = None,
    ) -> Doc:
        """`frappe.desk.form.assign_to.add`: an open ToDo per user not yet assigned (ToDo webhooks
        fire), and the document's `_assign` (JSON text, oldest assignment first) written through
        frappe.db.set_value: no webhook of the document, `modified` unchanged."""
        assigned = _assigned_users(self.get(doctype, name))
        for allocated_to in users:
            if allocated_to in assigned:
                continue  # Frappe only says "Already in the following Users ToDo list"
            self.insert(
                "ToDo",
                {
                    "status": "Open",
                    "allocated_to": allocated_to,
                    "reference_type": doctype,
                    "reference_name": name,
                    "description": description or f"{doctype} {name}",
                    "assigned_by": user or self.user,
                },
                user=user,
            )
            assigned.append(allocated_to)
        return self.set_value_silently(
            doctype, name, "_assign", json.dumps(assigned), update_modified=False
        )

    def _url_still_used(self, file_url: Any) -> bool:
        return any(doc.get("file_url") == file_url for doc in self.store.table("File").values())

    # -- seed data ----------------------------------------------------------------------------
    def seed_demo_data(
        self, project_manager_field: str = "project_manager", emergency_priority: str = "Urgent"
    ) -> None:
        """Users (with roles), Customers, Suppliers, Projects, Contacts with mobile numbers and
        assigned Issues for the demo, imported without webhooks.

        Stock ERPNext has no project-manager field: real sites add a Custom Field, hence the name
        is a parameter. Its Issue Priorities are Low, Medium and High; the emergency one is the
        site's own (`emergency_priority`)."""
        users = [
            {"email": "ana.lopez@example.com", "first_name": "Ana", "last_name": "Lopez"},
            {"email": "ben.okafor@example.com", "first_name": "Ben", "last_name": "Okafor"},
            {"email": "chen.wei@example.com", "first_name": "Chen", "last_name": "Wei"},
            {"email": "dana.kim@example.com", "first_name": "Dana", "last_name": "Kim"},
            {"email": "eli.moreau@example.com", "first_name": "Eli", "last_name": "Moreau"},
        ]
        roles = {
            "ana.lopez@example.com": ("System Manager", "Projects Manager"),
            "ben.okafor@example.com": ("Projects Manager",),
            "chen.wei@example.com": ("Projects Manager",),
            "dana.kim@example.com": ("Support Team",),
            "eli.moreau@example.com": ("Support Team",),
        }
        self.import_docs(
            "User",
            [
                {
                    **user,
                    "full_name": f"{user['first_name']} {user['last_name']}",
                    "enabled": 1,
                    "roles": [{"role": role} for role in roles[user["email"]]],
                }
                for user in users
            ],
        )
        customers = ["Acme Builders", "Blue River Foods", "Cobalt Clinics"]
        self.import_docs(
            "Customer",
            [{"customer_name": name, "customer_type": "Company"} for name in customers],
        )
        suppliers = ["Delta Steel", "Evergreen Timber"]
        self.import_docs(
            "Supplier",
            [{"supplier_name": name, "supplier_type": "Company"} for name in suppliers],
        )
        projects = [
            ("Warehouse Extension", customers[0], users[0]["email"]),
            ("Cold Store Fit-out", customers[1], users[1]["email"]),
            ("Clinic Refurbishment", customers[2], users[2]["email"]),
        ]
        self.import_docs(
            "Project",
            [
                {
                    "project_name": title,
                    "customer": customer,
                    "status": "Open",
                    project_manager_field: manager,
                }
                for title, customer, manager in projects
            ],
        )
        self._seed_service_desk(customers, emergency_priority)

    def _seed_service_desk(self, customers: Sequence[str], emergency_priority: str) -> None:
        """Roles, Issue Priorities, client Contacts (numbers stored as people type them) and
        Issues assigned to the engineers, each on its customer's project."""
        self.import_docs(
            "Role",
            [
                {"role_name": role, "desk_access": 1}
                for role in ("System Manager", "Projects Manager", "Support Team")
            ],
        )
        self.import_docs(
            "Issue Priority",
            [{"priority": name} for name in ("Low", "Medium", "High", emergency_priority)],
        )
        contacts = [
            ("Maria", "Garcia", customers[0], "+44 7700 900123", "maria.garcia@acme.example", 1),
            ("Sam", "Ortiz", customers[0], "+1 415-555-0199", "sam.ortiz@acme.example", 0),
            ("Tom", "Becker", customers[1], "+1 (415) 555-0134", "tom.becker@blueriver.example", 1),
            ("Priya", "Nair", customers[2], "+44 (0)7700 900456", "priya.nair@cobalt.example", 1),
        ]
        contact_names = self._seed_contacts(contacts)
        projects = {str(p["customer"]): str(p["name"]) for p in self.store.all("Project")}
        dana, eli = "dana.kim@example.com", "eli.moreau@example.com"
        issues = [
            ("Hydraulic leak at the loading bay", "High", "Open", 0, (dana,)),
            ("Lights flicker in aisle 4", "Medium", "Resolved", 1, (dana,)),
            ("Cold room alarm: temperature rising", emergency_priority, "Open", 2, (dana, eli)),
            ("Reception door closer broken", "Low", "On Hold", 3, (eli,)),
        ]
        for subject, priority, status, contact_index, assignees in issues:
            contact = contacts[contact_index]
            (issue,) = self.import_docs(
                "Issue",
                [
                    {
                        "subject": subject,
                        "description": f"<p>{subject}.</p>",
                        "priority": priority,
                        "status": status,
                        "raised_by": contact[4],
                        "customer": contact[2],
                        "contact": contact_names[contact_index],
                        "project": projects.get(contact[2]),
                        "_assign": json.dumps(list(assignees)),
                    }
                ],
            )
            self.import_docs(
                "ToDo",
                [
                    {
                        "status": "Open",
                        "allocated_to": assignee,
                        "reference_type": "Issue",
                        "reference_name": issue["name"],
                        "description": subject,
                        "assigned_by": "ana.lopez@example.com",
                    }
                    for assignee in assignees
                ],
            )

    def _seed_contacts(self, contacts: Sequence[tuple[str, str, str, str, str, int]]) -> list[str]:
        docs = self.import_docs(
            "Contact",
            [
                {
                    "first_name": first,
                    "last_name": last,
                    "is_primary_contact": primary,
                    "email_ids": [{"email_id": email, "is_primary": 1}],
                    "phone_nos": [{"phone": phone, "is_primary_mobile_no": 1}],
                    "links": [{"link_doctype": "Customer", "link_name": customer}],
                }
                for first, last, customer, phone, email, primary in contacts
            ],
        )
        return [str(doc["name"]) for doc in docs]

    # -- HTTP ---------------------------------------------------------------------------------
    def request_count(self, method: str, path: str) -> int:
        """How many requests reached `METHOD path` (path decoded, without the query)."""
        with self._counts_lock:
            return self._counts[f"{method.upper()} {path}"]

    def request_counts(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self._counts)

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one HTTP request as the site would."""
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {
            key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()
        }
        with self._counts_lock:
            self._counts[f"{method} {path}"] += 1
        try:
            fault = self.faults.take(path)
            if fault is not None:
                raise fault
            if path.startswith("/files/"):
                return self._file_reply(path, private=False)
            user = self._authenticate(headers)
            if path.startswith("/private/files/"):
                if user is None:
                    # download_private_file raises werkzeug's Forbidden for Guest: an HTML 403.
                    return Reply(
                        403, _FORBIDDEN_HTML, (("Content-Type", "text/html; charset=utf-8"),)
                    )
                return self._file_reply(path, private=True)
            if path.startswith("/api/"):
                if user is None:
                    raise FrappeError(403, "PermissionError", "Not permitted")
                return self._api(method, path, query, body, user, headers=headers)
            raise FrappeError(404, "DoesNotExistError", f"Page {path} not found")
        except FrappeError as error:
            extra = (("Retry-After", str(error.retry_after)),) if error.retry_after else ()
            return _reply(error.status, error.body(), extra)

    def _authenticate(self, headers: Mapping[str, str]) -> str | None:
        """The user for this request; None is Guest (no Authorization header).

        frappe.auth.validate_auth: a header that does not authenticate raises AuthenticationError
        (401); no header leaves the request as Guest, which is then refused with 403."""
        header = headers.get("Authorization") or ""
        if not header:
            return None
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                credentials = base64.b64decode(credentials, validate=True).decode()
            except ValueError:
                credentials = ""
        elif scheme.lower() != "token":
            credentials = ""
        key, _, secret = credentials.strip().partition(":")
        accounts = {self.api_key: (self._api_secret, self.user)} | self._api_users
        expected, user = accounts.get(key, ("", ""))
        secret_ok = hmac.compare_digest(secret.encode(), expected.encode())
        if not (user and secret_ok):
            raise FrappeError(401, "AuthenticationError", "Invalid API key or secret")
        return user

    def add_api_user(
        self,
        user: str,
        api_key: str,
        api_secret: str,
        *,
        can_read: Callable[[str, str], bool] = lambda doctype, name: True,
    ) -> None:
        """Another user with an API token; `can_read(doctype, name)` plays their permissions on
        single documents (Frappe answers 403 PermissionError where they may not read)."""
        self._api_users[api_key] = (api_secret, user)
        self._can_read[user] = can_read

    def _file_reply(self, path: str, *, private: bool) -> Reply:
        content = self._files.get(path)
        if content is None:
            raise FrappeError(404, "DoesNotExistError", f"File {path} not found")
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        disposition = f'inline; filename="{os.path.basename(path)}"'
        headers: tuple[tuple[str, str], ...] = (("Content-Type", content_type),)
        if private:
            headers = (*headers, ("Content-Disposition", disposition))
        return Reply(200, content, headers)

    def _api(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: bytes,
        user: str,
        *,
        headers: Mapping[str, str],
    ) -> Reply:
        if path.startswith("/api/method/"):
            return self._method(path[len("/api/method/") :].rstrip("/"), query, body, user, headers)
        if not path.startswith("/api/resource/"):
            raise FrappeError(404, "DoesNotExistError", f"Page {path} not found")
        doctype, _, name = path[len("/api/resource/") :].rstrip("/").partition("/")
        if not name:
            if method == "GET":
                return _reply(200, {"data": self._list(doctype, query)})
            if method == "POST":
                values = _request_data(body, query)
                values.pop("doctype", None)
                return _reply(200, {"data": self.insert(doctype, values, user=user)})
        elif method == "GET":
            can_read = self._can_read.get(user)
            if can_read is not None and not can_read(doctype, name):
                raise FrappeError(403, "PermissionError", f"No permission for {doctype} {name}")
            return _reply(200, {"data": self.get(doctype, name)})
        elif method == "PUT":
            changes = _request_data(body, query)
            changes.pop("flags", None)
            expected = changes.pop("modified", None)
            return _reply(
                200,
                {"data": self.save(doctype, name, changes, user=user, expected_modified=expected)},
            )
        elif method == "DELETE":
            self.delete(doctype, name)
            return _reply(202, {"message": "ok"})
        raise FrappeError(405, "MethodNotAllowed", f"{method} not allowed on {path}")

    def _method(
        self,
        method_name: str,
        query: Mapping[str, str],
        body: bytes,
        user: str,
        headers: Mapping[str, str],
    ) -> Reply:
        """The whitelisted methods the stand-in knows; their answer is `{"message": ...}`."""
        if method_name == "frappe.auth.get_logged_user":
            return _reply(200, {"message": user})
        content_type = headers.get("Content-Type") or ""
        if method_name in ("upload_file", "frappe.handler.upload_file"):
            fields, files = parse_multipart(content_type, body)
            doc = self.upload_file({**query, **fields}, files.get("file"), user=user)
            return _reply(200, {"message": doc})
        if method_name == "frappe.client.get_count":
            params = {**query, **_method_form(content_type, body)}
            doctype = str(params.get("doctype") or "")
            if not doctype:
                raise _validation("get_count() missing 1 required argument: 'doctype'")
            filters = parse_filters(_json_param(params, "filters", None))
            return _reply(200, {"message": len(self._matching(doctype, filters))})
        raise FrappeError(404, "DoesNotExistError", f"Method {method_name} not found")

    def _matching(self, doctype: str, filters: Sequence[FieldFilter]) -> list[Doc]:
        return [doc for doc in self.store.all(doctype) if matches_document(doc, doctype, filters)]

    def _list(self, doctype: str, query: Mapping[str, str]) -> list[Doc]:
        """frappe.client.get_list as /api/resource calls it.

        Invalid JSON in `fields` or `filters`: Frappe calls json.loads unguarded (api/v1.py,
        db_query), so the JSONDecodeError escapes as an unhandled exception: HTTP 500 with
        `exc_type: "JSONDecodeError"` and no `_server_messages`. The stand-in answers the same.
        """
        fields = _json_param(query, "fields", ["name"])
        if isinstance(fields, str):
            fields = [fields]
        filters = parse_filters(_json_param(query, "filters", None))
        order_by = query.get("order_by") or DEFAULT_ORDER_BY
        start = _int_param(query, "limit_start", 0)
        page_length = _int_param(
            query, "limit_page_length", _int_param(query, "limit", DEFAULT_PAGE_LENGTH)
        )
        rows = order_docs(self._matching(doctype, filters), order_by)[start:]
        if page_length:
            rows = rows[:page_length]
        return [select_fields(doc, fields) for doc in rows]


def _transition_events(current: int, target: int) -> list[str]:
    """Document.check_docstatus_transition + run_post_save_methods."""
    transitions = {
        (0, 0): ["on_update", "on_change"],
        (0, 1): ["on_update", "on_submit", "on_change"],
        (1, 1): ["on_update_after_submit", "on_change"],
        (1, 2): ["on_cancel", "on_change"],
    }
    if current == 2:
        raise _validation("Cannot edit cancelled document")
    if (current, target) not in transitions:
        names = {0: "Draft", 1: "Submitted", 2: "Cancelled"}
        raise _validation(
            f"Cannot change docstatus from {current} ({names.get(current)}) "
            f"to {target} ({names.get(target)})",
            "DocstatusTransitionError",
        )
    return transitions[(current, target)]


def _json_param(query: Mapping[str, str], name: str, default: Any) -> Any:
    raw = query.get(name)
    if raw in (None, ""):
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FrappeError(
            500, "JSONDecodeError", str(exc), module="json.decoder", server_message=False
        ) from exc


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(str(raw))
    except ValueError as exc:
        raise _validation(f"{name} must be an integer") from exc


def _cint(value: Any) -> int:
    """frappe.utils.cint: an int, 0 for anything that is not a number."""
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return 0


def _assigned_users(doc: Mapping[str, Any]) -> list[str]:
    raw = doc.get("_assign")
    users = json.loads(raw) if isinstance(raw, str) and raw else raw or []
    return [str(user) for user in users]


def parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """A multipart/form-data body as werkzeug gives it to Frappe: text fields, and the file
    parts by field name as (filename, bytes). Bytes are kept exactly (no line-ending changes)."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        return {}, {}
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        part = Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip():
                part[key.strip()] = value.strip()
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = part.get_param("filename", header="content-disposition")
        if isinstance(filename, str):
            files[name] = (filename, content)
        else:
            fields[name] = content.decode("utf-8", "replace")
    return fields, files


def _method_form(content_type: str, body: bytes) -> dict[str, str]:
    """A method's POSTed arguments (form fields or a JSON object), as frappe.form_dict has them."""
    if not body:
        return {}
    if "json" in content_type:
        parsed = _request_data(body, {})
        return {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in parsed.items()
        }
    return {key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}


def _request_data(body: bytes, query: Mapping[str, str]) -> Doc:
    """JSON body, or a form/query `data` field, as frappe.api.v1.get_request_form_data reads it."""
    text = body.decode("utf-8") if body else ""
    if text.lstrip().startswith("{"):
        candidate = text
    else:
        form = {key: values[-1] for key, values in parse_qs(text).items()}
        candidate = form.get("data") or query.get("data") or "{}"
    try:
        parsed = json.loads(candidate)
    except json.JSONDecodeError as exc:
        raise _validation(f"Invalid JSON body: {exc}") from exc
    if not isinstance(parsed, dict):
        raise _validation("The request body must be a JSON object")
    return parsed


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a stand-in until SIGTERM or SIGINT; print `ERPNEXT_URL=...` on one line first."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=os.environ.get("ERPNEXT_API_KEY", "stand-in-key"))
    parser.add_argument(
        "--api-secret", default=os.environ.get("ERPNEXT_API_SECRET", "stand-in-secret")
    )
    parser.add_argument("--user", default="Administrator")
    parser.add_argument(
        "--seed",
        action="store_true",
        help="add the demo's users, parties, projects, contacts and issues",
    )
    parser.add_argument(
        "--emergency-priority",
        default="Urgent",
        help="the name of the seeded emergency Issue Priority (default: Urgent)",
    )
    parser.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="DOCTYPE|EVENT|URL",
        help="a v15-era webhook signed with $ERPNEXT_WEBHOOK_SECRET (repeatable)",
    )
    args = parser.parse_args(argv)
    standin = ErpNextStandIn(
        api_key=args.api_key, api_secret=args.api_secret, user=args.user, port=args.port
    )
    if args.seed:
        standin.seed_demo_data(emergency_priority=args.emergency_priority)
    for spec in args.webhook:
        doctype, event, url = spec.split("|", 2)
        standin.add_webhook(doctype, event, url, os.environ.get("ERPNEXT_WEBHOOK_SECRET"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with standin:
        print(f"ERPNEXT_URL={standin.url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
