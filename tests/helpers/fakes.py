"""In-memory implementations of the ports, for unit tests of the services (no network)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shared.bot.ports import Conversation, Redemption
from shared.core.claims import Claim, ClaimOutcome, ClaimState, can_take_over, claim_key, new_claim
from shared.core.envelope import Envelope, Json
from shared.core.versions import parse_modified
from shared.errors import BridgeError, ClaimHeld, NotFound, UpstreamRejected, UpstreamUnavailable
from shared.platform.executions import RunCounts, RunStatus, SyncExecution
from shared.platform.failures import ErrorStatus, FailureReport
from shared.platform.ports import Lease
from shared.servicedesk.ports import DeskFigures, ServiceRequest
from shared.sheets.rows import CellValue, IndexedRow, RowPlan, coalesce


@dataclass
class InMemoryPublisher:
    published: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    down: bool = False

    def publish_all(
        self, topics: Sequence[str], data: bytes, attributes: Mapping[str, str]
    ) -> list[str]:
        if self.down:
            raise UpstreamUnavailable("publish not confirmed", service="pubsub")
        ids = []
        for topic in topics:
            self.published.append((topic, data, dict(attributes)))
            ids.append(str(len(self.published)))
        return ids


@dataclass
class InMemoryIdempotencyStore:
    claims: dict[str, Claim] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(
        self, consumer: str, event_id: str, *, owner: str, now: datetime, lease: timedelta
    ) -> ClaimOutcome:
        key = claim_key(consumer, event_id)
        with self.lock:
            existing = self.claims.get(key)
            if existing is None:
                self.claims[key] = new_claim(consumer, event_id, owner, now, lease)
                return ClaimOutcome.ACQUIRED
            if existing.state is ClaimState.DONE:
                return ClaimOutcome.ALREADY_DONE
            if can_take_over(existing, now):
                self.claims[key] = new_claim(consumer, event_id, owner, now, lease)
                return ClaimOutcome.TAKEN_OVER
            raise ClaimHeld("claim held", event_id=event_id)

    def complete(self, consumer: str, event_id: str, *, outcome: str, now: datetime) -> None:
        key = claim_key(consumer, event_id)
        self.claims[key] = replace(self.claims[key], state=ClaimState.DONE, outcome=outcome)

    def release(self, consumer: str, event_id: str, *, owner: str) -> None:
        key = claim_key(consumer, event_id)
        if key in self.claims and self.claims[key].owner == owner:
            del self.claims[key]


@dataclass
class InMemoryVersionStore:
    applied: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def last_applied(self, consumer: str, doctype: str, name: str) -> str | None:
        return self.applied.get((consumer, doctype, name))

    def record_applied(self, consumer: str, doctype: str, name: str, modified: str) -> None:
        current = self.applied.get((consumer, doctype, name))
        if current is None or parse_modified(modified) > parse_modified(current):
            self.applied[(consumer, doctype, name)] = modified


@dataclass
class InMemoryErrorLog:
    records: dict[str, dict[str, object]] = field(default_factory=dict)

    def record_failure(self, report: FailureReport, *, now: datetime) -> str:
        record_id = report.record_id()
        previous = self.records.get(record_id, {"attempts": 0, "first_seen": now})
        self.records[record_id] = {
            **previous,
            "report": report,
            "status": ErrorStatus.PENDING,
            "attempts": int(str(previous["attempts"])) + 1,
            "last_seen": now,
        }
        return record_id

    def resolve_event(self, integration: str, event_id: str, *, now: datetime) -> bool:
        found = False
        for record in self.records.values():
            report = record["report"]
            assert isinstance(report, FailureReport)
            if (report.integration, report.event_id, record["status"]) == (
                integration,
                event_id,
                ErrorStatus.PENDING,
            ):
                record["status"] = ErrorStatus.RESOLVED
                found = True
        return found


@dataclass
class RecordingEffect:
    """A side effect that remembers every envelope it was applied to, and can be made to fail."""

    applied: list[Envelope] = field(default_factory=list)
    fail_with: Exception | None = None

    def __call__(self, envelope: Envelope) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.applied.append(envelope)
        return f"recorded {envelope.name}"


@dataclass(frozen=True)
class QueuedEnvelope:
    envelope: Envelope
    version: int


@dataclass
class InMemorySheetOutbox:
    entries: dict[tuple[str, str], QueuedEnvelope] = field(default_factory=dict)
    writes: int = 0

    def put(self, envelope: Envelope, *, now: datetime) -> None:
        key = (envelope.doctype, envelope.name)
        queued = self.entries.get(key)
        if queued is not None:
            newest = coalesce([queued.envelope, envelope])[envelope.name]
            if newest.event_id == queued.envelope.event_id:
                return
        self.writes += 1
        self.entries[key] = QueuedEnvelope(envelope, self.writes)

    def pending(self, limit: int) -> list[QueuedEnvelope]:
        return list(self.entries.values())[:limit]

    def remove(self, entries: Sequence[QueuedEnvelope]) -> int:
        removed = 0
        for entry in entries:
            key = (entry.envelope.doctype, entry.envelope.name)
            if self.entries.get(key) == entry:
                del self.entries[key]
                removed += 1
        return removed


@dataclass
class InMemoryLease:
    holder: str | None = None
    until: datetime | None = None

    def acquire(self, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        if self.holder not in (None, owner) and self.until is not None and self.until > now:
            return False
        self.holder, self.until = owner, now + ttl
        return True

    def release(self, owner: str) -> None:
        if self.holder == owner:
            self.holder = self.until = None


@dataclass
class InMemoryInvoiceSheet:
    """Rows in sheet order (row 2 is the first data row); counts reads and writes like Sheets."""

    rows: list[tuple[str, tuple[CellValue, ...], str | None]] = field(default_factory=list)
    reads: int = 0
    writes: int = 0
    fail_with: Exception | None = None

    def read_index(self) -> dict[str, IndexedRow]:
        self.reads += 1
        return {
            name: IndexedRow(number + 2, modified)
            for number, (name, _, modified) in enumerate(self.rows)
        }

    def apply(self, plan: RowPlan) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.writes += 1
        for write in plan.updates:
            assert write.row_number is not None
            self.rows[write.row_number - 2] = (write.name, write.cells, write.modified)
        for write in plan.appends:
            self.rows.append((write.name, write.cells, write.modified))
        for delete in (*plan.deletes, *plan.clears):  # an emptied row holds no invoice
            del self.rows[delete.row_number - 2]

    def by_name(self) -> dict[str, tuple[CellValue, ...]]:
        return {name: cells for name, cells, _ in self.rows}


@dataclass
class InMemoryInvoiceDirectory:
    full_names: dict[str, str] = field(default_factory=dict)
    managers: dict[str, str] = field(default_factory=dict)

    def user_full_name(self, user_id: str) -> str | None:
        return self.full_names.get(user_id)

    def project_manager(self, project: str) -> str | None:
        return self.managers.get(project)


@dataclass
class InMemoryWatermarks:
    values: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def advance(self, key: str, value: str) -> None:
        current = self.values.get(key)
        if current is None or parse_modified(value) > parse_modified(current):
            self.values[key] = value


@dataclass
class InMemorySyncExecutionLog:
    runs: dict[str, SyncExecution] = field(default_factory=dict)

    def start(self, job: str, *, now: datetime) -> str:
        execution_id = f"run-{len(self.runs) + 1}"
        self.runs[execution_id] = SyncExecution(execution_id, job, RunStatus.RUNNING, now)
        return execution_id

    def finish(
        self, execution_id: str, counts: RunCounts, *, error: str | None, now: datetime
    ) -> None:
        status = RunStatus.FAILED if error else RunStatus.SUCCEEDED
        self.runs[execution_id] = replace(
            self.runs[execution_id], status=status, finished_at=now, counts=counts, error=error
        )

    def recent(self, job: str | None = None, limit: int = 50) -> list[SyncExecution]:
        found = [run for run in self.runs.values() if job in (None, run.job)]
        return list(reversed(found))[:limit]


@dataclass
class InMemoryServiceDesk:
    """The ServiceDesk port over dicts; `failure` makes every call raise it (ERPNext trouble)."""

    requests: dict[str, ServiceRequest] = field(default_factory=dict)
    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    desk_figures: DeskFigures = field(default_factory=lambda: DeskFigures(4, 30.5, 5000.0, "USD"))
    failure: BridgeError | None = None
    attached: list[tuple[str, str, bytes]] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)
    """Who sent each attached file, in order."""
    created: list[dict[str, str]] = field(default_factory=list)
    phones: dict[str, str] = field(default_factory=dict)
    """customer -> the client's WhatsApp number (E.164)."""

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure

    def request(self, request_id: str) -> ServiceRequest:
        self._check()
        if request_id not in self.requests:
            raise NotFound(f"Issue {request_id} not found", service="erpnext")
        return self.requests[request_id]

    def open_requests_for(self, user: str) -> list[ServiceRequest]:
        self._check()
        return [
            r
            for r in self.requests.values()
            if user in r.assigned_to and r.status not in ("Resolved", "Closed")
        ]

    def set_status(self, request_id: str, status: str) -> ServiceRequest:
        self.requests[request_id] = replace(self.request(request_id), status=status)
        return self.requests[request_id]

    def create_request(
        self, *, subject: str, description: str, priority: str, raised_by: str
    ) -> ServiceRequest:
        self._check()
        request_id = f"ISS-{len(self.requests) + 1:04d}"
        self.created.append(
            {"subject": subject, "description": description, "priority": priority, "by": raised_by}
        )
        self.requests[request_id] = ServiceRequest(
            request_id, subject, "Open", priority, raised_by=raised_by
        )
        return self.requests[request_id]

    def attach_file(self, request_id: str, filename: str, content: bytes, *, sent_by: str) -> str:
        self.request(request_id)
        self.attached.append((request_id, filename, content))
        self.senders.append(sent_by)
        return f"/private/files/{filename}"

    def roles_of(self, user: str) -> frozenset[str]:
        self._check()
        return self.roles.get(user, frozenset())

    def full_name(self, user: str) -> str:
        self._check()
        if user not in self.names:
            raise NotFound(f"User {user} not found", service="erpnext")
        return self.names[user]

    def customer_of_phone(self, phone_e164: str) -> str | None:
        self._check()
        return next((c for c, phone in self.phones.items() if phone == phone_e164), None)

    def client_phone(self, request: ServiceRequest) -> str | None:
        return self.phones.get(request.customer or "")

    def figures(self, now: datetime) -> DeskFigures:
        self._check()
        return self.desk_figures


@dataclass
class InMemoryBotStore:
    """The BotStore port in memory, with the Firestore store's semantics."""

    chats: dict[int, str] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    codes: dict[str, dict[str, object]] = field(default_factory=dict)
    conversations: dict[tuple[int, int], tuple[Conversation, datetime]] = field(
        default_factory=dict
    )
    updates: dict[int, str] = field(default_factory=dict)
    strangers: dict[int, datetime] = field(default_factory=dict)
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self) -> None:
        if self.down:
            raise UpstreamUnavailable("firestore read failed", service="firestore")

    def link(self, chat_id: int, user: str) -> None:
        self.chats[chat_id] = user
        self.users[user] = chat_id

    def answer_stranger(self, chat_id: int, *, now: datetime, every: timedelta) -> bool:
        self._check()
        last = self.strangers.get(chat_id)
        if last is not None and now - last < every:
            return False
        self.strangers[chat_id] = now
        return True

    def linked_users(self) -> list[str]:
        self._check()
        return [user for user in self.users if self.chat_of(user) is not None]

    def chat_of(self, user: str) -> int | None:
        self._check()
        chat_id = self.users.get(user)
        return chat_id if chat_id is not None and self.chats.get(chat_id) == user else None

    def user_of(self, chat_id: int) -> str | None:
        self._check()
        user = self.chats.get(chat_id)
        return user if user is not None and self.users.get(user) == chat_id else None

    def create_link_code(self, user: str, *, now: datetime, lifetime: timedelta) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"user": user, "valid_until": now + lifetime, "chat": None}
        return code

    def redeem_link_code(self, code: str, chat_id: int, *, now: datetime) -> Redemption:
        with self.lock:
            entry = self.codes.get(code)
            if entry is None:
                return Redemption("unknown")
            user = str(entry["user"])
            if entry["chat"] == chat_id:
                return Redemption("repeated", user)
            if entry["chat"] is not None:
                return Redemption("used")
            valid_until = entry["valid_until"]
            assert isinstance(valid_until, datetime)
            if valid_until <= now:
                return Redemption("expired")
            entry["chat"] = chat_id
        self.link(chat_id, user)
        return Redemption("linked", user)

    def get_conversation(self, chat_id: int, person: int, *, now: datetime) -> Conversation | None:
        stored = self.conversations.get((chat_id, person))
        return stored[0] if stored is not None and stored[1] > now else None

    def put_conversation(
        self,
        chat_id: int,
        person: int,
        conversation: Conversation,
        *,
        now: datetime,
        lifetime: timedelta,
    ) -> None:
        self.conversations[(chat_id, person)] = (conversation, now + lifetime)

    def clear_conversation(self, chat_id: int, person: int) -> None:
        self.conversations.pop((chat_id, person), None)

    def first_time(self, update_id: int, *, now: datetime) -> bool:
        with self.lock:
            state = self.updates.get(update_id)
            if state == "claimed":
                raise ClaimHeld("update being handled")
            self.updates[update_id] = "claimed"
            return state is None

    def mark_handled(self, update_id: int, *, now: datetime) -> None:
        self.updates[update_id] = "done"

    def forget_update(self, update_id: int) -> None:
        self.updates.pop(update_id, None)


@dataclass
class InMemoryTelegramFiles:
    files: dict[str, bytes] = field(default_factory=dict)
    downloads: list[str] = field(default_factory=list)
    failure: BridgeError | None = None

    def download(self, file_id: str) -> bytes:
        self.downloads.append(file_id)
        if self.failure is not None:
            raise self.failure
        return self.files[file_id]


@dataclass
class InMemoryInvoices:
    """Lists like ERPNext's REST API: filters on `modified`, pages of `page_length`; counts calls."""

    docs: dict[str, list[dict[str, Json]]] = field(default_factory=dict)
    list_calls: int = 0
    down: bool = False

    def iter_docs(
        self,
        doctype: str,
        *,
        fields: Sequence[str],
        filters: Sequence[tuple[str, str, object]] = (),
        order_by: str = "modified asc",
        page_length: int = 500,
    ) -> Iterator[Mapping[str, Json]]:
        rows = sorted(self.docs.get(doctype, []), key=lambda doc: str(doc["modified"]))
        for field_name, operator, value in filters:
            assert (field_name, operator) == ("modified", ">=")
            rows = [
                r for r in rows if parse_modified(str(r["modified"])) >= parse_modified(str(value))
            ]
        start = 0
        while True:
            if self.down:
                raise UpstreamUnavailable("erpnext down", service="erpnext")
            self.list_calls += 1
            page = rows[start : start + page_length]
            yield from ({k: doc.get(k) for k in fields} for doc in page)
            if len(page) < page_length:
                return
            start += page_length


@dataclass
class InMemoryDocuments:
    """ERPNext documents by doctype and name; counts reads."""

    docs: dict[tuple[str, str], dict[str, Json]] = field(default_factory=dict)
    reads: int = 0

    def get_doc(self, doctype: str, name: str) -> Mapping[str, Json]:
        self.reads += 1
        if (doctype, name) not in self.docs:
            raise UpstreamRejected(f"{doctype} {name} not found", service="erpnext")
        return self.docs[(doctype, name)]


@dataclass
class InMemoryStores:
    """What FirestoreStores offers a root, in memory."""

    claims: InMemoryIdempotencyStore = field(default_factory=InMemoryIdempotencyStore)
    versions: InMemoryVersionStore = field(default_factory=InMemoryVersionStore)
    errors: InMemoryErrorLog = field(default_factory=InMemoryErrorLog)
    sheet_outbox: InMemorySheetOutbox = field(default_factory=InMemorySheetOutbox)
    sheet_flush_lease: InMemoryLease = field(default_factory=InMemoryLease)
    watermarks: InMemoryWatermarks = field(default_factory=InMemoryWatermarks)
    executions: InMemorySyncExecutionLog = field(default_factory=InMemorySyncExecutionLog)
    leases: dict[str, InMemoryLease] = field(default_factory=dict)

    def lease(self, name: str) -> Lease:
        return self.leases.setdefault(name, InMemoryLease())


@dataclass
class InMemoryPeople:
    """The alerts' directory: people's full names and each project's manager (a user id)."""

    full_names: dict[str, str] = field(default_factory=dict)
    managers: dict[str, str] = field(default_factory=dict)

    def user_full_name(self, user_id: str) -> str | None:
        return self.full_names.get(user_id)

    def project_manager_user(self, project: str) -> str | None:
        return self.managers.get(project)
