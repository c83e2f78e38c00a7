"""JSON log lines in Cloud Logging's shape, with the context bound per invocation."""

from __future__ import annotations

import json
import logging

from shared import logs


def format_line(record: logging.LogRecord) -> dict[str, object]:
    return json.loads(logs.CloudLoggingFormatter().format(record))


def make_record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("bridge", level, __file__, 1, message, None, None)


def test_line_has_severity_message_trace_labels_and_bound_context() -> None:
    trace = logs.trace_of("0af7651916cd43dd8448eb211c80319c/1;o=1", "my-project")
    with logs.bound(function="sheets_sync", trace=trace), logs.bound(event_id="e1", name="SINV-1"):
        entry = format_line(make_record("applied"))
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "applied"
    assert entry[logs.TRACE_KEY] == "projects/my-project/traces/0af7651916cd43dd8448eb211c80319c"
    assert entry[logs.LABELS_KEY] == {"function": "sheets_sync"}
    assert (entry["event_id"], entry["name"]) == ("e1", "SINV-1")


def test_context_ends_with_its_block() -> None:
    with logs.bound(event_id="e1"):
        pass
    assert "event_id" not in format_line(make_record("later", logging.INFO))


def test_structured_fields_are_added_to_the_line() -> None:
    record = make_record("published", logging.INFO)
    record.fields = {"topics": ["erp-invoices"]}
    assert format_line(record)["topics"] == ["erp-invoices"]


def test_no_trace_when_the_header_is_absent() -> None:
    assert logs.trace_of(None, "p") is None
