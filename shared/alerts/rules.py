"""Alert rules as data: which event, under which condition, says what, to whom.

A rule matches an envelope by doctype, event and field conditions; it names a template and its
destinations. Destinations are words the notifier resolves against ERPNext and the chat links:

    chat:<name or id>   a configured chat (service_team, oncall, admins) or a literal chat id
    assignee            the linked chats of the users the document is assigned to (`_assign`)
    project_manager     the linked chat of the project's manager (the request's, for a report)
    client_whatsapp     the WhatsApp number of the request's client (contact, else customer)
    whatsapp:+E164      a fixed WhatsApp number

Templates are Telegram HTML: the template's own tags stay, every value is escaped, and long
values are shortened (before escaping, so no entity or tag is ever cut) until the text fits.
"""

from __future__ import annotations

import html
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from shared.core.envelope import Envelope

TELEGRAM_TEXT_LIMIT = 4096
REPEAT_NOTICE = "<i>Sent again after an interruption: you may have had this one already.</i>\n"
"""Heads a Telegram alert whose earlier send may have arrived (the answer was lost, or the
sender crashed): Telegram takes no idempotency key and a bot cannot read a chat, so a second
copy is possible and must never be unexplained."""
TELEGRAM_ALERT_LIMIT = TELEGRAM_TEXT_LIMIT - len(REPEAT_NOTICE)
"""Alert texts leave room for the notice."""
WHATSAPP_TEXT_LIMIT = 1600
"""Twilio's limit for a WhatsApp body."""
ELLIPSIS = "…"
_TAG = re.compile(r"<[^>]+>")
_PARTIAL_ENTITY = re.compile(r"&#?\w*$")
_DESTINATION = re.compile(
    r"^(chat:[\w\-]+|assignee|project_manager|client_whatsapp|whatsapp:\+\d{6,15})$"
)

Channel = Literal["telegram", "whatsapp"]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    doctype: str
    events: tuple[str, ...]
    template: str
    to: tuple[str, ...]
    when: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """field -> accepted values (any of them); every field must match."""
    unless: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    once_per_document: bool = False
    """One alert per document and destination, whatever later events say (e.g. 'completed')."""
    content_sid: str | None = None
    """The approved WhatsApp template used outside the 24-hour window."""
    content_variables: tuple[str, ...] = ()
    """Placeholders filling the template's {{1}}, {{2}} ... in order."""

    def matches(self, envelope: Envelope) -> bool:
        if envelope.doctype != self.doctype or envelope.event not in self.events:
            return False
        doc = envelope.doc
        return all(_text(doc.get(key)) in values for key, values in self.when.items()) and not any(
            _text(doc.get(key)) in values for key, values in self.unless.items()
        )

    def alert_key(self, envelope: Envelope, destination: str) -> str:
        """What makes an alert unique: redeliveries of an event never make a second one."""
        subject = (
            f"{envelope.site}:{envelope.doctype}:{envelope.name}"
            if self.once_per_document
            else envelope.event_id
        )
        return f"{self.id}|{subject}|{destination}"


@dataclass(frozen=True, slots=True)
class AlertNames:
    """The business words the default rules use: doctypes, priorities, statuses."""

    service_request: str = "Issue"
    service_report: str = "Service Report"
    report_request_field: str = "service_request"
    emergency_priorities: tuple[str, ...] = ("Urgent", "Emergency")
    completed_statuses: tuple[str, ...] = ("Resolved", "Closed")
    completed_content_sid: str | None = None


def default_rules(names: AlertNames = AlertNames()) -> tuple[Rule, ...]:
    """The business's rules: requests to the team (emergencies to on-call too), invoices to the
    admins, reports to the admins and the request's PM, completion to the client on WhatsApp."""
    request = names.service_request
    return (
        Rule(
            id="new_request",
            doctype=request,
            events=("after_insert",),
            template="🛠 New service request <b>{name}</b> ({priority}): {subject}\n"
            "Customer: {customer}\n{link}",
            to=("chat:service_team",),
        ),
        Rule(
            id="emergency_request",
            doctype=request,
            events=("after_insert",),
            when={"priority": names.emergency_priorities},
            template="🚨 EMERGENCY request <b>{name}</b>: {subject}\nCustomer: {customer}\n{link}",
            to=("chat:oncall",),
        ),
        *(
            Rule(
                id=f"new_{doctype.lower().replace(' ', '_')}",
                doctype=doctype,
                events=("after_insert",),
                template="🧾 Invoice <b>{name}</b> uploaded by {owner_name} for Project "
                "{project}, amount {amount}\n{link}",
                to=("chat:admins",),
                once_per_document=True,
            )
            for doctype in ("Sales Invoice", "Purchase Invoice")
        ),
        Rule(
            id="service_report",
            doctype=names.service_report,
            events=("on_submit",),
            template="📋 Service report <b>{name}</b> submitted for request "
            f"{{{names.report_request_field}}} by {{owner_name}}\n{{link}}",
            to=("chat:admins", "project_manager"),
            once_per_document=True,
        ),
        Rule(
            id="request_completed",
            doctype=request,
            events=("on_update", "on_change"),
            when={"status": names.completed_statuses},
            template="Your service request {name} ({subject}) is completed. Thank you!",
            to=("client_whatsapp",),
            once_per_document=True,
            content_sid=names.completed_content_sid,
            content_variables=("name", "subject"),
        ),
    )


def parse_rules(text: str) -> tuple[Rule, ...]:
    """ALERT_RULES_JSON: a list of rules; raises ValueError naming the first bad one."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from exc
    if not isinstance(rows, list):
        raise ValueError("must be a list of rules")
    rules = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ValueError(f"rule {number} is not an object")
        try:
            rules.append(_rule(row))
        except KeyError as exc:
            raise ValueError(f"rule {row.get('id', number)}: missing {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"rule {row.get('id', number)}: {exc}") from None
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise ValueError("rule ids must be unique")
    return tuple(rules)


def _rule(row: Mapping[str, object]) -> Rule:
    to = _strings(row["to"], "to")
    bad = [destination for destination in to if not _DESTINATION.match(destination)]
    if bad or not to:
        raise ValueError(f"unknown destinations {bad or to}")
    template = row["template"]
    if not isinstance(template, str) or not template.strip():
        raise ValueError("template must be text")
    check_template(template)
    content_sid = row.get("content_sid")
    return Rule(
        id=str(row["id"]),
        doctype=str(row["doctype"]),
        events=_strings(row.get("events", ["after_insert"]), "events"),
        template=template,
        to=to,
        when=_conditions(row.get("when", {})),
        unless=_conditions(row.get("unless", {})),
        once_per_document=bool(row.get("once_per_document", False)),
        content_sid=str(content_sid) if content_sid else None,
        content_variables=_strings(row.get("content_variables", []), "content_variables"),
    )


def _strings(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{what} must be a list of text")
    return tuple(value)


def _conditions(value: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ValueError("conditions must map a field to a value or a list of values")
    return {
        str(key): tuple(map(str, accepted)) if isinstance(accepted, list) else (str(accepted),)
        for key, accepted in value.items()
    }


def check_template(template: str) -> None:
    """Refuse a template that `str.format` could not fill (a stray brace, a positional field)."""
    for _, field_name, format_spec, conversion in string.Formatter().parse(template):
        if field_name is None:
            continue
        # Values are filled as text, by name: an index, an attribute, a conversion or a number
        # format would fail (or leak) only when the first alert is rendered.
        if not field_name.isidentifier() or format_spec or conversion:
            shown = field_name + (f"!{conversion}" if conversion else "")
            shown += f":{format_spec}" if format_spec else ""
            raise ValueError(f"template placeholder {{{shown}}} must be a plain field name")


# -- rendering ------------------------------------------------------------------------------------


def render(template: str, values: Mapping[str, object], *, limit: int, as_html: bool) -> str:
    """Fill `template`; values escaped for HTML (or tags dropped for plain text), cut to fit.

    Values are shortened before escaping, longest first, so the result is always valid HTML.
    """
    texts = {key: _text(value) for key, value in values.items()}
    base = template if as_html else html.unescape(_TAG.sub("", template))
    used = set(template_values(base))
    while True:
        escaped = {
            key: html.escape(text, quote=False) if as_html else text for key, text in texts.items()
        }
        result = base.format_map(_Missing(escaped))
        excess = len(result) - limit
        if excess <= 0:
            return result
        # Only a value the template shows, and one a cut still shortens ("x…" is as short as it
        # gets): otherwise the template alone is too long, and cutting values would never end.
        shortenable = [key for key in texts if key in used and len(texts[key]) > 1 + len(ELLIPSIS)]
        longest = max(shortenable, key=lambda key: len(escaped[key]), default=None)
        if longest is None:
            return (
                _cut_plain(result, limit)
                if not as_html
                else _cut_plain(_TAG.sub("", result), limit, as_html=True)
            )
        room = len(escaped[longest]) - excess - len(ELLIPSIS)
        keep = max(1, _prefix_fitting(texts[longest], room, as_html=as_html))
        texts[longest] = texts[longest][:keep].rstrip() + ELLIPSIS


def _prefix_fitting(text: str, room: int, *, as_html: bool) -> int:
    """How many characters of `text` take at most `room` once escaped ('&' takes five)."""
    if not as_html:
        return max(0, room)
    taken = 0
    for index, char in enumerate(text):
        taken += len(html.escape(char, quote=False))
        if taken > room:
            return index
    return len(text)


def _cut_plain(text: str, limit: int, *, as_html: bool = False) -> str:
    """Last resort when the template alone is too long: plain text, cut at a word."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    if as_html:
        cut = _PARTIAL_ENTITY.sub("", cut)
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + ELLIPSIS


def template_values(template: str) -> tuple[str, ...]:
    """The placeholders a template names."""
    return tuple(
        name for _, name, _, _ in string.Formatter().parse(template) if name is not None and name
    )


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "—"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_amount(amount: object, currency: object) -> str:
    """5000 and USD -> '5,000.00 USD'; what ERPNext would print, minus locale."""
    try:
        number = float(str(amount))
    except ValueError:
        return _text(amount)
    text = f"{number:,.2f}"
    return f"{text} {currency}" if currency else text


@dataclass(frozen=True, slots=True)
class Alert:
    """One message to one destination, ready for the outbox."""

    key: str
    rule: str
    channel: Channel
    to: str
    """A Telegram chat id (as text) or an E.164 number."""
    text: str
    event_id: str
    entity: str
    content_sid: str | None = None
    content_variables: Mapping[str, str] = field(default_factory=dict)


def content_variables(rule: Rule, values: Mapping[str, object]) -> dict[str, str]:
    """Twilio's {"1": ..., "2": ...} for the rule's approved template."""
    return {
        str(position): _text(values.get(name))[:200]
        for position, name in enumerate(rule.content_variables, 1)
    }


def assigned_users(doc: Mapping[str, object]) -> list[str]:
    """Frappe keeps assignments as JSON text in `_assign` (a list of user ids)."""
    raw = doc.get("_assign")
    if isinstance(raw, list):
        users: Sequence[object] = raw
    elif isinstance(raw, str) and raw.strip():
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return []
        users = parsed if isinstance(parsed, list) else []
    else:
        return []
    return [user for user in users if isinstance(user, str) and user]
