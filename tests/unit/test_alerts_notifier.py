"""AlertPlanner: rules into alerts with their destinations resolved (chats, linked people, the
client's WhatsApp), their texts filled, and nothing sent to people who have no linked chat."""

from __future__ import annotations

from datetime import datetime

import pytest

from shared.alerts.notifier import AlertPlanner, NotifierConfig
from shared.alerts.rules import AlertNames, default_rules
from shared.core.envelope import Envelope, Json, document_envelope
from shared.errors import ConfigurationError
from shared.servicedesk.ports import ServiceRequest
from tests.helpers.fakes import InMemoryBotStore, InMemoryPeople, InMemoryServiceDesk

NOW = datetime.fromisoformat("2026-12-01T09:00:00+00:00")
CHATS = {"service_team": -100, "oncall": -200, "admins": -300}


NAMES = {"ana@x.com": "Ana Lopez", "dana@x.com": "Dana Kim"}
MANAGERS = {"PROJ-1": "ana@x.com"}
LINKED = {"ana@x.com": 11, "dana@x.com": 44}
REQUESTS = {
    "ISS-1": ServiceRequest("ISS-1", "Leak", "Resolved", "High", "Acme", "PROJ-1"),
    "ISS-2": ServiceRequest("ISS-2", "Door", "Resolved", "Low", "Nobody", None),
}


def planner(config: NotifierConfig | None = None) -> AlertPlanner:
    names = AlertNames(completed_content_sid="HX123")
    default = NotifierConfig(
        rules=default_rules(names), chats=CHATS, site_url="https://erp.example.com", names=names
    )
    links = InMemoryBotStore()
    for user, chat in LINKED.items():
        links.link(chat, user)
    return AlertPlanner(
        config=config or default,
        directory=InMemoryPeople(NAMES, MANAGERS),
        links=links,
        desk=InMemoryServiceDesk(requests=REQUESTS, phones={"Acme": "+447700900123"}),
    )


def event(doctype: str, event_name: str, **fields: Json) -> Envelope:
    doc: dict[str, Json] = {"doctype": doctype, "name": "X-1", "modified": "2026-12-01 09:00:00"}
    doc.update(fields)
    return document_envelope(
        doc, doctype=doctype, event=event_name, site="erp.example.com", received_at=NOW
    )


def test_a_new_invoice_reads_as_the_business_wrote_it_to_the_admins() -> None:
    invoice = event(
        "Sales Invoice",
        "after_insert",
        name="INV-0005",
        owner="ana@x.com",
        project="PROJ-1",
        grand_total=5000,
        currency="USD",
    )
    (alert,) = planner().plan(invoice)
    assert (alert.channel, alert.to) == ("telegram", "-300")
    assert alert.text.startswith(
        "🧾 Invoice <b>INV-0005</b> uploaded by Ana Lopez for Project PROJ-1, amount 5,000.00 USD"
    )
    assert "https://erp.example.com/app/sales-invoice/INV-0005" in alert.text


def test_the_link_keeps_a_name_with_url_characters_in_one_path_segment() -> None:
    invoice = event("Sales Invoice", "after_insert", name="INV 2026/07#3?x", owner="ana@x.com")
    (alert,) = planner().plan(invoice)
    assert "https://erp.example.com/app/sales-invoice/INV%202026%2F07%233%3Fx" in alert.text


def test_a_service_report_goes_to_the_admins_and_the_requests_pm_through_the_request() -> None:
    report = event("Service Report", "on_submit", name="SR-1", service_request="ISS-1")
    alerts = planner().plan(report)
    assert sorted((a.channel, a.to) for a in alerts) == [("telegram", "-300"), ("telegram", "11")]
    assert all("ISS-1" in a.text for a in alerts)


def test_assignees_without_a_linked_chat_get_nothing_and_break_nothing() -> None:
    settings = planner().config
    rule = settings.rules[0]
    custom = type(rule)(
        id="to_engineers",
        doctype="Issue",
        events=("after_insert",),
        template="{subject}",
        to=("assignee",),
    )
    planner_with = planner(NotifierConfig(rules=(custom,), chats=CHATS))
    issue = event("Issue", "after_insert", subject="Leak", _assign='["dana@x.com", "nobody@x.com"]')
    assert [(a.to, a.text) for a in planner_with.plan(issue)] == [("44", "Leak")]


def test_a_completed_request_goes_to_the_clients_whatsapp_with_its_template() -> None:
    done = event("Issue", "on_update", name="ISS-1", status="Resolved", subject="Leak")
    (alert,) = planner().plan(done)
    assert (alert.channel, alert.to) == ("whatsapp", "+447700900123")
    assert alert.text == "Your service request ISS-1 (Leak) is completed. Thank you!"
    assert alert.content_sid == "HX123"
    assert alert.content_variables == {"1": "ISS-1", "2": "Leak"}
    # Once per document: the next save of the resolved request makes the same alert key.
    again = event("Issue", "on_update", name="ISS-1", status="Resolved", subject="Leak!")
    assert planner().plan(again)[0].key == alert.key


def test_a_client_with_no_mobile_gets_nothing() -> None:
    done = event("Issue", "on_update", name="ISS-2", status="Closed", subject="Door")
    assert planner().plan(done) == []


def test_an_unconfigured_chat_name_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="tea_room"):
        NotifierConfig(rules=(), chats=CHATS).chat("tea_room")
