"""Firestore: idempotency claims, versions, error records, outboxes, leases and the bots' state.

One client, built on first use, serves every store of an instance; it honours
FIRESTORE_EMULATOR_HOST by itself. No google exception leaves this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar, cast

from google.api_core import exceptions as google_errors
from google.api_core.retry import Retry, if_exception_type
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.adapters.gcp_errors import GOOGLE_FAILURES, TRANSIENT, describe
from shared.alerts.ports import AlertOutbox, QueuedAlert, WhatsAppSessions
from shared.alerts.rules import Alert
from shared.core.claims import (
    CLAIM_RETENTION,
    Claim,
    ClaimOutcome,
    ClaimState,
    can_take_over,
    claim_key,
    new_claim,
)
from shared.core.envelope import Envelope
from shared.core.versions import parse_modified
from shared.drive.ports import FolderClaim, FolderRegistry
from shared.errors import ClaimHeld, UpstreamRejected, UpstreamUnavailable
from shared.operations.error_query import ErrorFilter
from shared.platform.executions import RunCounts, RunStatus, SyncExecution
from shared.platform.failures import ErrorRecord, ErrorStatus, FailureReport
from shared.platform.ports import Lease, SyncExecutionLog
from shared.sheets.ports import QueuedChange, SheetOutbox, Watermarks
from shared.sheets.rows import coalesce

SERVICE = "firestore"
CLAIMS = "idempotency"
VERSIONS = "document_versions"
ERRORS = "errors"
SHEET_OUTBOX = "sheet_outbox"
LEASES = "leases"
SYNC_EXECUTIONS = "sync_executions"
WATERMARKS = "watermarks"
DRIVE_FOLDERS = "drive_folders"
ALERTS = "alerts"
ALERT_QUEUE = "alert_queue"
BOT_REPLIES = "telegram_replies"
"""The bot's replies (chat, time): Telegram counts them in the same limits as the alerts."""
BOT_REPLY_MEMORY = timedelta(minutes=10)
"""Longer than Telegram's longest window (a group's minute): TTL on `expire_at` then."""
WHATSAPP_SESSIONS = "whatsapp_sessions"

DEFAULT_TIMEOUT_S = 10.0

# Racing writers of one document lose their precondition and look again; a handful of rounds
# settles any real contention (each round, one writer wins).
_SWAP_ROUNDS = 16


Record = dict[str, object]
Snapshot = firestore.DocumentSnapshot[firestore.DocumentReference]
R = TypeVar("R")


class FirestoreConnection:
    """The one Firestore client of an instance, built lazily and shared by every store.

    Every call carries our retry and timeout, so an unreachable Firestore fails within
    `timeout_s` instead of the SDK's default minute (or more, for reads).
    """

    def __init__(self, project: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.project = project
        self.timeout_s = timeout_s
        self.retry = Retry(
            predicate=if_exception_type(*TRANSIENT),
            initial=0.1,
            maximum=1.0,
            multiplier=2.0,
            timeout=timeout_s,
        )
        self._client: firestore.Client | None = None
        self._lock = threading.Lock()

    def client(self) -> firestore.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    with translated("connect"):
                        self._client = firestore.Client(project=self.project)
        return self._client

    def collection(self, name: str) -> firestore.CollectionReference:
        return self.client().collection(name)

    def read(self, document: firestore.DocumentReference) -> Snapshot:
        return document.get(retry=self.retry, timeout=self.timeout_s)

    def swap(
        self,
        document: firestore.DocumentReference,
        decide: Callable[[Record | None], tuple[Change | None, R]],
    ) -> R:
        """Compare-and-set: read, let `decide` choose a change, write it only if nobody wrote since.

        A write conditioned on the read's update time (or on absence, via create) is atomic
        like a transaction, but every call stays under our timeout: the SDK's transactions
        begin and commit with its own minute-long retries. `decide` may raise (ClaimHeld).
        """
        for _ in range(_SWAP_ROUNDS):
            snapshot = self.read(document)
            fields = _snapshot_fields(snapshot)
            change, result = decide(fields)
            if change is None or (fields is None and change.fields is None):
                return result
            try:
                if fields is None:
                    assert change.fields is not None
                    document.create(change.fields, retry=self.retry, timeout=self.timeout_s)
                    return result
                unchanged = self.client().write_option(last_update_time=snapshot.update_time)
                if change.fields is None:
                    document.delete(option=unchanged, retry=self.retry, timeout=self.timeout_s)
                else:
                    document.update(
                        change.fields, option=unchanged, retry=self.retry, timeout=self.timeout_s
                    )
                return result
            except (google_errors.FailedPrecondition, google_errors.AlreadyExists):
                continue  # another writer came first: look again
        raise UpstreamUnavailable(
            "firestore document kept changing under contention", service=SERVICE
        )


@dataclass(frozen=True, slots=True)
class Change:
    """What a swap writes: these fields (over the stored ones), or None to delete the document."""

    fields: Record | None


class FirestoreStores:
    """Every Firestore-backed port of an instance, over one shared connection."""

    def __init__(
        self,
        project: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retention: timedelta = CLAIM_RETENTION,
    ) -> None:
        self.connection = FirestoreConnection(project, timeout_s=timeout_s)
        self.claims = FirestoreIdempotencyStore(self.connection, retention=retention)
        self.versions = FirestoreVersionStore(self.connection)
        self.errors = FirestoreErrorLog(self.connection)
        self.sheet_outbox: SheetOutbox = FirestoreSheetOutbox(self.connection)
        self.sheet_flush_lease: Lease = FirestoreLease(self.connection, "invoice-sheet-flush")
        self.executions: SyncExecutionLog = FirestoreSyncExecutionLog(self.connection)
        self.watermarks: Watermarks = FirestoreWatermarks(self.connection)
        self.drive_folders: FolderRegistry = FirestoreFolderRegistry(self.connection)
        self.alerts: AlertOutbox = FirestoreAlertOutbox(self.connection, retention=retention)
        self.alert_drain_lease: Lease = self.lease("alert-drain")
        self.whatsapp_sessions: WhatsAppSessions = FirestoreWhatsAppSessions(self.connection)

    def lease(self, name: str) -> Lease:
        """The lease called `name` (a flush, a drain, a job's lock)."""
        return FirestoreLease(self.connection, name)


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """Turn SDK, gRPC and auth failures into the error tree; the message names no data."""
    try:
        yield
    except google_errors.InvalidArgument as exc:
        # A request we built that Firestore calls malformed (e.g. a document over 1 MiB).
        raise UpstreamRejected(
            f"firestore refused {operation}: {describe(exc)}", service=SERVICE
        ) from None
    except GOOGLE_FAILURES as exc:
        # Throttling, outages, timeouts, and also missing permissions or database: all are fixed
        # outside the event, so retrying (and dead-lettering at last) is right; dropping is not.
        raise UpstreamUnavailable(
            f"firestore {operation} failed: {describe(exc)}", service=SERVICE
        ) from None


def _snapshot_fields(snapshot: Snapshot) -> Record | None:
    fields = snapshot.to_dict() if snapshot.exists else None
    return None if fields is None else cast(Record, fields)


# ---- idempotency claims ---------------------------------------------------------------------


class FirestoreIdempotencyStore:
    """`idempotency/{consumer}:{event_id}`: create() is the claim; a lease allows a takeover."""

    def __init__(
        self, connection: FirestoreConnection, *, retention: timedelta = CLAIM_RETENTION
    ) -> None:
        self._connection = connection
        self._retention = retention

    def _document(self, consumer: str, event_id: str) -> firestore.DocumentReference:
        return self._connection.collection(CLAIMS).document(claim_key(consumer, event_id))

    def claim(
        self, consumer: str, event_id: str, *, owner: str, now: datetime, lease: timedelta
    ) -> ClaimOutcome:
        fresh = new_claim(consumer, event_id, owner, now, lease)
        document = self._document(consumer, event_id)
        connection = self._connection

        def decide(fields: Record | None) -> tuple[Change | None, ClaimOutcome]:
            current = _claim_of(fields)
            if current is None:  # released since our create failed
                return Change(self._claimed_fields(fresh, now, attempts=1)), ClaimOutcome.ACQUIRED
            if current.state is ClaimState.CLAIMED and (current.owner, current.lease_until) == (
                fresh.owner,
                fresh.lease_until,
            ):
                # Our own write, whose answer was lost and which the retry then found.
                ours = _int(fields, "attempts") > 1
                return None, ClaimOutcome.TAKEN_OVER if ours else ClaimOutcome.ACQUIRED
            if current.state is ClaimState.DONE:
                return None, ClaimOutcome.ALREADY_DONE
            if not can_take_over(current, now):
                raise ClaimHeld("another instance holds the claim", event_id=event_id)
            # The swap writes only if state, owner and lease are still what we just read.
            taken = self._claimed_fields(fresh, now, attempts=_int(fields, "attempts") + 1)
            return Change(taken), ClaimOutcome.TAKEN_OVER

        with translated("claim"):
            try:
                document.create(
                    self._claimed_fields(fresh, now, attempts=1),
                    retry=connection.retry,
                    timeout=connection.timeout_s,
                )
                return ClaimOutcome.ACQUIRED
            except google_errors.AlreadyExists:
                pass
            return connection.swap(document, decide)

    def _claimed_fields(self, claim: Claim, now: datetime, *, attempts: int) -> Record:
        return {
            "consumer": claim.consumer,
            "event_id": claim.event_id,
            "state": ClaimState.CLAIMED.value,
            "owner": claim.owner,
            "lease_until": claim.lease_until,
            "claimed_at": now,
            "attempts": attempts,
            "outcome": None,
            "completed_at": None,
            "expire_at": now + self._retention,
        }

    def complete(self, consumer: str, event_id: str, *, outcome: str, now: datetime) -> None:
        fields: Record = {
            "consumer": consumer,
            "event_id": event_id,
            "state": ClaimState.DONE.value,
            "outcome": outcome,
            "completed_at": now,
            "expire_at": now + self._retention,
        }
        with translated("complete"):
            self._document(consumer, event_id).set(
                fields, merge=True, retry=self._connection.retry, timeout=self._connection.timeout_s
            )

    def release(self, consumer: str, event_id: str, *, owner: str) -> None:
        def decide(fields: Record | None) -> tuple[Change | None, None]:
            current = _claim_of(fields)
            mine = current is not None and current.owner == owner
            if mine and current is not None and current.state is ClaimState.CLAIMED:
                return Change(None), None
            return None, None

        with translated("release"):
            self._connection.swap(self._document(consumer, event_id), decide)

    def get(self, consumer: str, event_id: str) -> Claim | None:
        """The stored claim, for tests and operators."""
        with translated("read claim"):
            snapshot = self._connection.read(self._document(consumer, event_id))
        return _claim_of(_snapshot_fields(snapshot))


def _claim_of(fields: Record | None) -> Claim | None:
    if fields is None:
        return None
    lease_until = fields.get("lease_until")
    outcome = fields.get("outcome")
    return Claim(
        consumer=str(fields.get("consumer", "")),
        event_id=str(fields.get("event_id", "")),
        state=ClaimState(str(fields.get("state"))),
        owner=str(fields.get("owner", "")),
        # A claim completed without ever being claimed here has no lease: it never expires.
        lease_until=lease_until
        if isinstance(lease_until, datetime)
        else datetime.max.replace(tzinfo=UTC),
        outcome=outcome if isinstance(outcome, str) else None,
    )


def _int(fields: Record | None, key: str) -> int:
    value = (fields or {}).get(key)
    return value if isinstance(value, int) else 0


# ---- applied versions -------------------------------------------------------------------------


class FirestoreVersionStore:
    """`document_versions/{hash}`: the newest `modified` each consumer applied per document."""

    def __init__(self, connection: FirestoreConnection) -> None:
        self._connection = connection

    def _document(self, consumer: str, doctype: str, name: str) -> firestore.DocumentReference:
        # ERPNext names may contain '/', which Firestore ids cannot: hash the identity instead.
        identity = "\x1f".join((consumer, doctype, name)).encode()
        return self._connection.collection(VERSIONS).document(
            hashlib.sha256(identity).hexdigest()[:40]
        )

    def last_applied(self, consumer: str, doctype: str, name: str) -> str | None:
        with translated("read version"):
            snapshot = self._connection.read(self._document(consumer, doctype, name))
        modified = (_snapshot_fields(snapshot) or {}).get("modified")
        return modified if isinstance(modified, str) else None

    def record_applied(self, consumer: str, doctype: str, name: str, modified: str) -> None:
        incoming = parse_modified(modified)

        def decide(fields: Record | None) -> tuple[Change | None, None]:
            current = (fields or {}).get("modified")
            if isinstance(current, str) and parse_modified(current) >= incoming:
                return None, None  # never move back, and nothing to do for the same stamp
            applied: Record = {
                "consumer": consumer,
                "doctype": doctype,
                "name": name,
                "modified": modified,
                "updated_at": firestore.SERVER_TIMESTAMP,
            }
            return Change(applied), None

        with translated("record version"):
            self._connection.swap(self._document(consumer, doctype, name), decide)


# ---- error records ----------------------------------------------------------------------------


class FirestoreErrorLog:
    """`errors/{record_id}`: one record per failure, pending until resolved, with its envelope."""

    def __init__(self, connection: FirestoreConnection) -> None:
        self._connection = connection

    def _document(self, record_id: str) -> firestore.DocumentReference:
        return self._connection.collection(ERRORS).document(record_id)

    def record_failure(self, report: FailureReport, *, now: datetime) -> str:
        def decide(fields: Record | None) -> tuple[Change | None, None]:
            previous = fields or {}
            record: Record = {
                "integration": report.integration,
                "operation": report.operation,
                "entity_type": report.entity_type,
                "entity_id": report.entity_id,
                "event_id": report.event_id,
                "message": report.message,
                "details": report.details,
                # Every new failure needs a person again, even of a record resolved before.
                "status": ErrorStatus.PENDING.value,
                "attempts": _int(previous, "attempts") + 1,
                "first_seen": previous.get("first_seen", now),
                "last_seen": now,
                "resolved_at": None,
                "envelope": report.envelope
                if report.envelope is not None
                else previous.get("envelope"),
            }
            return Change(record), None

        record_id = report.record_id()
        with translated("record failure"):
            self._connection.swap(self._document(record_id), decide)
        return record_id

    def resolve_event(self, integration: str, event_id: str, *, now: datetime) -> bool:
        def decide(fields: Record | None) -> tuple[Change | None, bool]:
            if (fields or {}).get("status") != ErrorStatus.PENDING.value:
                return None, False  # resolved meanwhile, or deleted
            return Change({"status": ErrorStatus.RESOLVED.value, "resolved_at": now}), True

        # The event's own records, and records a person replayed as this event.
        queries = [
            self._connection.collection(ERRORS)
            .where(filter=FieldFilter("integration", "==", integration))
            .where(filter=FieldFilter(field, "==", event_id))
            .where(filter=FieldFilter("status", "==", ErrorStatus.PENDING.value))
            for field in ("event_id", "replayed_as")
        ]
        with translated("resolve errors"):
            pending = {
                snapshot.id
                for query in queries
                for snapshot in query.stream(
                    retry=self._connection.retry, timeout=self._connection.timeout_s
                )
            }
            resolved = [self._connection.swap(self._document(rid), decide) for rid in pending]
        return any(resolved)

    def list_errors(self, status: str | None = None, limit: int = 100) -> list[ErrorRecord]:
        """Newest first (by last_seen); each record carries its `id`.

        With a status filter, production needs the composite index (status, last_seen desc).
        """
        query: firestore.CollectionReference | firestore.Query = self._connection.collection(ERRORS)
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status))
        ordered = query.order_by("last_seen", direction=firestore.Query.DESCENDING).limit(limit)
        with translated("list errors"):
            return [
                _error_record(snapshot)
                for snapshot in ordered.stream(
                    retry=self._connection.retry, timeout=self._connection.timeout_s
                )
            ]

    def get(self, record_id: str) -> ErrorRecord | None:
        with translated("read error"):
            snapshot = self._connection.read(self._document(record_id))
        return _error_record(snapshot) if snapshot.exists else None

    def search(self, wanted: ErrorFilter) -> list[ErrorRecord]:
        """Newest first. Production merges the single-field composite indexes infra/ declares
        (each filter field with last_seen descending), so any combination of filters is served."""
        query: firestore.CollectionReference | firestore.Query = self._connection.collection(ERRORS)
        for key, value in wanted.equalities().items():
            query = query.where(filter=FieldFilter(key, "==", value))
        if wanted.since is not None:
            query = query.where(filter=FieldFilter("last_seen", ">=", wanted.since))
        if wanted.until is not None:
            query = query.where(filter=FieldFilter("last_seen", "<", wanted.until))
        ordered = query.order_by("last_seen", direction=firestore.Query.DESCENDING)
        with translated("search errors"):
            return [
                _error_record(snapshot)
                for snapshot in ordered.limit(wanted.limit).stream(
                    retry=self._connection.retry, timeout=self._connection.timeout_s
                )
            ]

    def set_status(
        self, record_ids: Sequence[str], status: str, *, now: datetime, note: str | None = None
    ) -> list[str]:
        """Set each record's status (a person's triage); the ids that exist and were set."""

        def decide(fields: Record | None) -> tuple[Change | None, bool]:
            if fields is None:
                return None, False
            change: Record = {
                "status": status,
                "resolved_at": now if status != ErrorStatus.PENDING.value else None,
            }
            if note is not None:
                change["note"] = note
            return Change(change), True

        with translated("set error status"):
            return [rid for rid in record_ids if self._connection.swap(self._document(rid), decide)]

    def mark_replayed(self, record_id: str, event_id: str, *, now: datetime) -> None:
        """The record was replayed as `event_id`: that event's success resolves it."""
        with translated("mark error replayed"):
            self._document(record_id).update(
                {"replayed_as": event_id, "replayed_at": now},
                retry=self._connection.retry,
                timeout=self._connection.timeout_s,
            )


def _error_record(snapshot: Snapshot) -> ErrorRecord:
    """The stored fields as a typed record; a field an older record lacks takes its default."""
    fields = _snapshot_fields(snapshot) or {}

    def text(key: str) -> str | None:
        value = fields.get(key)
        return value if isinstance(value, str) else None

    def when(key: str) -> datetime | None:
        value = fields.get(key)
        return value if isinstance(value, datetime) else None

    status = text("status")
    return ErrorRecord(
        id=snapshot.id,
        integration=text("integration") or "",
        operation=text("operation") or "",
        entity_type=text("entity_type") or "",
        entity_id=text("entity_id") or "",
        message=text("message") or "",
        status=ErrorStatus(status) if status in set(ErrorStatus) else ErrorStatus.PENDING,
        attempts=_int(fields, "attempts"),
        first_seen=when("first_seen"),
        last_seen=when("last_seen"),
        event_id=text("event_id"),
        details=text("details") or "",
        resolved_at=when("resolved_at"),
        note=text("note"),
        replayed_as=text("replayed_as"),
        replayed_at=when("replayed_at"),
        envelope=text("envelope"),
    )


# ---- action log -------------------------------------------------------------------------------


# ---- Invoice Tracker outbox and flush lease ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A queued invoice change; `token` is the stored version, so removal spares a newer put."""

    envelope: Envelope
    token: object


class FirestoreSheetOutbox:
    """`sheet_outbox/{hash}`: the newest unwritten change per invoice, waiting for a batch write.

    Many events for one invoice collapse into one entry (newest wins, by `coalesce`'s rules), so a
    burst becomes one row write per invoice, whatever the number of deliveries.
    """

    def __init__(self, connection: FirestoreConnection) -> None:
        self._connection = connection

    def _document(self, envelope: Envelope) -> firestore.DocumentReference:
        identity = "\x1f".join((envelope.doctype, envelope.name)).encode()
        key = hashlib.sha256(identity).hexdigest()[:40]
        return self._connection.collection(SHEET_OUTBOX).document(key)

    def put(self, envelope: Envelope, *, now: datetime) -> None:
        def decide(fields: Record | None) -> tuple[Change | None, None]:
            queued = _outbox_envelope(fields)
            if queued is not None:
                newest = coalesce([queued, envelope])[envelope.name]
                if newest.event_id == queued.event_id:
                    return None, None
            entry: Record = {
                "envelope": envelope.to_json().decode(),
                "name": envelope.name,
                "modified": envelope.modified,
                "queued_at": now,
            }
            return Change(entry), None

        with translated("queue sheet row"):
            self._connection.swap(self._document(envelope), decide)

    def pending(self, limit: int) -> list[OutboxEntry]:
        """Oldest queued first, at most `limit` entries."""
        query = self._connection.collection(SHEET_OUTBOX).order_by("queued_at").limit(limit)
        with translated("read sheet outbox"):
            snapshots = list(
                query.stream(retry=self._connection.retry, timeout=self._connection.timeout_s)
            )
        entries = []
        for snapshot in snapshots:
            envelope = _outbox_envelope(_snapshot_fields(snapshot))
            if envelope is not None:
                entries.append(OutboxEntry(envelope, snapshot.update_time))
        return entries

    def remove(self, entries: Sequence[QueuedChange]) -> int:
        """Delete entries not rewritten since they were read; return how many went."""
        removed = 0
        client = self._connection.client()
        with translated("clear sheet outbox"):
            for entry in entries:
                if not isinstance(entry, OutboxEntry):
                    raise TypeError("remove takes the entries this outbox's pending() returned")
                unchanged = client.write_option(last_update_time=entry.token)
                try:
                    self._document(entry.envelope).delete(
                        option=unchanged,
                        retry=self._connection.retry,
                        timeout=self._connection.timeout_s,
                    )
                    removed += 1
                except google_errors.FailedPrecondition:
                    pass  # a newer change arrived meanwhile: it stays for the next batch
        return removed


def _outbox_envelope(fields: Record | None) -> Envelope | None:
    text = (fields or {}).get("envelope")
    return Envelope.from_json(text.encode()) if isinstance(text, str) else None


class FirestoreLease:
    """`leases/{name}`: one holder at a time, taken over once its time runs out (a crashed holder)."""

    def __init__(self, connection: FirestoreConnection, name: str) -> None:
        self._connection = connection
        self._name = name

    def _document(self) -> firestore.DocumentReference:
        return self._connection.collection(LEASES).document(self._name)

    def acquire(self, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        def decide(fields: Record | None) -> tuple[Change | None, bool]:
            until = (fields or {}).get("until")
            if isinstance(until, datetime) and until > now and fields and fields["owner"] != owner:
                return None, False
            return Change({"owner": owner, "until": now + ttl}), True

        with translated("acquire lease"):
            return self._connection.swap(self._document(), decide)

    def release(self, owner: str) -> None:
        def decide(fields: Record | None) -> tuple[Change | None, None]:
            if fields is None or fields.get("owner") != owner:
                return None, None
            return Change(None), None

        with translated("release lease"):
            self._connection.swap(self._document(), decide)


# ---- the Drive folder registry -----------------------------------------------------------------


class FirestoreFolderRegistry:
    """`drive_folders/{sha256 of parent and name}`: each Drive folder made once, by one instance.

    A claim is a short lease: whoever holds it looks for the folder in Drive (a crashed holder
    may have made it), creates it if absent and records its id; the others wait for the id.
    """

    def __init__(self, connection: FirestoreConnection) -> None:
        self._connection = connection

    def _document(self, parent: str, name: str) -> firestore.DocumentReference:
        key = hashlib.sha256(f"{parent}/{name}".encode()).hexdigest()
        return self._connection.collection(DRIVE_FOLDERS).document(key)

    def claim(
        self, parent: str, name: str, *, owner: str, now: datetime, ttl: timedelta
    ) -> FolderClaim:
        def decide(fields: Record | None) -> tuple[Change | None, FolderClaim]:
            known = (fields or {}).get("folder_id")
            if isinstance(known, str):
                return None, FolderClaim("known", known)
            until = (fields or {}).get("until")
            if fields and isinstance(until, datetime) and until > now and fields["owner"] != owner:
                return None, FolderClaim("wait")
            claim = {"parent": parent, "name": name, "owner": owner, "until": now + ttl}
            return Change(claim), FolderClaim("mine")

        with translated("claim a Drive folder"):
            return self._connection.swap(self._document(parent, name), decide)

    def release(self, parent: str, name: str, *, owner: str) -> None:
        def decide(fields: Record | None) -> tuple[Change | None, None]:
            if fields is None or fields.get("owner") != owner or "folder_id" in fields:
                return None, None
            return Change(None), None

        with translated("release a Drive folder claim"):
            self._connection.swap(self._document(parent, name), decide)

    def record(self, parent: str, name: str, folder_id: str, *, now: datetime) -> None:
        fields = {"parent": parent, "name": name, "folder_id": folder_id, "created_at": now}
        with translated("record a Drive folder"):
            self._document(parent, name).set(
                fields, retry=self._connection.retry, timeout=self._connection.timeout_s
            )


# ---- sync executions and watermarks -----------------------------------------------------------


class FirestoreSyncExecutionLog:
    """`sync_executions/{auto id}`: one record per job run, running until finished."""

    def __init__(self, connection: FirestoreConnection) -> None:
        self._connection = connection

    def start(self, job: str, *, now: datetime) -> str:
        fields: Record = {"job": job, "status": RunStatus.RUNNING.value, "started_at": now}
        with translated("start sync execution"):
            _, document = self._connection.collection(SYNC_EXECUTIONS).add(fields)
        return str(document.id)

    def finish(
        self, execution_id: str, counts: RunCounts, *, error: str | None, now: datetime
    ) -> None:
        status = RunStatus.FAILED if error else RunStatus.SUCCEEDED
        fields: Record = {
            "status": status.value,
            "finished_at": now,
            "seen": counts.seen,
            "updated": counts.updated,
            "skipped": counts.skipped,
            "failed": counts.failed,
            "error": error,
        }
        with translated("finish sync execution"):
            self._connection.collection(SYNC_EXECUTIONS).document(execution_id).update(
                fields, retry=self._connection.retry, timeout=self._connection.timeout_s
            )

    def recent(self, job: str | None = None, limit: int = 50) -> list[SyncExecution]:
        """Newest first. With a job filter, production needs the index (job, started_at desc)."""
        query: firestore.CollectionReference | firestore.Query = self._connection.collection(
            SYNC_EXECUTIONS
        )
        if job is not None:
            query = query.where(filter=FieldFilter("job", "==", job))
        ordered = query.order_by("started_at", direction=firestore.Query.DESCENDING).limit(limit)
        with translated("list sync executions"):
            snapshots = list(
                ordered.stream(retry=self._connection.retry, timeout=self._connection.timeout_s)
            )
        return [_execution_of(snapshot) for snapshot in snapshots]


def _execution_of(snapshot: Snapshot) -> SyncExecution:
    fields = _snapshot_fields(snapshot) or {}
    finished = fields.get("finished_at")
    error = fields.get("error")
    return SyncExecution(
        id=str(snapshot.id),
        job=str(fields.get("job")),
        status=RunStatus(str(fields.get("status"))),
        started_at=cast(datetime, fields.get("started_at")),
        finished_at=finished if isinstance(finished, datetime) else None,
        counts=RunCounts(
            seen=_int(fields, "seen"),
            updated=_int(fields, "updated"),
            skipped=_int(fields, "skipped"),
            failed=_int(fields, "failed"),
        ),
        error=error if isinstance(error, str) else None,
    )


class FirestoreWatermarks:
    """`watermarks/{key}`: how far a job has read ERPNext (a `modified` stamp), only moving forward."""

    def __init__(self, connection: FirestoreConnection) -> None:
        self._connection = connection

    def get(self, key: str) -> str | None:
        with translated("read watermark"):
            snapshot = self._connection.read(self._connection.collection(WATERMARKS).document(key))
        value = (_snapshot_fields(snapshot) or {}).get("value")
        return value if isinstance(value, str) else None

    def advance(self, key: str, value: str) -> None:
        incoming = parse_modified(value)

        def decide(fields: Record | None) -> tuple[Change | None, None]:
            current = (fields or {}).get("value")
            if isinstance(current, str) and parse_modified(current) >= incoming:
                return None, None
            return Change({"value": value, "updated_at": firestore.SERVER_TIMESTAMP}), None

        with translated("advance watermark"):
            self._connection.swap(self._connection.collection(WATERMARKS).document(key), decide)


# ---- the alert outbox and WhatsApp sessions ----------------------------------------------------


class FirestoreAlertOutbox:
    """`alerts/{hash of key}` remembers every alert (its state: queued, sent, failed) so a second
    one is refused; `alert_queue/{same}` holds those still to send. Both are written together in
    one batch, so an alert is never remembered without being queued."""

    def __init__(self, connection: FirestoreConnection, *, retention: timedelta) -> None:
        self._connection = connection
        self._retention = retention

    def _id(self, key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()[:40]

    def _pair(self, key: str) -> tuple[firestore.DocumentReference, firestore.DocumentReference]:
        doc_id = self._id(key)
        return (
            self._connection.collection(ALERTS).document(doc_id),
            self._connection.collection(ALERT_QUEUE).document(doc_id),
        )

    def put(self, alerts: Sequence[Alert], *, now: datetime) -> int:
        new = 0
        with translated("queue alerts"):
            for position, alert in enumerate(alerts):
                record, queued = self._pair(alert.key)
                fields: Record = {
                    "key": alert.key,
                    "rule": alert.rule,
                    "channel": alert.channel,
                    "to": alert.to,
                    "text": alert.text,
                    "event_id": alert.event_id,
                    "entity": alert.entity,
                    "content_sid": alert.content_sid,
                    "content_variables": dict(alert.content_variables),
                    # Their order among themselves too: messages go out in it.
                    "created_at": now + timedelta(microseconds=position),
                }
                batch = self._connection.client().batch()
                batch.create(
                    record, {**fields, "state": "queued", "expire_at": now + self._retention}
                )
                batch.create(queued, {**fields, "not_before": 0.0, "attempts": 0})
                try:
                    batch.commit(retry=self._connection.retry, timeout=self._connection.timeout_s)
                    new += 1
                except google_errors.AlreadyExists:
                    pass  # the same alert, from a redelivery or another instance
        return new

    def pending(self, limit: int) -> list[QueuedAlert]:
        query = self._connection.collection(ALERT_QUEUE).order_by("created_at").limit(limit)
        with translated("read alert queue"):
            snapshots = list(
                query.stream(retry=self._connection.retry, timeout=self._connection.timeout_s)
            )
        return [_queued_alert(snapshot.to_dict() or {}) for snapshot in snapshots]

    def _settle(self, key: str, fields: Record) -> None:
        record, queued = self._pair(key)
        batch = self._connection.client().batch()
        batch.update(record, fields)
        batch.delete(queued)
        batch.commit(retry=self._connection.retry, timeout=self._connection.timeout_s)

    def mark_sent(self, key: str, message_id: str, *, now: datetime) -> None:
        with translated("mark alert sent"):
            self._settle(key, {"state": "sent", "sent_at": now, "message_id": message_id})

    def mark_failed(self, key: str, reason: str, *, now: datetime) -> None:
        with translated("mark alert failed"):
            self._settle(key, {"state": "failed", "failed_at": now, "reason": reason[:500]})

    def mark_sending(self, key: str, *, now: datetime) -> bool:
        _, queued = self._pair(key)
        with translated("mark alert sending"):
            try:
                queued.update(
                    {"in_doubt_since": now},
                    retry=self._connection.retry,
                    timeout=self._connection.timeout_s,
                )
            except google_errors.NotFound:
                return False
        return True

    def defer(
        self, key: str, *, not_before: float, attempts: int, in_doubt_since: datetime | None
    ) -> None:
        _, queued = self._pair(key)
        # NotFound: settled meanwhile.
        with translated("defer alert"), contextlib.suppress(google_errors.NotFound):
            queued.update(
                {"not_before": not_before, "attempts": attempts, "in_doubt_since": in_doubt_since},
                retry=self._connection.retry,
                timeout=self._connection.timeout_s,
            )

    def recent_sent(self, since: datetime) -> list[tuple[str, str, float]]:
        recent = []
        with translated("read recent alerts and replies"):
            for collection in (ALERTS, BOT_REPLIES):
                query = self._connection.collection(collection).where(
                    filter=FieldFilter("sent_at", ">=", since)
                )
                for snapshot in query.stream(
                    retry=self._connection.retry, timeout=self._connection.timeout_s
                ):
                    fields = snapshot.to_dict() or {}
                    sent_at = fields.get("sent_at")
                    if isinstance(sent_at, datetime):
                        channel, to = str(fields["channel"]), str(fields["to"])
                        recent.append((channel, to, sent_at.timestamp()))
        return recent

    def note_reply(self, chat: int, *, now: datetime) -> None:
        with translated("note a bot reply"):
            self._connection.collection(BOT_REPLIES).document().set(
                {
                    "channel": "telegram",
                    "to": str(chat),
                    "sent_at": now,
                    "expire_at": now + BOT_REPLY_MEMORY,
                },
                retry=self._connection.retry,
                timeout=self._connection.timeout_s,
            )

    def by_message(self, message_id: str) -> Alert | None:
        query = self._connection.collection(ALERTS).where(
            filter=FieldFilter("message_id", "==", message_id)
        )
        with translated("find an alert"):
            for snapshot in query.limit(1).stream(
                retry=self._connection.retry, timeout=self._connection.timeout_s
            ):
                return _queued_alert(snapshot.to_dict() or {}).alert
        return None

    def records(self) -> list[Record]:
        """Every remembered alert (tests, the demo)."""
        with translated("read alerts"):
            return [
                {"id": snapshot.id, **(_snapshot_fields(snapshot) or {})}
                for snapshot in self._connection.collection(ALERTS).stream(
                    retry=self._connection.retry, timeout=self._connection.timeout_s
                )
            ]


def _queued_alert(fields: Record) -> QueuedAlert:
    variables = fields.get("content_variables")
    alert = Alert(
        key=str(fields["key"]),
        rule=str(fields["rule"]),
        channel="whatsapp" if fields.get("channel") == "whatsapp" else "telegram",
        to=str(fields["to"]),
        text=str(fields["text"]),
        event_id=str(fields.get("event_id", "")),
        entity=str(fields.get("entity", "")),
        content_sid=cast(str | None, fields.get("content_sid")),
        content_variables=cast(dict[str, str], variables) if isinstance(variables, dict) else {},
    )
    in_doubt_since = fields.get("in_doubt_since")
    return QueuedAlert(
        alert,
        not_before=float(cast(float, fields.get("not_before") or 0.0)),
        attempts=_int(fields, "attempts"),
        in_doubt_since=in_doubt_since if isinstance(in_doubt_since, datetime) else None,
    )


class FirestoreWhatsAppSessions:
    """`whatsapp_sessions/{number}`: when the number last wrote to us."""

    def __init__(self, connection: FirestoreConnection) -> None:
        self._connection = connection

    def _document(self, phone: str) -> firestore.DocumentReference:
        return self._connection.collection(WHATSAPP_SESSIONS).document(phone)

    def last_inbound(self, phone: str) -> datetime | None:
        with translated("read whatsapp session"):
            fields = _snapshot_fields(self._connection.read(self._document(phone)))
        value = (fields or {}).get("last_inbound_at")
        return value if isinstance(value, datetime) else None

    def record_inbound(self, phone: str, *, now: datetime) -> None:
        with translated("record whatsapp session"):
            self._document(phone).set(
                {"last_inbound_at": now, "expire_at": now + timedelta(days=2)},
                retry=self._connection.retry,
                timeout=self._connection.timeout_s,
            )
