"""ERPNext as the notifier's bots use it (the ServiceDesk port) over its REST client."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.adapters.erpnext import ChildFilter, ErpNextClient, Filter
from shared.core import documents
from shared.core.envelope import Json
from shared.errors import ConfigurationError, InvalidPayload, NotFound
from shared.servicedesk.phones import normalise_e164
from shared.servicedesk.ports import DeskFigures, ServiceRequest

PHONE_MATCH_DIGITS = 8
"""Trailing digits a number is searched by: they survive every way of writing the prefix."""
PHONE_CANDIDATES = 20
RESOLVED_WINDOW = timedelta(days=30)
FRAPPE_DATETIME = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class DeskConfig:
    """Where a site keeps its service requests: stock ERPNext's Issue by default; sites with a
    custom doctype name theirs and its fields here (`None` where it has no such field)."""

    doctype: str = "Issue"
    statuses: tuple[str, ...] = ("Open", "Replied", "On Hold", "Resolved", "Closed")
    """The values set_status accepts (matched case-insensitively, saved as spelled here)."""
    closed_statuses: tuple[str, ...] = ("Resolved", "Closed")
    status_field: str = "status"
    subject_field: str = "subject"
    description_field: str = "description"
    priority_field: str = "priority"
    raised_by_field: str = "raised_by"
    customer_field: str = "customer"
    contact_field: str = "contact"
    project_field: str | None = "project"
    opened_date_field: str | None = "opening_date"
    """With `opened_time_field`, when the request was opened; None reads `creation`."""
    opened_time_field: str | None = "opening_time"
    resolved_field: str = "resolution_date"
    site_timezone: str = "UTC"
    """ERPNext stores naive date-times in the site's system time zone."""
    default_country_code: str | None = None
    """For numbers stored in national form (leading 0), e.g. "44"."""
    default_currency: str = "USD"
    """The company currency: reported when no invoice names one, or when they name several."""
    invoice_doctype: str = "Sales Invoice"
    listed: int = 50
    """At most this many requests in a user's list."""


@dataclass(frozen=True, slots=True)
class _PhoneMatch:
    contact: str
    customer: str | None


class ErpNextServiceDesk:
    """The ServiceDesk port over ERPNext's REST API. Build it once per instance from the instance's
    ErpNextClient; it keeps no state of its own. Errors come from the client: NotFound,
    PermissionDenied, UpstreamRejected, UpstreamUnavailable; InvalidPayload for a status it does
    not know."""

    def __init__(self, client: ErpNextClient, config: DeskConfig | None = None) -> None:
        self._client = client
        self._config = config or DeskConfig()
        try:
            self._zone: tzinfo = ZoneInfo(self._config.site_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigurationError(
                f"site time zone {self._config.site_timezone!r} is not a known zone"
            ) from exc

    def __repr__(self) -> str:
        return f"ErpNextServiceDesk(client={self._client!r}, doctype={self._config.doctype!r})"

    # -- requests -------------------------------------------------------------------------------
    def request(self, request_id: str) -> ServiceRequest:
        return self._to_request(self._client.get_doc(self._config.doctype, request_id))

    def open_requests_for(self, user: str) -> list[ServiceRequest]:
        """Requests not in a closed status assigned to `user`, newest first (at most `listed`)."""
        config = self._config
        rows = self._client.list_docs(
            config.doctype,
            fields=self._list_fields(),
            filters=[
                # Frappe's own "Assigned To" filter; the JSON text is checked exactly below.
                ("_assign", "like", f"%{user}%"),
                (config.status_field, "not in", list(config.closed_statuses)),
            ],
            order_by="creation desc",
            limit=config.listed,
        )
        requests = [self._to_request(row) for row in rows]
        return [request for request in requests if user in request.assigned_to]

    def set_status(self, request_id: str, status: str) -> ServiceRequest:
        wanted = status.strip().casefold()
        spelled = next((s for s in self._config.statuses if s.casefold() == wanted), None)
        if spelled is None:
            raise InvalidPayload(
                f"unknown status {status[:40]!r}; one of: {', '.join(self._config.statuses)}",
                doctype=self._config.doctype,
                name=request_id,
            )
        saved = self._client.update(
            self._config.doctype, request_id, {self._config.status_field: spelled}, modified=None
        )
        return self._to_request(saved)

    def create_request(
        self, *, subject: str, description: str, priority: str, raised_by: str
    ) -> ServiceRequest:
        """Insert a request. `raised_by` is a user's email address, or a client's phone number:
        then the request carries the Contact with that number and its Customer, and ERPNext
        sets raised_by to the API user (the field holds email addresses only). Anything else is
        sent as it is, for ERPNext to accept or refuse (UpstreamRejected)."""
        config = self._config
        values: dict[str, Json] = {
            config.subject_field: subject,
            config.description_field: description,
            config.priority_field: priority,
        }
        phone = None if "@" in raised_by else normalise_e164(raised_by, config.default_country_code)
        if phone is None:
            values[config.raised_by_field] = raised_by.strip()
        else:
            matches = list(self._contacts_of_phone(phone))
            match = next((m for m in matches if m.customer), matches[0] if matches else None)
            if match is not None:
                values[config.contact_field] = match.contact
                if match.customer:
                    values[config.customer_field] = match.customer
        return self._to_request(self._client.insert(config.doctype, values))

    def attach_file(self, request_id: str, filename: str, content: bytes, *, sent_by: str) -> str:
        """Upload a private File attached to the request and return its `file_url`; then a
        Comment on the request names the person who sent it (the API user owns the File)."""
        doctype = self._config.doctype
        uploaded = self._client.upload_file(doctype, request_id, filename, content, is_private=True)
        file_name = documents.text(uploaded.get("file_name")) or filename
        self._client.insert(
            "Comment",
            {
                "comment_type": "Comment",
                "reference_doctype": doctype,
                "reference_name": request_id,
                "comment_email": sent_by,
                "content": f"{file_name} sent through the Telegram bot by {sent_by}",
            },
        )
        return str(uploaded.get("file_url"))

    # -- people ---------------------------------------------------------------------------------
    def roles_of(self, user: str) -> frozenset[str]:
        doc = self._client.get_doc("User", user)
        return frozenset(
            role for row in _rows(doc.get("roles")) if (role := documents.text(row.get("role")))
        )

    def full_name(self, user: str) -> str:
        """The User's full name (first and last when it has none; its id when neither is set)."""
        doc = self._client.get_doc("User", user)
        parts = (documents.text(doc.get(key)) for key in ("first_name", "middle_name", "last_name"))
        return documents.text(doc.get("full_name")) or " ".join(p for p in parts if p) or user

    def customer_of_phone(self, phone_e164: str) -> str | None:
        phone = normalise_e164(phone_e164, self._config.default_country_code)
        if phone is None:
            return None
        return next((m.customer for m in self._contacts_of_phone(phone) if m.customer), None)

    def client_phone(self, request: ServiceRequest) -> str | None:
        """The mobile number of the request's Contact, else the one of its Customer's primary
        contact (Customer.customer_primary_contact, Customer.mobile_no, then the Contacts linked
        to the Customer, primary first). Only mobile numbers: WhatsApp cannot reach a landline."""
        config = self._config
        doc = self._client.get_doc(config.doctype, request.id)
        contact = documents.text(doc.get(config.contact_field))
        mobile = self._contact_mobile(contact) if contact else None
        customer = documents.text(doc.get(config.customer_field)) or request.customer
        if mobile is None and customer:
            mobile = self._customer_mobile(customer)
        return mobile

    # -- figures --------------------------------------------------------------------------------
    def figures(self, now: datetime) -> DeskFigures:
        """Open requests now, average hours from opening to resolution over requests resolved
        in the 30 days before `now`, and the submitted invoices posted this month (site time)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        config = self._config
        local_now = now.astimezone(self._zone)
        open_count = self._client.count(
            config.doctype, [(config.status_field, "not in", list(config.closed_statuses))]
        )
        since = (local_now - RESOLVED_WINDOW).replace(tzinfo=None).strftime(FRAPPE_DATETIME)
        hours: list[float] = []
        for row in self._client.iter_docs(
            config.doctype,
            fields=[*self._opened_fields(), config.resolved_field],
            filters=[
                (config.status_field, "in", list(config.closed_statuses)),
                (config.resolved_field, ">=", since),
            ],
        ):
            opened, resolved = self._opened(row), self._moment(row.get(config.resolved_field))
            if opened is not None and resolved is not None and resolved <= now:
                hours.append(max((resolved - opened).total_seconds(), 0.0) / 3600)
        invoiced, currency = self._invoiced(local_now.date())
        return DeskFigures(
            open_requests=open_count,
            average_hours_to_close=sum(hours) / len(hours) if hours else None,
            invoiced_this_month=invoiced,
            currency=currency,
        )

    def _invoiced(self, today: date) -> tuple[float, str]:
        """Submitted invoices posted in `today`'s month: grand totals in their currency when
        they share one, else company-currency totals (base_grand_total) in the default currency."""
        rows = list(
            self._client.iter_docs(
                self._config.invoice_doctype,
                fields=["grand_total", "base_grand_total", "currency"],
                filters=[
                    ("docstatus", "=", 1),
                    ("posting_date", ">=", today.replace(day=1).isoformat()),
                    ("posting_date", "<=", _month_end(today).isoformat()),
                ],
            )
        )
        currencies = {c for row in rows if (c := documents.text(row.get("currency")))}
        if len(currencies) == 1:
            return sum(_number(row.get("grand_total")) for row in rows), currencies.pop()
        totals = (
            row["base_grand_total"]
            if row.get("base_grand_total") is not None
            else row.get("grand_total")
            for row in rows
        )
        return sum(_number(total) for total in totals), self._config.default_currency

    # -- contacts -------------------------------------------------------------------------------
    def _contacts_of_phone(self, phone: str) -> Iterator[_PhoneMatch]:
        """Contacts carrying `phone` in any format, primary contacts first. SQL cannot compare
        formatted numbers, so a LIKE on the last digits with `%` between them finds candidates
        (`+44 7700 900123` and `07700-900123` alike) and the exact check is made here."""
        pattern = "%" + "%".join(phone[-PHONE_MATCH_DIGITS:]) + "%"
        searches: list[Sequence[Filter | ChildFilter]] = [
            [("Contact Phone", "phone", "like", pattern)],
            [("mobile_no", "like", pattern)],
        ]
        candidates: dict[str, int] = {}
        for filters in searches:
            for row in self._client.list_docs(
                "Contact",
                fields=["name", "is_primary_contact"],
                filters=filters,
                # Qualified: with a child table joined, a bare column would be ambiguous.
                order_by="`tabContact`.`is_primary_contact` desc, `tabContact`.`modified` desc",
                limit=PHONE_CANDIDATES,
            ):
                candidates.setdefault(
                    str(row.get("name")), int(_number(row.get("is_primary_contact")))
                )
        for name in sorted(candidates, key=lambda n: -candidates[n]):
            try:
                contact = self._client.get_doc("Contact", name)
            except NotFound:
                continue  # deleted since the list was read
            if phone in self._numbers_of(contact):
                yield _PhoneMatch(name, _customer_link(contact))

    def _numbers_of(self, contact: Mapping[str, Json]) -> set[str]:
        texts = [row.get("phone") for row in _rows(contact.get("phone_nos"))]
        texts += [contact.get("mobile_no"), contact.get("phone")]
        numbers = (
            normalise_e164(documents.text(t), self._config.default_country_code) for t in texts
        )
        return {number for number in numbers if number}

    def _mobile_of(self, contact: Mapping[str, Json]) -> str | None:
        country = self._config.default_country_code
        flagged = [
            r.get("phone") for r in _rows(contact.get("phone_nos")) if r.get("is_primary_mobile_no")
        ]
        for text in (contact.get("mobile_no"), *flagged):
            if number := normalise_e164(documents.text(text), country):
                return number
        return None

    def _contact_mobile(self, contact: str) -> str | None:
        try:
            return self._mobile_of(self._client.get_doc("Contact", contact))
        except NotFound:
            return None  # the contact was deleted; the request's link still names it

    def _customer_mobile(self, customer: str) -> str | None:
        try:
            customer_doc = self._client.get_doc("Customer", customer)
        except NotFound:
            return None
        primary = documents.text(customer_doc.get("customer_primary_contact"))
        mobile = self._contact_mobile(primary) if primary else None
        mobile = mobile or normalise_e164(
            documents.text(customer_doc.get("mobile_no")), self._config.default_country_code
        )
        if mobile:
            return mobile
        linked = self._client.list_docs(
            "Contact",
            fields=["name", "mobile_no"],
            filters=[
                ("Dynamic Link", "link_doctype", "=", "Customer"),
                ("Dynamic Link", "link_name", "=", customer),
            ],
            order_by="`tabContact`.`is_primary_contact` desc, `tabContact`.`creation` asc",
            limit=PHONE_CANDIDATES,
        )
        numbers = (
            normalise_e164(documents.text(row.get("mobile_no")), self._config.default_country_code)
            for row in linked
        )
        return next((number for number in numbers if number), None)

    # -- documents into ServiceRequest -----------------------------------------------------------
    def _opened_fields(self) -> list[str]:
        config = self._config
        fields = [config.opened_date_field, config.opened_time_field, "creation"]
        return [f for f in fields if f]

    def _list_fields(self) -> list[str]:
        config = self._config
        fields = [
            "name",
            config.subject_field,
            config.status_field,
            config.priority_field,
            config.customer_field,
            config.project_field,
            config.raised_by_field,
            "owner",
            "_assign",
            *self._opened_fields(),
            config.resolved_field,
        ]
        return list(dict.fromkeys(f for f in fields if f))

    def _to_request(self, doc: Mapping[str, Json]) -> ServiceRequest:
        config = self._config
        return ServiceRequest(
            id=str(doc.get("name")),
            subject=documents.text(doc.get(config.subject_field)) or "",
            status=documents.text(doc.get(config.status_field)) or "",
            priority=documents.text(doc.get(config.priority_field)) or "",
            customer=documents.text(doc.get(config.customer_field)),
            project=documents.text(doc.get(config.project_field)) if config.project_field else None,
            assigned_to=_assigned(doc.get("_assign")),
            raised_by=documents.text(doc.get(config.raised_by_field)),
            owner=documents.text(doc.get("owner")),
            opened=self._opened(doc),
            resolved=self._moment(doc.get(config.resolved_field)),
        )

    def _opened(self, doc: Mapping[str, Json]) -> datetime | None:
        """The opening date and time (site time), else `creation`, as an aware UTC datetime."""
        config = self._config
        day_text = (
            documents.text(doc.get(config.opened_date_field)) if config.opened_date_field else None
        )
        try:
            day = date.fromisoformat(day_text[:10]) if day_text else None
        except ValueError:
            day = None
        if day is None:
            return self._moment(doc.get("creation"))
        clock = (
            documents.text(doc.get(config.opened_time_field)) if config.opened_time_field else None
        )
        at = (_time_of_day(clock) if clock else None) or timedelta()
        local = datetime.combine(day, time()) + at
        return local.replace(tzinfo=self._zone).astimezone(UTC)

    def _moment(self, value: Json) -> datetime | None:
        """A Frappe Date or Datetime (naive, site time) as an aware UTC datetime."""
        text = documents.text(value)
        if text is None:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self._zone)
        return parsed.astimezone(UTC)


def _month_end(day: date) -> date:
    next_month = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return next_month - timedelta(days=1)


def _time_of_day(text: str) -> timedelta | None:
    """A Frappe Time as saved ("09:30:00.123456") or as read back from MariaDB ("9:30:00")."""
    parts = text.split(":")
    try:
        hours, minutes = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        seconds = float(parts[2]) if len(parts) > 2 else 0.0
    except ValueError:
        return None
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _assigned(raw: Json) -> tuple[str, ...]:
    """`_assign`: a JSON text list of user ids, as Frappe stores it (or null)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else []
        except ValueError:
            return ()
    if not isinstance(raw, list):
        return ()
    return tuple(str(user) for user in raw if isinstance(user, str) and user)


def _customer_link(contact: Mapping[str, Json]) -> str | None:
    for row in _rows(contact.get("links")):
        if row.get("link_doctype") == "Customer" and (name := documents.text(row.get("link_name"))):
            return name
    return None


def _rows(value: Json) -> list[Mapping[str, Json]]:
    return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []


def _number(value: Json) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0.0
    try:
        return float(value)
    except ValueError:
        return 0.0
