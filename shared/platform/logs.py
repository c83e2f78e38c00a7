"""JSON log lines on stdout in the shape Cloud Logging parses, with context bound per invocation.

Log ids and outcomes, never payloads, phone numbers or tokens: every line also passes through
the scrubber Sentry uses (`shared.platform.observability.scrubber`), so a mistake in a log call is caught.
Special fields, as Cloud Logging reads them from a JSON line: `severity`, `message`, `time`,
`logging.googleapis.com/trace`, `.../spanId`, `.../trace_sampled`, `.../labels` and
`.../sourceLocation`; the invocation's context and the call's fields go to jsonPayload.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

from shared.platform import observability

_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}
TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"
SAMPLED_KEY = "logging.googleapis.com/trace_sampled"
LABELS_KEY = "logging.googleapis.com/labels"
SOURCE_KEY = "logging.googleapis.com/sourceLocation"
_LABELS = ("function", "consumer")
_ROUTING = ("trace", "span_id", "trace_sampled")
"""Context fields that Cloud Logging takes as the entry's own, not as payload."""


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Add fields to every log line written inside the block (nested blocks add to the outer)."""
    with observability.bound(**fields):
        yield


def trace_of(header: str | None, project: str) -> str | None:
    """Cloud Logging's trace name from an `X-Cloud-Trace-Context: TRACE/SPAN;o=1` header."""
    return trace_context(header, project).get("trace")


def trace_context(header: str | None, project: str) -> dict[str, str]:
    """`trace`, `span_id` and `trace_sampled` from `X-Cloud-Trace-Context: TRACE/SPAN;o=1`, to
    bind for an invocation; empty when the header is absent."""
    if not header:
        return {}
    trace_id, _, rest = header.partition("/")
    trace_id = trace_id.strip()
    if not trace_id:
        return {}
    found = {"trace": f"projects/{project}/traces/{trace_id}"}
    span, _, options = rest.partition(";")
    if span.strip().isdigit():
        # Cloud Logging wants the span as 16 hex digits; the header carries it in decimal.
        found["span_id"] = f"{int(span.strip()):016x}"
    if options.strip() in ("o=1", "o=0"):
        found["trace_sampled"] = "true" if options.strip() == "o=1" else "false"
    return found


class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per line: severity, message, time, trace, labels and the bound context,
    scrubbed of secrets, tokens, phone numbers and people's texts."""

    def format(self, record: logging.LogRecord) -> str:
        scrub = observability.scrubber
        context = dict(observability.current())
        entry: dict[str, object] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": scrub.text(record.getMessage()),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
            SOURCE_KEY: {
                "file": record.pathname,
                "line": str(record.lineno),
                "function": record.funcName,
            },
        }
        trace = context.pop("trace", None)
        if trace:
            entry[TRACE_KEY] = trace
            if "span_id" in context:
                entry[SPAN_KEY] = context["span_id"]
            if "trace_sampled" in context:
                entry[SAMPLED_KEY] = context["trace_sampled"] == "true"
        for key in _ROUTING:
            context.pop(key, None)
        labels = {key: context[key] for key in _LABELS if key in context}
        if labels:
            entry[LABELS_KEY] = labels
        entry.update(context)
        extra = getattr(record, "fields", None)
        if isinstance(extra, Mapping):
            fields = scrub.value(extra)
            assert isinstance(fields, dict)
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = scrub.text(self.formatException(record.exc_info))
        elif record.stack_info:
            entry["stack_trace"] = scrub.text(self.formatStack(record.stack_info))
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
    logger.log(level, message, extra={"fields": fields}, stacklevel=2)  # the caller's line
