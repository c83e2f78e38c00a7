"""ErpNextServiceDesk against the ERPNext stand-in (no mocks): requests, statuses, uploads, roles,
phone numbers however ERPNext stores them, and the figures of /analytics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.erpnext import ErpNextStandIn
from shared.adapters.erpnext import ErpNextClient
from shared.adapters.erpnext_servicedesk import DeskConfig, ErpNextServiceDesk
from shared.errors import InvalidPayload, NotFound, UpstreamRejected
from shared.servicedesk.phones import normalise_e164
from shared.servicedesk.ports import ServiceDesk
from tests.helpers.clocks import SettableClock
from tests.helpers.receivers import WebhookReceiver

KEY = "desk-key"
SECRET = "desk-secret-9c1e"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DANA, ELI = "dana.kim@example.com", "eli.moreau@example.com"


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(START)


@pytest.fixture
def erp(clock: SettableClock) -> Iterator[ErpNextStandIn]:
    with ErpNextStandIn(api_key=KEY, api_secret=SECRET, clock=clock) as running:
        yield running


@pytest.fixture
def seeded(erp: ErpNextStandIn) -> ErpNextStandIn:
    erp.seed_demo_data()
    return erp


@pytest.fixture
def client(erp: ErpNextStandIn) -> ErpNextClient:
    return ErpNextClient(erp.url, KEY, SECRET, timeout_s=5)


@pytest.fixture
def desk(client: ErpNextClient) -> ErpNextServiceDesk:
    return ErpNextServiceDesk(client)


def issue_named(erp: ErpNextStandIn, subject: str) -> dict[str, Any]:
    (issue,) = [doc for doc in erp.all("Issue") if doc["subject"] == subject]
    return issue


LEAK = "Hydraulic leak at the loading bay"
LIGHTS = "Lights flicker in aisle 4"
COLD_ROOM = "Cold room alarm: temperature rising"
DOOR = "Reception door closer broken"


def test_the_adapter_implements_the_port(desk: ErpNextServiceDesk) -> None:
    port: ServiceDesk = desk
    assert port is desk


# -- requests -----------------------------------------------------------------------------------


def test_open_requests_for_lists_unclosed_requests_assigned_to_the_user_newest_first(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    assert [r.subject for r in desk.open_requests_for(DANA)] == [COLD_ROOM, LEAK]
    assert [r.subject for r in desk.open_requests_for(ELI)] == [DOOR, COLD_ROOM]


def test_open_requests_for_is_empty_when_the_user_only_resembles_an_assignee(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    # `_assign like %kim@example.com%` finds Dana's requests; the exact check drops them.
    assert desk.open_requests_for("kim@example.com") == []


def test_request_reads_status_priority_parties_assignees_and_opening_time(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    issue = issue_named(seeded, COLD_ROOM)

    request = desk.request(issue["name"])

    assert (request.id, request.status, request.priority) == (issue["name"], "Open", "Urgent")
    assert (request.customer, request.project) == ("Blue River Foods", "PROJ-0002")
    assert request.assigned_to == (DANA, ELI)
    assert (request.opened, request.resolved) == (START, None)


def test_request_raises_not_found_when_the_id_is_unknown(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    with pytest.raises(NotFound):
        desk.request("ISS-2026-99999")


def test_set_status_saves_the_configured_spelling_and_erpnext_dates_the_resolution(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk, clock: SettableClock
) -> None:
    issue = issue_named(seeded, LEAK)
    clock.now = START + timedelta(hours=3, minutes=15)

    resolved = desk.set_status(issue["name"], " resolved ")

    assert (resolved.status, resolved.resolved) == ("Resolved", clock.now)
    assert seeded.get("Issue", issue["name"])["status"] == "Resolved"
    assert [r.subject for r in desk.open_requests_for(DANA)] == [COLD_ROOM]
    reopened = desk.set_status(issue["name"], "Open")
    assert (reopened.status, reopened.resolved) == ("Open", None)


def test_set_status_raises_invalid_payload_and_saves_nothing_when_the_status_is_unknown(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    issue = issue_named(seeded, LEAK)

    with pytest.raises(InvalidPayload, match="unknown status"):
        desk.set_status(issue["name"], "Done")

    assert seeded.get("Issue", issue["name"])["modified"] == issue["modified"]


def test_set_status_raises_not_found_when_the_request_is_unknown(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    with pytest.raises(NotFound):
        desk.set_status("ISS-2026-99999", "Closed")


def test_create_request_by_email_inserts_an_open_request_and_fires_its_webhook(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk, receiver: WebhookReceiver
) -> None:
    seeded.add_webhook("Issue", "after_insert", f"{receiver.url}/hook", fields=["name", "priority"])

    created = desk.create_request(
        subject="Pump noise", description="Grinding", priority="High", raised_by=DANA
    )
    assert seeded.wait_for_deliveries(5)

    stored = seeded.get("Issue", created.id)
    assert (created.status, created.priority, created.opened) == ("Open", "High", START)
    assert (stored["raised_by"], stored["description"]) == (DANA, "Grinding")
    assert receiver.bodies() == [{"name": created.id, "priority": "High"}]


def test_create_request_by_phone_links_the_contact_and_customer_of_that_number(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    created = desk.create_request(
        subject="Freezer down", description="", priority="Urgent", raised_by="0014155550134"
    )

    stored = seeded.get("Issue", created.id)
    assert created.customer == "Blue River Foods"
    assert stored["contact"] == "Tom Becker-Blue River Foods"
    assert stored["raised_by"] == "Administrator"  # ERPNext's session user: the API user


def test_create_request_raises_rejected_when_erpnext_refuses_raised_by_as_an_email(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    with pytest.raises(UpstreamRejected, match="InvalidEmailAddressError"):
        desk.create_request(subject="s", description="d", priority="Low", raised_by="Tom")

    assert len(seeded.all("Issue")) == 4


# -- files --------------------------------------------------------------------------------------


def test_attach_file_uploads_a_private_file_attached_to_the_request_and_names_its_sender(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk, receiver: WebhookReceiver
) -> None:
    issue = issue_named(seeded, COLD_ROOM)
    seeded.add_webhook("File", "after_insert", f"{receiver.url}/hook")
    content = b"\xff\xd8\xff site photo \r\n\x00"

    file_url = desk.attach_file(issue["name"], "thermometer.jpg", content, sent_by=DANA)
    assert seeded.wait_for_deliveries(5)

    (stored,) = seeded.all("File")
    assert (stored["attached_to_doctype"], stored["attached_to_name"]) == ("Issue", issue["name"])
    assert (file_url, stored["file_url"]) == ("/private/files/thermometer.jpg", file_url)
    assert (stored["is_private"], stored["file_size"]) == (1, len(content))
    assert [(body["name"], body["attached_to_name"]) for body in receiver.bodies()] == [
        (stored["name"], issue["name"])
    ]
    # The File is the API user's: a Comment on the request says who sent it.
    (comment,) = seeded.all("Comment")
    assert (comment["reference_doctype"], comment["reference_name"]) == ("Issue", issue["name"])
    assert comment["comment_email"] == DANA
    assert comment["content"] == f"thermometer.jpg sent through the Telegram bot by {DANA}"


# -- people ---------------------------------------------------------------------------------------


def test_roles_of_reads_the_users_roles(seeded: ErpNextStandIn, desk: ErpNextServiceDesk) -> None:
    assert desk.roles_of("ana.lopez@example.com") == {"System Manager", "Projects Manager"}
    assert desk.roles_of(DANA) == {"Support Team"}


def test_roles_of_raises_not_found_when_the_user_is_unknown(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    with pytest.raises(NotFound):
        desk.roles_of("nobody@example.com")


def test_full_name_reads_the_full_name_else_first_and_last_name(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    seeded.import_docs(
        "User", [{"email": "new@example.com", "first_name": "Noa", "last_name": "Li"}]
    )

    assert desk.full_name(DANA) == "Dana Kim"
    assert desk.full_name("new@example.com") == "Noa Li"


# -- phone numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+44 7700 900123", None, "+447700900123"),
        ("+44 (0)7700 900456", None, "+447700900456"),
        ("+1 (415) 555-0134", None, "+14155550134"),
        ("0044 7700.900.123", None, "+447700900123"),
        ("whatsapp:+447700900123", None, "+447700900123"),
        ("447700900123", None, "+447700900123"),
        ("+1 415 555 0134 ext. 12", None, "+14155550134"),
        ("07700 900123", "44", "+447700900123"),
        ("07700 900123", "+44", "+447700900123"),
        ("07700 900123", None, None),
        ("+44 7700 9001x", None, None),
        ("+0 7700 900123", None, None),
        ("+12345", None, None),
        ("+1234567890123456", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_normalise_e164_reads_numbers_as_people_type_them(
    raw: str | None, country: str | None, expected: str | None
) -> None:
    assert normalise_e164(raw, country) == expected


@pytest.mark.parametrize(
    ("phone", "customer"),
    [
        ("+447700900123", "Acme Builders"),  # stored "+44 7700 900123"
        ("+44 7700-900-456", "Cobalt Clinics"),  # stored "+44 (0)7700 900456"
        ("+14155550134", "Blue River Foods"),  # stored "+1 (415) 555-0134"
        ("+447700900124", None),  # one digit off
        ("+4917700900123", None),  # ends like Maria's number: a candidate, not a match
        ("not a number", None),
    ],
)
def test_customer_of_phone_finds_the_contacts_customer_however_the_number_is_written(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk, phone: str, customer: str | None
) -> None:
    assert desk.customer_of_phone(phone) == customer


def test_customer_of_phone_reads_national_numbers_with_the_sites_country_code(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    erp.insert(
        "Contact",
        {
            "first_name": "Olu",
            "phone_nos": [{"phone": "07700 900789", "is_primary_mobile_no": 1}],
            "links": [{"link_doctype": "Customer", "link_name": "Delta Works"}],
        },
    )

    national = ErpNextServiceDesk(client, DeskConfig(default_country_code="44"))

    assert national.customer_of_phone("+447700900789") == "Delta Works"
    assert ErpNextServiceDesk(client).customer_of_phone("+447700900789") is None


def test_client_phone_is_the_requests_contacts_mobile_in_e164(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    request = desk.request(issue_named(seeded, DOOR)["name"])

    assert desk.client_phone(request) == "+447700900456"


def test_client_phone_falls_back_to_the_customers_primary_contact_when_the_request_has_none(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    leak = issue_named(seeded, LEAK)
    seeded.set_value_silently("Issue", leak["name"], "contact", None)
    request = desk.request(leak["name"])

    # Acme Builders has two contacts: Maria (primary contact) and Sam.
    assert desk.client_phone(request) == "+447700900123"
    seeded.set_value_silently(
        "Customer", "Acme Builders", "customer_primary_contact", "Sam Ortiz-Acme Builders"
    )
    assert desk.client_phone(request) == "+14155550199"


def test_client_phone_is_none_when_neither_contact_nor_customer_has_a_mobile(
    seeded: ErpNextStandIn, desk: ErpNextServiceDesk
) -> None:
    created = desk.create_request(subject="s", description="d", priority="Low", raised_by=DANA)

    assert desk.client_phone(created) is None


# -- figures --------------------------------------------------------------------------------------


def _issue(
    erp: ErpNextStandIn, clock: SettableClock, opened: datetime, *changes: tuple[datetime, str]
) -> None:
    clock.now = opened
    name = erp.insert("Issue", {"subject": "s"})["name"]
    for at, status in changes:
        clock.now = at
        erp.save("Issue", name, {"status": status})


def _invoice(erp: ErpNextStandIn, posted: str, total: float, **values: Any) -> str:
    doc = {"customer": "Acme Builders", "grand_total": total, "posting_date": posted}
    return str(erp.insert("Sales Invoice", {**doc, "currency": "USD", **values})["name"])


def test_figures_count_open_requests_average_closing_hours_and_this_months_invoices(
    erp: ErpNextStandIn, desk: ErpNextServiceDesk, clock: SettableClock
) -> None:
    day = timedelta(days=1)
    _issue(erp, clock, START - 19 * day, (START - 19 * day + timedelta(hours=4), "Resolved"))
    _issue(erp, clock, START - 10 * day, (START - 9 * day, "Replied"), (START - 9 * day, "Closed"))
    _issue(erp, clock, START - 50 * day, (START - 45 * day, "Resolved"))  # before the 30 days
    _issue(erp, clock, START - 5 * day, (START - 4 * day, "Resolved"), (START - 3 * day, "Open"))
    _issue(erp, clock, START - day)
    _issue(erp, clock, START - day, (START, "Replied"))
    _issue(erp, clock, START, (START, "On Hold"))
    _invoice(erp, "2026-11-02", 100, docstatus=1)
    _invoice(erp, "2026-11-30", 250.5, docstatus=1)
    _invoice(erp, "2026-11-05", 999)  # a draft
    erp.cancel("Sales Invoice", _invoice(erp, "2026-11-06", 500, docstatus=1))
    _invoice(erp, "2026-10-31", 700, docstatus=1)  # last month
    clock.now = START

    figures = desk.figures(START)

    assert figures.open_requests == 4
    assert figures.average_hours_to_close == 14.0  # (4 h + 24 h) / 2
    assert (figures.invoiced_this_month, figures.currency) == (350.5, "USD")


def test_figures_report_none_and_zero_in_the_default_currency_when_nothing_happened(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    desk = ErpNextServiceDesk(client, DeskConfig(default_currency="EUR"))

    figures = desk.figures(START)

    assert (figures.open_requests, figures.average_hours_to_close) == (0, None)
    assert (figures.invoiced_this_month, figures.currency) == (0.0, "EUR")


def test_figures_sum_company_currency_totals_when_invoices_are_in_several_currencies(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    _invoice(erp, "2026-11-02", 100, docstatus=1, currency="GBP", base_grand_total=127.0)
    _invoice(erp, "2026-11-03", 50, docstatus=1, currency="USD", base_grand_total=50.0)

    figures = ErpNextServiceDesk(client, DeskConfig(default_currency="USD")).figures(START)

    assert (figures.invoiced_this_month, figures.currency) == (177.0, "USD")


def test_figures_take_the_month_in_the_sites_time_zone(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    _invoice(erp, "2026-11-30", 100, docstatus=1)
    _invoice(erp, "2026-12-01", 40, docstatus=1)
    desk = ErpNextServiceDesk(client, DeskConfig(site_timezone="Asia/Kolkata"))

    # 20:00 UTC on 30 November is 01:30 on 1 December in Kolkata.
    figures = desk.figures(datetime(2026, 11, 30, 20, 0, tzinfo=UTC))

    assert figures.invoiced_this_month == 40


def test_requests_read_opening_times_in_the_sites_time_zone(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    name = erp.insert(
        "Issue", {"subject": "s", "opening_date": "2026-11-20", "opening_time": "9:30:00"}
    )["name"]

    request = ErpNextServiceDesk(client, DeskConfig(site_timezone="Europe/Berlin")).request(name)

    assert request.opened == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
