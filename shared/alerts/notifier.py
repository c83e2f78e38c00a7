"""Alerts from ERPNext events to Telegram and WhatsApp: each once, within each channel's limits.

A delivery turns its event into alerts by the rules (shared/alerts/rules.py) and queues the new
ones in the outbox, whose key makes a redelivered event or a second instance add nothing. Then it
tries to become the one drainer (a lease): the drainer sends what is queued, paced below
Telegram's limits (shared/alerts/pacing.py, primed with what was sent in the last minute by anyone),
honours a retry_after, and marks each alert sent. A failure becomes an error record, never a
block on ERPNext; a backlog longer than one call's budget is taken up by the next delivery or the
scheduled drain.

Each send is marked in the outbox before it starts. An alert whose send may have arrived without
our learning so (its answer lost, or its sender killed) is in doubt: for WhatsApp, Twilio's list
of messages tells whether it went, and it is sent only if not; Telegram takes no idempotency key
and a bot cannot read a chat, so it goes again headed by a notice that it may be a repeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shared.alerts.pacing import Destination, Limits, Pacer, Slot
from shared.alerts.ports import (
    AlertOutbox,
    Directory,
    QueuedAlert,
    ReplyChannel,
    TelegramSender,
    TelegramSession,
    WhatsApp,
    WhatsAppSessions,
)
from shared.alerts.rules import (
    REPEAT_NOTICE,
    TELEGRAM_ALERT_LIMIT,
    WHATSAPP_TEXT_LIMIT,
    Alert,
    AlertNames,
    Channel,
    Rule,
    assigned_users,
    content_variables,
    format_amount,
    render,
    template_values,
)
from shared.core.documents import desk_url
from shared.core.envelope import Envelope
from shared.errors import (
    BridgeError,
    ChatMoved,
    ConfigurationError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from shared.platform import logs
from shared.platform.failures import FailureReport
from shared.platform.ports import ErrorLog, Lease
from shared.servicedesk.ports import ChatLinks, DeskFigures, ServiceDesk

log = logging.getLogger(__name__)

INTEGRATION = "notifier"
WHATSAPP_WINDOW = timedelta(hours=24)
CLOCK_SKEW = timedelta(seconds=5)
"""Allowed between our clock and Twilio's when looking for a message sent in doubt."""


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    rules: tuple[Rule, ...]
    chats: Mapping[str, int]
    """Named chats the rules send to: service_team, oncall, admins ..."""
    site_url: str = ""
    """ERPNext's public address, for links in messages."""
    names: AlertNames = field(default_factory=AlertNames)
    telegram_limits: Limits = field(default_factory=Limits)
    whatsapp_limits: Limits = field(
        # Phone numbers: no groups, so no group window to remember.
        default_factory=lambda: Limits(global_per_window=10, group_window_s=0.0, margin_s=0.0)
    )
    window_margin: timedelta = timedelta(minutes=30)
    """Free text only this long before the 24-hour window closes; a template after."""
    budget_s: float = 20.0
    """How long one call drains before leaving the rest to the next."""
    in_flight: int = 16
    attempts: int = 5

    def chat(self, name: str) -> int:
        if name in self.chats:
            return self.chats[name]
        try:
            return int(name)
        except ValueError:
            raise ConfigurationError(
                f"alert rules name the chat {name!r}, which is not configured"
            ) from None


@dataclass(frozen=True, slots=True)
class DrainReport:
    sent: int = 0
    throttled: int = 0
    failed: int = 0
    deferred: int = 0

    def __add__(self, other: DrainReport) -> DrainReport:
        return DrainReport(
            self.sent + other.sent,
            self.throttled + other.throttled,
            self.failed + other.failed,
            self.deferred + other.deferred,
        )


@dataclass(frozen=True)
class AlertPlanner:
    """Envelope -> alerts: the rules that match, their texts, their resolved destinations."""

    config: NotifierConfig
    directory: Directory
    links: ChatLinks
    desk: ServiceDesk

    def plan(self, envelope: Envelope) -> list[Alert]:
        alerts: list[Alert] = []
        for rule in self.config.rules:
            if not rule.matches(envelope):
                continue
            values = self._values(envelope, rule)
            for destination in rule.to:
                for channel, to in self._resolve(destination, envelope):
                    telegram = channel == "telegram"
                    alerts.append(
                        Alert(
                            key=rule.alert_key(envelope, destination + ":" + to),
                            rule=rule.id,
                            channel=channel,
                            to=to,
                            text=render(
                                rule.template,
                                values,
                                limit=TELEGRAM_ALERT_LIMIT if telegram else WHATSAPP_TEXT_LIMIT,
                                as_html=telegram,
                            ),
                            event_id=envelope.event_id,
                            entity=f"{envelope.doctype}/{envelope.name}",
                            content_sid=None if telegram else rule.content_sid,
                            content_variables={} if telegram else content_variables(rule, values),
                        )
                    )
        return alerts

    def _values(self, envelope: Envelope, rule: Rule) -> dict[str, object]:
        doc = envelope.doc
        values: dict[str, object] = {
            key: value for key, value in doc.items() if isinstance(value, (str, int, float))
        }
        values["name"] = envelope.name
        wanted = set(template_values(rule.template)) | set(rule.content_variables)
        if "link" in wanted:
            values["link"] = desk_url(self.config.site_url, envelope.doctype, envelope.name)
        if "amount" in wanted:
            values["amount"] = format_amount(doc.get("grand_total"), doc.get("currency"))
        owner = doc.get("owner")
        if "owner_name" in wanted and isinstance(owner, str):
            values["owner_name"] = self.directory.user_full_name(owner) or owner
        project = doc.get("project")
        if "project_manager_name" in wanted and isinstance(project, str) and project:
            manager = self.directory.project_manager_user(project)
            values["project_manager_name"] = (
                (self.directory.user_full_name(manager) or manager) if manager else ""
            )
        return values

    def _resolve(self, destination: str, envelope: Envelope) -> list[tuple[Channel, str]]:
        kind, _, value = destination.partition(":")
        if kind == "chat":
            return [("telegram", str(self.config.chat(value)))]
        if kind == "whatsapp":
            return [("whatsapp", value)]
        if kind == "assignee":
            users = assigned_users(envelope.doc)
            return [("telegram", str(chat)) for chat in map(self.links.chat_of, users) if chat]
        if kind == "project_manager":
            manager = self._manager_of(envelope)
            chat = self.links.chat_of(manager) if manager else None
            return [("telegram", str(chat))] if chat else []
        if kind == "client_whatsapp":
            request_id = self._request_id(envelope)
            phone = self.desk.client_phone(self.desk.request(request_id)) if request_id else None
            return [("whatsapp", phone)] if phone else []
        raise ConfigurationError(f"unknown alert destination {destination!r}")

    def _request_id(self, envelope: Envelope) -> str | None:
        if envelope.doctype == self.config.names.service_request:
            return envelope.name
        linked = envelope.doc.get(self.config.names.report_request_field)
        return linked if isinstance(linked, str) and linked else None

    def _manager_of(self, envelope: Envelope) -> str | None:
        project = envelope.doc.get("project")
        if not (isinstance(project, str) and project):
            request_id = self._request_id(envelope)
            project = self.desk.request(request_id).project if request_id else None
        return self.directory.project_manager_user(project) if project else None


@dataclass(frozen=True)
class AlertDrainer:
    """Sends the outbox as its one drainer at a time, at the channels' pace."""

    outbox: AlertOutbox
    lease: Lease
    telegram: TelegramSender
    whatsapp: WhatsApp | None
    sessions: WhatsAppSessions
    errors: ErrorLog
    config: NotifierConfig
    owner: str
    clock: Callable[[], datetime]
    lease_ttl: timedelta = timedelta(seconds=30)
    batch: int = 500

    def drain(self, budget_s: float | None = None) -> DrainReport:
        """Drain as the lease holder until nothing is due or the budget is spent."""
        deadline = time.monotonic() + (self.config.budget_s if budget_s is None else budget_s)
        holder = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        report = DrainReport()
        while self.lease.acquire(holder, now=self.clock(), ttl=self.lease_ttl):
            try:
                report += asyncio.run(_Round(self, holder, deadline).run())
            finally:
                self.lease.release(holder)
            # Checked after releasing: an alert queued meanwhile either found the lease free
            # (and drained itself) or is seen here.
            if time.monotonic() >= deadline or not self.outbox.pending(1):
                break
        return report

    def record(self, alert: Alert, exc: BaseException, *, now: datetime) -> None:
        doctype, _, name = alert.entity.partition("/")
        report = FailureReport(
            integration=INTEGRATION,
            operation=f"send_{alert.channel}",
            entity_type=doctype,
            entity_id=name,
            event_id=alert.key,
            message=f"{alert.rule} alert: {exc}",
            details=type(exc).__name__,
        )
        try:
            self.errors.record_failure(report, now=now)
        except Exception:
            log.exception("could not write the error record of an alert")

    def window_open(self, phone: str, now: datetime) -> bool:
        last = self.sessions.last_inbound(phone)
        return last is not None and now - last < WHATSAPP_WINDOW - self.config.window_margin


class _Round:
    """One drainer's pass: dispatch in time order, each destination in its queue's order."""

    def __init__(self, drainer: AlertDrainer, holder: str, deadline: float) -> None:
        self.d = drainer
        self.holder = holder
        self.deadline = deadline
        self.telegram_pace = Pacer(drainer.config.telegram_limits)
        self.whatsapp_pace = Pacer(drainer.config.whatsapp_limits)
        self.queues: OrderedDict[str, deque[QueuedAlert]] = OrderedDict()
        self.known: set[str] = set()
        self.busy: set[str] = set()
        self.settling: set[asyncio.Task[None]] = set()
        self.report = DrainReport()

    async def run(self) -> DrainReport:
        d = self.d
        limits = (d.config.telegram_limits, d.config.whatsapp_limits)
        since = d.clock() - timedelta(seconds=max(limit.longest_s for limit in limits))
        for channel, to, at in await asyncio.to_thread(d.outbox.recent_sent, since):
            self._pacer(channel).prime([(_key(channel, to), at)])
        await self._refill()
        in_flight: set[asyncio.Task[None]] = set()
        renewed = refilled = time.monotonic()
        async with d.telegram.session() as telegram:
            while (self.queues or in_flight) and time.monotonic() < self.deadline:
                if time.monotonic() - renewed > d.lease_ttl.total_seconds() / 3:
                    if not await asyncio.to_thread(
                        d.lease.acquire, self.holder, now=d.clock(), ttl=d.lease_ttl
                    ):
                        break  # lost the lease (we stalled): stop sending, the new holder goes on
                    renewed = time.monotonic()
                # Alerts queued meanwhile by other deliveries: looked for often when little
                # waits here, seldom while a long backlog drains (each look reads the queue).
                waiting = sum(map(len, self.queues.values()))
                if time.monotonic() - refilled > (1.0 if waiting < 50 else 10.0):
                    await self._refill()
                    refilled = time.monotonic()
                wake = self._dispatch(telegram, in_flight)  # epoch seconds, as the pacer's
                left = self.deadline - time.monotonic()
                timeout = max(0.0, min(wake - self._now(), left))
                if in_flight:
                    done, _ = await asyncio.wait(
                        in_flight, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                    in_flight -= done
                else:
                    await asyncio.sleep(timeout)
            if in_flight:
                await asyncio.wait(in_flight)
            if self.settling:
                await asyncio.gather(*self.settling)
        return self.report

    async def _refill(self) -> None:
        for queued in await asyncio.to_thread(self.d.outbox.pending, self.d.batch):
            if queued.alert.key not in self.known:
                self.known.add(queued.alert.key)
                self.queues.setdefault(_dest(queued.alert), deque()).append(queued)

    def _now(self) -> float:
        """The pacers' time (epoch seconds): the drainer's clock, which also stamps the sends
        other instances are primed with."""
        return self.d.clock().timestamp()

    def _pacer(self, channel: str) -> Pacer:
        return self.telegram_pace if channel == "telegram" else self.whatsapp_pace

    def _dispatch(self, telegram: TelegramSession, in_flight: set[asyncio.Task[None]]) -> float:
        """Start every alert whose destination may take one now; the time of the next chance."""
        now = self._now()
        wake = now + 1.0
        for destination in list(self.queues):
            if len(in_flight) >= self.d.config.in_flight:
                break
            if destination in self.busy:
                continue  # one at a time per destination: people read them in order
            queue = self.queues[destination]
            queued = queue[0]
            alert = queued.alert
            pacer, key = self._pacer(alert.channel), _key(alert.channel, alert.to)
            at = max(queued.not_before, pacer.next_time(key, now))
            slot = pacer.start(key, now) if at <= now else None
            if slot is None:
                wake = min(wake, at)
                continue
            queue.popleft()
            if not queue:
                del self.queues[destination]
            self.busy.add(destination)
            in_flight.add(asyncio.create_task(self._send(telegram, queued, slot)))
        return wake

    async def _send(self, telegram: TelegramSession, queued: QueuedAlert, slot: Slot) -> None:
        d, alert = self.d, queued.alert
        # From the mark on, a crash leaves the alert in doubt (kept: the earliest such time).
        began = queued.in_doubt_since or d.clock()
        try:
            try:
                if not await asyncio.to_thread(d.outbox.mark_sending, alert.key, now=began):
                    return  # settled meanwhile, by a drainer that took over from us
                if alert.channel == "telegram":
                    text = REPEAT_NOTICE + alert.text if queued.in_doubt_since else alert.text
                    message_id = str(await telegram.send(int(alert.to), text))
                else:
                    message_id = await asyncio.to_thread(self._send_whatsapp, queued)
            finally:
                self._pacer(alert.channel).finish(slot, self._now())
                self.busy.discard(_dest(alert))
        except ChatMoved as moved:
            log.warning(
                "chat %s is now %s: update the alert chat settings", alert.to, moved.new_chat_id
            )
            self._again(replace(queued, alert=replace(alert, to=str(moved.new_chat_id))))
            return
        except UpstreamUnavailable as exc:
            doubt = began if exc.maybe_applied else queued.in_doubt_since
            await self._retry(replace(queued, in_doubt_since=doubt), exc)
            return
        # Refused (a blocked bot, a missing chat, no template), or a setting to fix (a sender
        # Twilio has not enabled): sending again cannot help, so the record says what to do.
        except (BridgeError, ConfigurationError) as exc:
            self.report += DrainReport(failed=1)
            d.record(alert, exc, now=d.clock())
            await asyncio.to_thread(d.outbox.mark_failed, alert.key, str(exc), now=d.clock())
            return
        except Exception as exc:
            log.exception("unexpected failure sending an alert")
            await self._retry(replace(queued, in_doubt_since=began), exc)  # it may have gone
            return
        self.report += DrainReport(sent=1)
        # Written beside the next sends, not before them: the destination is already free.
        self.settling.add(asyncio.create_task(self._settle(queued, message_id)))

    async def _settle(self, queued: QueuedAlert, message_id: str) -> None:
        d, key = self.d, queued.alert.key
        await asyncio.to_thread(d.outbox.mark_sent, key, message_id, now=d.clock())
        if queued.attempts:
            await asyncio.to_thread(d.errors.resolve_event, INTEGRATION, key, now=d.clock())

    def _send_whatsapp(self, queued: QueuedAlert) -> str:
        alert = queued.alert
        if self.d.whatsapp is None:
            raise UpstreamRejected("WhatsApp is not configured", service="twilio")
        doubt = queued.in_doubt_since
        if doubt and (sid := self._sent_before(self.d.whatsapp, alert, doubt)):
            return sid
        if self.d.window_open(alert.to, self.d.clock()):
            return self.d.whatsapp.send_text(alert.to, alert.text)
        if not alert.content_sid:
            raise UpstreamRejected(
                "outside WhatsApp's 24-hour window and the rule names no approved template",
                service="twilio",
            )
        return self.d.whatsapp.send_template(alert.to, alert.content_sid, alert.content_variables)

    def _sent_before(self, whatsapp: WhatsApp, alert: Alert, since: datetime) -> str | None:
        """The message an earlier send of this alert left at Twilio, if any: one sent to its
        number since the doubt began that no other alert claims, with its text (a template's
        text is Twilio's rendering: any will do, as a destination takes one alert at a time)."""
        found = [
            message
            for message in whatsapp.sent_since(alert.to, since - CLOCK_SKEW)
            if (message.body == alert.text or alert.content_sid)
            and self.d.outbox.by_message(message.sid) is None
        ]
        return found[-1].sid if found else None  # newest first: the earliest

    async def _retry(self, queued: QueuedAlert, exc: BaseException) -> None:
        d = self.d
        now = self._now()
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            # Throttled: the wait does not count as a failed attempt.
            self.report += DrainReport(throttled=1)
            self._pacer(queued.alert.channel).block(
                _key(queued.alert.channel, queued.alert.to), now + retry_after
            )
            later = replace(queued, not_before=now + retry_after)
        else:
            attempts = queued.attempts + 1
            later = replace(queued, attempts=attempts, not_before=now + min(2.0**attempts, 300.0))
            if attempts >= d.config.attempts:
                d.record(queued.alert, exc, now=d.clock())
                self.report += DrainReport(deferred=1)
        await asyncio.to_thread(
            d.outbox.defer,
            queued.alert.key,
            not_before=later.not_before,
            attempts=later.attempts,
            in_doubt_since=later.in_doubt_since,
        )
        self._again(later)

    def _again(self, queued: QueuedAlert) -> None:
        """Back to the head of its destination's queue: its order among its siblings holds."""
        self.queues.setdefault(_dest(queued.alert), deque()).appendleft(queued)


@dataclass(frozen=True)
class PacedReplies:
    """The bot's replies, sent within Telegram's limits as the alerts count them: what every
    instance sent (alerts and replies) in the last windows is read first, a reply waits its
    turn up to `max_wait_s`, and each one sent is noted for the drainers to count. Beyond the
    wait, UpstreamUnavailable: the webhook answers 503 and Telegram sends the update again."""

    telegram: ReplyChannel
    outbox: AlertOutbox
    limits: Limits
    clock: Callable[[], datetime]
    sleep: Callable[[float], None] = time.sleep
    max_wait_s: float = 5.0

    def send_all(self, messages: list[tuple[int, str, int | None]]) -> list[int]:
        sent = []
        for chat, text, topic in messages:
            self._wait_for(chat)
            try:
                message_id = self.telegram.send(chat, text, topic)
            except UpstreamUnavailable as exc:  # a 429 despite our count (another bot user?)
                if exc.retry_after_s is None or exc.retry_after_s > self.max_wait_s:
                    raise
                self.sleep(exc.retry_after_s)
                message_id = self.telegram.send(chat, text, topic)
            self.outbox.note_reply(chat, now=self.clock())
            sent.append(message_id)
        return sent

    def _wait_for(self, chat: int) -> None:
        now = self.clock()
        pacer = Pacer(self.limits)
        since = now - timedelta(seconds=self.limits.longest_s)
        pacer.prime(
            (_key(channel, to), at)
            for channel, to, at in self.outbox.recent_sent(since)
            if channel == "telegram"
        )
        wait = pacer.next_time(chat, now.timestamp()) - now.timestamp()
        if wait > self.max_wait_s:
            raise UpstreamUnavailable(
                f"Telegram's limits are taken for {wait:.0f} s by alerts and replies",
                service="telegram",
                retry_after_s=wait,
            )
        if wait > 0:
            self.sleep(wait)


def _dest(alert: Alert) -> str:
    return f"{alert.channel}:{alert.to}"


def _key(channel: str, to: str) -> Destination:
    return int(to) if channel == "telegram" else to


@dataclass(frozen=True)
class Notifier:
    """The notifier service: `enqueue` is the consumer's side effect."""

    planner: AlertPlanner
    drainer: AlertDrainer
    desk: ServiceDesk
    clock: Callable[[], datetime]

    def enqueue(self, envelope: Envelope) -> str:
        alerts = self.planner.plan(envelope)
        if not alerts:
            return "no rule matched"
        new = self.drainer.outbox.put(alerts, now=self.clock())
        report = self.drainer.drain()
        logs.log_event(log, logging.INFO, "alerts queued", alerts=len(alerts), new=new)
        return (
            f"{new} of {len(alerts)} alerts new; sent {report.sent}, {report.throttled} throttled"
        )

    def daily_digest(self) -> str:
        """The analytics figures to the admin chat, once per day however often it is called."""
        now = self.clock()
        figures = self.desk.figures(now)
        chat = self.drainer.config.chat("admins")
        alert = Alert(
            key=f"digest|{now.date().isoformat()}|{chat}",
            rule="daily_digest",
            channel="telegram",
            to=str(chat),
            text=digest_text(figures, now),
            event_id=f"digest:{now.date().isoformat()}",
            entity=f"Digest/{now.date().isoformat()}",
        )
        new = self.drainer.outbox.put([alert], now=now)
        report = self.drainer.drain()
        return f"digest {'queued' if new else 'already queued'}; sent {report.sent}"


def digest_text(figures: DeskFigures, now: datetime) -> str:
    average = (
        f"{figures.average_hours_to_close:.1f} h"
        if figures.average_hours_to_close is not None
        else "no request closed in 30 days"
    )
    return render(
        "📊 <b>Daily digest</b> {day}\nOpen requests: {open}\nAverage time to close: {average}\n"
        "Invoiced this month: {invoiced}",
        {
            "day": now.date().isoformat(),
            "open": figures.open_requests,
            "average": average,
            "invoiced": format_amount(figures.invoiced_this_month, figures.currency),
        },
        limit=TELEGRAM_ALERT_LIMIT,
        as_html=True,
    )
