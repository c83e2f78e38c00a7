"""JSON log lines on stdout in the shape Cloud Logging parses, with context bound per invocation.

Log ids and outcomes, never payloads, phone numbers or tokens.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "bridge_log_context", default=MappingProxyType({})
)

_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}
TRACE_KEY = "logging.googleapis.com/trace"
LABELS_KEY = "logging.googleapis.com/labels"
_LABELS = ("function", "consumer")


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Add fields to every log line written inside the block (nested blocks add to the outer)."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def trace_of(header: str | None, project: str) -> str | None:
    """Cloud Logging's trace name from an `X-Cloud-Trace-Context: TRACE/SPAN;o=1` header."""
    if not header:
        return None
    trace_id = header.split("/", 1)[0].strip()
    return f"projects/{project}/traces/{trace_id}" if trace_id else None


class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per line: severity, message, time, trace, labels and the bound context."""

    def format(self, record: logging.LogRecord) -> str:
        context = dict(_context.get())
        entry: dict[str, object] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        trace = context.pop("trace", None)
        if trace:
            entry[TRACE_KEY] = trace
        labels = {key: context[key] for key in _LABELS if key in context}
        if labels:
            entry[LABELS_KEY] = labels
        entry.update(context)
        extra = getattr(record, "fields", None)
        if isinstance(extra, Mapping):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    """Send the root logger's records to stdout as JSON lines (idempotent)."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, CloudLoggingFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CloudLoggingFormatter())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Google's and urllib3's own debug chatter is not ours to ship.
    for noisy in ("urllib3", "google", "grpc", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_event(logger: logging.Logger, level: int, message: str, **fields: object) -> None:
    """Log `message` with extra structured fields (ids and outcomes only)."""
    logger.log(level, message, extra={"fields": fields})
