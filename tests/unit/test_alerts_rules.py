"""Alert rules: the business's defaults, conditions, ALERT_RULES_JSON, and rendering that fits."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from shared.alerts.rules import (
    ELLIPSIS,
    TELEGRAM_TEXT_LIMIT,
    WHATSAPP_TEXT_LIMIT,
    AlertNames,
    Rule,
    assigned_users,
    check_template,
    content_variables,
    default_rules,
    format_amount,
    parse_rules,
    render,
)
from shared.core.envelope import Envelope, Json, document_envelope

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
SITE = "erp.example.com"
RULES = default_rules()


def envelope(doctype: str, event: str, **fields: Json) -> Envelope:
    """An ERPNext webhook's envelope; `name` and `modified` may be given among the fields."""
    doc: dict[str, Json] = {
        "doctype": doctype,
        "name": "ISS-2026-00042",
        "modified": "2026-12-02 09:00:00.000000",
        **fields,
    }
    return document_envelope(doc, doctype=doctype, event=event, site=SITE, received_at=NOW)


def alerts_for(env: Envelope, rules: tuple[Rule, ...] = RULES) -> set[tuple[str, str]]:
    return {(rule.id, to) for rule in rules if rule.matches(env) for to in rule.to}


def rule(rule_id: str) -> Rule:
    return next(r for r in RULES if r.id == rule_id)


# -- the default rules ----------------------------------------------------------------------------

TEAM = {("new_request", "chat:service_team")}
ONCALL = {("emergency_request", "chat:oncall")}
CLIENT = {("request_completed", "client_whatsapp")}


@pytest.mark.parametrize(
    ("doctype", "event", "fields", "expected"),
    [
        ("Issue", "after_insert", {"priority": "Medium", "status": "Open"}, TEAM),
        ("Issue", "after_insert", {"priority": "Urgent"}, TEAM | ONCALL),
        ("Issue", "after_insert", {"priority": "Emergency"}, TEAM | ONCALL),
        ("Issue", "after_insert", {}, TEAM),
        ("Issue", "on_update", {"priority": "Urgent", "status": "Open"}, set()),
        ("Issue", "on_update", {"status": "Resolved"}, CLIENT),
        ("Issue", "on_change", {"status": "Closed"}, CLIENT),
        ("Issue", "on_submit", {"status": "Closed"}, set()),
        ("Issue", "on_update", {"status": "Replied"}, set()),
        (
            "Sales Invoice",
            "after_insert",
            {"grand_total": 5000},
            {("new_sales_invoice", "chat:admins")},
        ),
        ("Purchase Invoice", "after_insert", {}, {("new_purchase_invoice", "chat:admins")}),
        ("Sales Invoice", "on_submit", {}, set()),
        ("Sales Invoice", "on_update", {"status": "Closed"}, set()),
        (
            "Service Report",
            "on_submit",
            {"service_request": "ISS-2026-00042"},
            {("service_report", "chat:admins"), ("service_report", "project_manager")},
        ),
        ("Service Report", "after_insert", {}, set()),
        ("Project", "after_insert", {"priority": "Urgent", "status": "Closed"}, set()),
    ],
)
def test_default_rules_alert_exactly_the_right_destinations_when_an_event_comes(
    doctype: str, event: str, fields: dict[str, Json], expected: set[tuple[str, str]]
) -> None:
    assert alerts_for(envelope(doctype, event, **fields)) == expected


def test_default_rules_follow_the_business_names_when_they_are_renamed() -> None:
    names = AlertNames(
        service_request="Service Request",
        emergency_priorities=("P1",),
        completed_statuses=("Done",),
        completed_content_sid="HX0123",
    )
    rules = default_rules(names)
    assert alerts_for(envelope("Service Request", "after_insert", priority="P1"), rules) == (
        TEAM | ONCALL
    )
    assert alerts_for(envelope("Service Request", "after_insert", priority="Urgent"), rules) == TEAM
    assert alerts_for(envelope("Service Request", "on_update", status="Done"), rules) == CLIENT
    assert alerts_for(envelope("Issue", "after_insert"), rules) == set()
    completed = next(r for r in rules if r.id == "request_completed")
    assert completed.content_sid == "HX0123"


def test_default_templates_are_valid_and_name_the_report_request_field() -> None:
    for each in RULES:
        check_template(each.template)
    assert "{service_request}" in rule("service_report").template


def test_once_per_document_rule_keys_one_alert_when_the_same_document_changes_again() -> None:
    completed = rule("request_completed")
    resolved = envelope("Issue", "on_update", status="Resolved", modified="2026-12-02 10:00:00")
    closed = envelope("Issue", "on_change", status="Closed", modified="2026-12-02 11:00:00")
    assert resolved.event_id != closed.event_id
    assert completed.alert_key(resolved, "client_whatsapp") == completed.alert_key(
        closed, "client_whatsapp"
    )
    other = envelope("Issue", "on_update", name="ISS-2026-00043", status="Resolved")
    assert completed.alert_key(other, "client_whatsapp") != completed.alert_key(
        resolved, "client_whatsapp"
    )
    assert completed.alert_key(resolved, "whatsapp:+15550001") != completed.alert_key(
        resolved, "whatsapp:+15550002"
    )


@pytest.mark.parametrize("rule_id", ["new_sales_invoice", "service_report"])
def test_invoice_and_report_rules_alert_once_per_document_when_it_is_sent_again(
    rule_id: str,
) -> None:
    chosen = rule(rule_id)
    doctype, event = chosen.doctype, chosen.events[0]
    first = envelope(doctype, event, name="DOC-1", modified="2026-12-02 10:00:00")
    again = envelope(doctype, event, name="DOC-1", modified="2026-12-02 10:05:00")
    assert chosen.alert_key(first, "chat:admins") == chosen.alert_key(again, "chat:admins")


def test_per_event_rule_keys_each_event_apart_when_the_document_changes() -> None:
    new_request = rule("new_request")
    first = envelope("Issue", "after_insert", modified="2026-12-02 10:00:00")
    redelivered = envelope("Issue", "after_insert", modified="2026-12-02 10:00:00")
    later = envelope("Issue", "after_insert", modified="2026-12-02 10:00:01")
    to = "chat:service_team"
    assert first.event_id == redelivered.event_id != later.event_id
    assert new_request.alert_key(first, to) == new_request.alert_key(redelivered, to)
    assert new_request.alert_key(first, to) != new_request.alert_key(later, to)
    assert new_request.alert_key(first, to) != rule("emergency_request").alert_key(first, to)


# -- when / unless --------------------------------------------------------------------------------


def test_when_needs_every_field_to_match_one_of_its_values() -> None:
    urgent_at_acme = Rule(
        id="r",
        doctype="Issue",
        events=("after_insert", "on_update"),
        template="{name}",
        to=("chat:admins",),
        when={"priority": ("Urgent", "High"), "customer": ("ACME",)},
    )
    assert urgent_at_acme.matches(envelope("Issue", "on_update", priority="High", customer="ACME"))
    assert not urgent_at_acme.matches(
        envelope("Issue", "on_update", priority="Low", customer="ACME")
    )
    assert not urgent_at_acme.matches(envelope("Issue", "on_update", priority="High", customer="X"))
    assert not urgent_at_acme.matches(envelope("Issue", "on_update", priority="High"))
    assert not urgent_at_acme.matches(
        envelope("Issue", "on_submit", priority="High", customer="ACME")
    )


def test_unless_refuses_when_any_of_its_fields_matches() -> None:
    not_internal = Rule(
        id="r",
        doctype="Issue",
        events=("after_insert",),
        template="{name}",
        to=("chat:admins",),
        unless={"customer": ("Internal",), "is_test": ("1",)},
    )
    assert not_internal.matches(envelope("Issue", "after_insert", customer="ACME", is_test=0))
    assert not not_internal.matches(envelope("Issue", "after_insert", customer="Internal"))
    assert not not_internal.matches(envelope("Issue", "after_insert", customer="ACME", is_test=1))


def test_conditions_compare_numbers_as_erpnext_text_when_the_document_has_floats() -> None:
    big = Rule(
        id="r",
        doctype="Sales Invoice",
        events=("after_insert",),
        template="{name}",
        to=("chat:admins",),
        when={"grand_total": ("5000",)},
    )
    assert big.matches(envelope("Sales Invoice", "after_insert", grand_total=5000.0))
    assert not big.matches(envelope("Sales Invoice", "after_insert", grand_total=5000.5))


# -- ALERT_RULES_JSON -----------------------------------------------------------------------------


def test_parse_rules_reads_every_field_when_the_list_is_valid() -> None:
    text = json.dumps(
        [
            {
                "id": "big_invoice",
                "doctype": "Sales Invoice",
                "events": ["on_submit", "on_update"],
                "template": "Big <b>{name}</b>: {amount}",
                "to": ["chat:admins", "chat:-100123", "whatsapp:+15551234567", "assignee"],
                "when": {"status": ["Unpaid", "Overdue"], "currency": "USD"},
                "unless": {"is_return": 1},
                "once_per_document": True,
                "content_sid": "HX9",
                "content_variables": ["name", "amount"],
            },
            {"id": "minimal", "doctype": "Issue", "template": "{name}", "to": ["project_manager"]},
        ]
    )
    big, minimal = parse_rules(text)
    assert big == Rule(
        id="big_invoice",
        doctype="Sales Invoice",
        events=("on_submit", "on_update"),
        template="Big <b>{name}</b>: {amount}",
        to=("chat:admins", "chat:-100123", "whatsapp:+15551234567", "assignee"),
        when={"status": ("Unpaid", "Overdue"), "currency": ("USD",)},
        unless={"is_return": ("1",)},
        once_per_document=True,
        content_sid="HX9",
        content_variables=("name", "amount"),
    )
    assert minimal.events == ("after_insert",)
    assert minimal.when == {} and minimal.unless == {} and not minimal.once_per_document
    assert parse_rules("[]") == ()


def _one(**changes: object) -> str:
    row: dict[str, object] = {
        "id": "r1",
        "doctype": "Issue",
        "template": "{name}",
        "to": ["assignee"],
    }
    row.update(changes)
    return json.dumps([row])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{", "not JSON"),
        ('{"id": "r1"}', "must be a list of rules"),
        ('"rules"', "must be a list of rules"),
        ('["r1"]', "rule 1 is not an object"),
        (_one(to=["telegram:admins"]), r"rule r1: unknown destinations \['telegram:admins'\]"),
        (_one(to=["whatsapp:0044"]), r"unknown destinations \['whatsapp:0044'\]"),
        (_one(to=[]), "rule r1: unknown destinations"),
        (_one(to="chat:admins"), "rule r1: to must be a list of text"),
        (_one(template="Hi {0}"), r"rule r1: template placeholder \{0\} must be a plain field"),
        (_one(template="Hi {a.b}"), r"template placeholder \{a.b\} must be a plain field"),
        (_one(template="Hi {a[0]}"), r"template placeholder \{a\[0\]\}"),
        (_one(template="Hi {}"), r"template placeholder \{\} must be a plain field"),
        (_one(template="Total {amount:,.2f}"), r"template placeholder \{amount:,.2f\}"),
        (_one(template="Hi {name!r}"), r"template placeholder \{name!r\}"),
        (_one(template="Hi {name"), "rule r1: expected '}'"),
        (_one(template="Hi name}"), "rule r1: Single '}'"),
        (_one(template="Hi { name"), "rule r1: "),
        (_one(template="   "), "rule r1: template must be text"),
        (_one(template=7), "rule r1: template must be text"),
        (_one(events="on_update"), "rule r1: events must be a list of text"),
        (_one(when=["status"]), "rule r1: conditions must map a field"),
        (_one(to=None), "rule r1: "),
        (
            json.dumps([{"id": "r1", "doctype": "Issue", "template": "{name}"}]),
            "rule r1: missing 'to'",
        ),
        (json.dumps([{"doctype": "Issue", "to": ["assignee"]}]), "rule 1: missing 'template'"),
    ],
)
def test_parse_rules_refuses_with_a_clear_message_when_a_rule_is_bad(
    text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rules(text)


def test_parse_rules_refuses_when_two_rules_share_an_id() -> None:
    row = {"id": "same", "doctype": "Issue", "template": "{name}", "to": ["assignee"]}
    with pytest.raises(ValueError, match="rule ids must be unique"):
        parse_rules(json.dumps([row, {**row, "doctype": "Task"}]))


# -- rendering ------------------------------------------------------------------------------------


class _TagChecker(HTMLParser):
    """Fails on a tag closed out of order or left open; remembers the text it saw."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


def assert_valid_telegram_html(text: str) -> str:
    """Tags balance, no '<' or '&' stands alone; returns the text a reader sees."""
    assert "&" not in _ENTITY.sub("", text), f"dangling & in {text[-40:]!r}"
    assert not re.search(r"<(?!/?[a-z]+(?: [^<>]*)?>)", text), "a '<' that starts no tag"
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.open == [], f"left open: {checker.open}"
    return "".join(checker.text)


INVOICE_TEMPLATE = rule("new_sales_invoice").template


def test_invoice_alert_reads_as_the_business_wrote_it() -> None:
    text = render(
        INVOICE_TEMPLATE,
        {
            "name": "INV-0005",
            "owner_name": "PM John",
            "project": "ACME",
            "amount": format_amount("5000", "USD"),
            "link": "https://erp.example.com/app/sales-invoice/INV-0005",
        },
        limit=TELEGRAM_TEXT_LIMIT,
        as_html=True,
    )
    assert text == (
        "🧾 Invoice <b>INV-0005</b> uploaded by PM John for Project ACME, amount 5,000.00 USD\n"
        "https://erp.example.com/app/sales-invoice/INV-0005"
    )


def test_render_escapes_html_in_values_and_keeps_the_templates_tags() -> None:
    text = render(
        "<b>{name}</b> by <i>{owner}</i>: {subject}",
        {"name": "<script>alert(1)</script>", "owner": "Tom & Jerry", "subject": "a<b>c</b>"},
        limit=TELEGRAM_TEXT_LIMIT,
        as_html=True,
    )
    assert text == (
        "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b> by <i>Tom &amp; Jerry</i>: "
        "a&lt;b&gt;c&lt;/b&gt;"
    )
    assert assert_valid_telegram_html(text) == "<script>alert(1)</script> by Tom & Jerry: a<b>c</b>"


def test_render_fills_a_missing_value_with_a_dash_and_shows_none_as_empty() -> None:
    text = render(
        "{name} / {customer} / {project}", {"name": "X", "customer": None}, limit=100, as_html=True
    )
    assert text == "X /  / —"


def test_render_cuts_the_longest_value_first_to_fit_the_limit_exactly() -> None:
    template = "<b>{name}</b>: {subject}\n{description}"
    values = {"name": "ISS-1", "subject": "s" * 300, "description": "d" * 5000}
    text = render(template, values, limit=TELEGRAM_TEXT_LIMIT, as_html=True)
    assert len(text) == TELEGRAM_TEXT_LIMIT
    assert text.startswith("<b>ISS-1</b>: " + "s" * 300 + "\nddd")
    assert text.endswith("d" + ELLIPSIS)
    assert_valid_telegram_html(text)


def test_render_cuts_a_second_value_when_the_longest_alone_cannot_make_it_fit() -> None:
    values = {"subject": "s" * 3000, "description": "d" * 2000, "name": "ISS-1"}
    text = render("{name} {subject} {description}", values, limit=100, as_html=True)
    assert len(text) == 100
    name, subject, description = text.split(" ")
    assert name == "ISS-1"
    assert subject == "s" + ELLIPSIS
    assert description == "d" * 90 + ELLIPSIS


def test_render_never_cuts_an_entity_or_a_tag_when_values_are_full_of_html() -> None:
    template = '<b>{name}</b> <i>{subject}</i> <a href="https://erp.example.com">{link}</a>'
    values = {"name": "A&B " * 40, "subject": '<x> & "q" ' * 900, "link": "open"}
    for limit in (200, 1000, 1001, 1002, 1003, TELEGRAM_TEXT_LIMIT):
        text = render(template, values, limit=limit, as_html=True)
        # Short of the limit only by an entity that did not fit, and a space before it.
        assert limit - len("&amp; ") <= len(text) <= limit
        seen = assert_valid_telegram_html(text)
        assert seen.endswith(f"{ELLIPSIS} open")


def test_render_ignores_values_the_template_does_not_show_when_cutting() -> None:
    values = {"name": "ISS-1", "subject": "s" * 200, "description": "d" * 9000}
    text = render("{name}: {subject}", values, limit=100, as_html=True)
    assert text == "ISS-1: " + "s" * 92 + ELLIPSIS


def test_plain_render_drops_the_templates_tags_and_leaves_values_as_written() -> None:
    text = render(
        "<b>{name}</b> &amp; <i>{subject}</i>",
        {"name": "ISS-1", "subject": "pipes <DN50> & valves"},
        limit=WHATSAPP_TEXT_LIMIT,
        as_html=False,
    )
    assert text == "ISS-1 & pipes <DN50> & valves"


def test_plain_render_fits_whatsapps_limit_exactly_when_a_value_is_long() -> None:
    completed = rule("request_completed")
    text = render(
        completed.template,
        {"name": "ISS-1", "subject": "word & more " * 500},
        limit=WHATSAPP_TEXT_LIMIT,
        as_html=False,
    )
    assert len(text) == WHATSAPP_TEXT_LIMIT
    assert text.startswith("Your service request ISS-1 (word & more")
    assert text.endswith(f"{ELLIPSIS}) is completed. Thank you!")


@pytest.mark.parametrize("as_html", [True, False])
def test_render_cuts_at_a_word_when_the_template_alone_is_too_long(as_html: bool) -> None:
    template = "<b>{name}</b> " + "long words here " * 300 + "{subject}"
    text = render(template, {"name": "ISS-1", "subject": "x" * 50}, limit=1000, as_html=as_html)
    assert len(text) <= 1000
    assert (
        text.endswith("here" + ELLIPSIS)
        or text.endswith("long" + ELLIPSIS)
        or text.endswith("words" + ELLIPSIS)
    )
    assert "<b>" not in text
    assert assert_valid_telegram_html(text) == text


def test_render_cuts_no_entity_when_a_template_without_spaces_is_too_long() -> None:
    template = "&amp;" * 300 + "{name}"
    for limit in range(100, 106):
        text = render(template, {"name": "n"}, limit=limit, as_html=True)
        assert len(text) <= limit
        assert_valid_telegram_html(text)


def test_render_returns_a_text_that_fits_unchanged() -> None:
    assert render("<b>{name}</b>", {"name": "ISS-1"}, limit=12, as_html=True) == "<b>ISS-1</b>"


# -- values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("5000", "USD", "5,000.00 USD"),
        (5000, "USD", "5,000.00 USD"),
        (1234567.891, "EUR", "1,234,567.89 EUR"),
        ("0", "USD", "0.00 USD"),
        (12.5, None, "12.50"),
        ("n/a", "USD", "n/a"),
        (None, "USD", ""),
    ],
)
def test_format_amount_prints_like_erpnext(amount: object, currency: object, expected: str) -> None:
    assert format_amount(amount, currency) == expected


@pytest.mark.parametrize(
    ("assign", "expected"),
    [
        ('["ana@example.com", "ben@example.com"]', ["ana@example.com", "ben@example.com"]),
        (
            ["ana@example.com", "", 7, None, "ben@example.com"],
            ["ana@example.com", "ben@example.com"],
        ),
        ('["ana@example.com", 3]', ["ana@example.com"]),
        ("not json", []),
        ('{"user": "ana@example.com"}', []),
        ('"ana@example.com"', []),
        ("", []),
        ("   ", []),
        (None, []),
        (42, []),
    ],
)
def test_assigned_users_reads_frappes_assign_field(assign: Json, expected: list[str]) -> None:
    assert assigned_users({"_assign": assign}) == expected
    assert assigned_users({}) == []


def test_content_variables_number_the_rules_placeholders_for_twilio() -> None:
    completed = rule("request_completed")
    variables = content_variables(completed, {"name": "ISS-1", "subject": "x" * 500})
    assert variables == {"1": "ISS-1", "2": "x" * 200}
