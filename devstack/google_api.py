"""What Google's REST APIs share, for the stand-ins: the error shape, partial responses
(`fields`), and injected faults (`Faults`, which the Telegram and Twilio stand-ins draw from too)."""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from devstack.httpserver import Reply

FaultKind = Literal["429", "500", "503", "timeout", "timeout_after_apply"]
_STATUS_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An error answer in Google's JSON shape; `reason` fills `errors[0].reason` (Drive's style)."""

    def __init__(self, status: int, code: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.reason = status, code, message, reason

    def reply(self) -> Reply:
        error: dict[str, Any] = {"code": self.status, "message": self.message, "status": self.code}
        if self.reason:
            error["errors"] = [{"message": self.message, "domain": "global", "reason": self.reason}]
        return Reply.json(self.status, {"error": error})


def api_error(status: int, message: str, *, reason: str | None = None) -> ApiError:
    return ApiError(status, _STATUS_CODES.get(status, "UNKNOWN"), message, reason=reason)


def parse_fields(text: str) -> dict[str, Any]:
    """A partial-response `fields` selection ("sheets(properties,data)", "id, name") as nested
    dicts; True marks a whole value."""
    selection: dict[str, Any] = {}
    tokens = re.findall(r"[A-Za-z0-9_*]+|[(),./]", text)
    position = 0

    def parse_list() -> dict[str, Any]:
        nonlocal position
        chosen: dict[str, Any] = {}
        while position < len(tokens) and tokens[position] != ")":
            path = [tokens[position]]
            position += 1
            while position < len(tokens) and tokens[position] in "./":
                path.append(tokens[position + 1])
                position += 2
            leaf: Any = True
            if position < len(tokens) and tokens[position] == "(":
                position += 1
                leaf = parse_list()
                position += 1
            node = chosen
            for name in path[:-1]:
                existing = node.get(name)
                node = node.setdefault(name, {}) if existing is not True else {}
            node[path[-1]] = leaf
            if position < len(tokens) and tokens[position] == ",":
                position += 1
        return chosen

    selection = parse_list()
    return selection


def selected(value: Any, selection: dict[str, Any] | Literal[True]) -> Any:
    """`value` cut down to a `parse_fields` selection."""
    if selection is True or "*" in selection:
        return value
    if isinstance(value, list):
        return [selected(item, selection) for item in value]
    if isinstance(value, dict):
        return {key: selected(value[key], sub) for key, sub in selection.items() if key in value}
    return value


@dataclass
class Faults:
    """Injected failures: the next few (`fail_next`) and/or a random share of calls (`rate`)."""

    rate: float = 0.0
    kinds: tuple[FaultKind, ...] = ("429", "500", "timeout")
    seed: int = 0
    queued: list[FaultKind] = field(default_factory=list)
    timeout_s: float = 35.0
    """How long a timed-out call hangs: longer than the client's own timeout."""
    injected: Counter[str] = field(default_factory=Counter)
    """How many of each kind were injected (a fault test proves its faults happened)."""

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def fail_next(self, *kinds: FaultKind) -> None:
        with self._lock:
            self.queued.extend(kinds)

    def set_rate(self, rate: float, *, seed: int | None = None) -> None:
        with self._lock:
            self.rate = rate
            if seed is not None:
                self._random = random.Random(seed)

    def take(self) -> FaultKind | None:
        with self._lock:
            kind: FaultKind | None = None
            if self.queued:
                kind = self.queued.pop(0)
            elif self.rate and self._random.random() < self.rate:
                kind = self._random.choice(self.kinds)
            if kind is not None:
                self.injected[kind] += 1
            return kind

    def refusal(self, fault: FaultKind, *, changes: bool) -> Reply | None:
        """The answer that replaces the call's own, or None when the call goes ahead."""
        if fault in ("429", "500", "503"):
            status = int(fault)
            return ApiError(status, _STATUS_CODES[status], "injected fault").reply()
        if fault == "timeout" or not changes:
            return Reply(503, delay_s=self.timeout_s)  # the client gives up first
        return None

    def delivered(self, fault: FaultKind | None, reply: Reply) -> Reply:
        """The call's answer; after `timeout_after_apply`, too late for the client to see it."""
        if fault == "timeout_after_apply":
            return Reply(reply.status, reply.body, reply.headers, self.timeout_s)
        return reply
