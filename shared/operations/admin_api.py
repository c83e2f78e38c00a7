"""The admin API (HTTP, authenticated): the error log and the sync executions.

    GET  /errors?integration=&operation=&status=&entity_type=&since=&until=&limit=   JSON
    GET  /errors.csv?<the same filters>                                             CSV
    POST /errors/status   {"ids": [...], "status": "resolved" | "ignored" | "pending", "note": ...}
    POST /errors/replay   {"ids": [...], "source": "original" | "current"}
    GET  /executions?job=&status=&limit=                                            JSON

Every call needs a Google identity allowed by the settings (or, locally, the configured key).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from shared.errors import InvalidPayload
from shared.operations.error_query import MAX_LIMIT, ErrorFilter, to_csv
from shared.operations.triage import ErrorTriage, Source
from shared.platform.auth import AdminAuth
from shared.platform.executions import RunStatus, SyncExecution
from shared.platform.ports import SyncExecutionLog
from shared.platform.runtime import HttpAnswer, HttpRequest, answer, read_body

MAX_BODY = 1_000_000
MAX_IDS = 1000


@dataclass(frozen=True)
class AdminApi:
    auth: AdminAuth
    triage: Callable[[], ErrorTriage]
    executions: SyncExecutionLog

    def handle(self, request: HttpRequest, method: str, path: str) -> HttpAnswer:
        caller = self.auth.verify(request.headers)
        route = (method.upper(), "/" + path.strip("/"))
        if route == ("GET", "/errors"):
            records = self.triage().find(ErrorFilter.parse(request.args))
            return answer(200, count=len(records), errors=[r.fields() for r in records])
        if route == ("GET", "/errors.csv"):
            records = self.triage().find(ErrorFilter.parse(request.args))
            return to_csv(records), 200, {"Content-Type": "text/csv; charset=utf-8"}
        if route == ("POST", "/errors/status"):
            body = _json(request)
            changed = self.triage().set_status(
                _ids(body), str(body.get("status", "")), note=_note(body, caller.identity)
            )
            return answer(200, updated=changed, count=len(changed))
        if route == ("POST", "/errors/replay"):
            body = _json(request)
            source = cast(Source, str(body.get("source", "original")))
            execution, report = self.triage().replay(_ids(body), source)
            return answer(
                200, execution=execution, replayed=report.replayed, skipped=report.skipped
            )
        if route == ("GET", "/executions"):
            return answer(200, executions=[_execution(e) for e in self._executions(request.args)])
        raise InvalidPayload(f"no such admin operation: {route[0]} {route[1]}", status=404)

    def _executions(self, args: Mapping[str, str]) -> list[SyncExecution]:
        try:
            limit = int(args.get("limit") or 50)
        except ValueError:
            raise InvalidPayload("limit must be a number") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidPayload(f"limit must be between 1 and {MAX_LIMIT}")
        status = args.get("status") or None
        if status is not None and status not in {s.value for s in RunStatus}:
            raise InvalidPayload(f"status must be one of {', '.join(s.value for s in RunStatus)}")
        runs = self.executions.recent(args.get("job") or None, limit=limit)
        return [run for run in runs if status is None or run.status.value == status]


def _json(request: HttpRequest) -> dict[str, object]:
    try:
        body = json.loads(read_body(request, MAX_BODY) or b"{}")
    except ValueError:
        raise InvalidPayload("the body must be JSON") from None
    if not isinstance(body, dict):
        raise InvalidPayload("the body must be a JSON object")
    return body


def _ids(body: Mapping[str, object]) -> list[str]:
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise InvalidPayload('"ids" must be a list of record ids')
    if len(ids) > MAX_IDS:
        raise InvalidPayload(f"at most {MAX_IDS} records at a time")
    return list(dict.fromkeys(ids))


def _note(body: Mapping[str, object], who: str) -> str:
    note = body.get("note")
    text = str(note)[:500] if isinstance(note, str) and note else ""
    return f"{who}: {text}" if text else who


def _execution(run: SyncExecution) -> dict[str, object]:
    return {
        "id": run.id,
        "job": run.job,
        "status": run.status.value,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "seen": run.counts.seen,
        "updated": run.counts.updated,
        "skipped": run.counts.skipped,
        "failed": run.counts.failed,
        "error": run.error,
    }
