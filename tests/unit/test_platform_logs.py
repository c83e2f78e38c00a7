"""JSON log lines in Cloud Logging's shape, with the context bound per invocation."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from werkzeug.test import EnvironBuilder

from shared.bot.webhooks import TelegramWebhook
from shared.platform import logs, observability, runtime


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


def test_span_sampling_and_source_location_are_cloud_loggings_own_fields() -> None:
    context = logs.trace_context("0af7651916cd43dd8448eb211c80319c/17;o=1", "my-project")
    with logs.bound(function="erp_webhook", **context):
        entry = format_line(make_record("published"))
    assert entry[logs.TRACE_KEY] == "projects/my-project/traces/0af7651916cd43dd8448eb211c80319c"
    assert entry[logs.SPAN_KEY] == "0000000000000011"
    assert entry[logs.SAMPLED_KEY] is True
    assert entry[logs.SOURCE_KEY] == {"file": __file__, "line": "1", "function": None}
    assert not {"trace", "span_id", "trace_sampled"} & entry.keys()


BOT_TOKEN = "7000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
PHONE = "+15005550009"
TEXT = "please come quickly, the freezer alarm is on"


def test_secrets_tokens_and_phones_are_scrubbed_from_message_fields_and_exception() -> None:
    observability.scrubber.protect("erp-api-secret-for-log-tests")
    record = make_record(f"send to {PHONE} failed", logging.ERROR)
    record.fields = {
        "error": f"POST https://api.telegram.org/bot{BOT_TOKEN}/sendMessage: 502",
        "headers": {"Authorization": "token key:erp-api-secret-for-log-tests"},
        "text": TEXT,
    }
    try:
        raise RuntimeError("ERPNext said no to erp-api-secret-for-log-tests")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    line = logs.CloudLoggingFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "send to [phone] failed"
    assert entry["error"] == "POST https://api.telegram.org/bot[redacted]/sendMessage: 502"
    assert entry["headers"] == {"Authorization": "[redacted]"}
    assert entry["text"] == "[text removed]"
    assert "ERPNext said no to [redacted]" in entry["exception"]
    for private in (PHONE, BOT_TOKEN, "erp-api-secret-for-log-tests", TEXT):
        assert private not in line


class FailingBot:
    """A bot with a bug that puts the person's words and number in its error."""

    def handle(self, update: dict[str, object]) -> list[object]:
        message = update["message"]
        assert isinstance(message, dict)
        raise ValueError(f"cannot parse {message['text']!r} from {message['contact']}")


class UpdateLog:
    def first_time(self, update_id: int, *, now: datetime) -> bool:
        return True

    def mark_handled(self, update_id: int, *, now: datetime) -> None:
        pass

    def forget_update(self, update_id: int) -> None:
        pass


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The JSON lines written while the test runs, formatted when logged (as on stdout)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.CloudLoggingFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_telegram_update_that_fails_logs_no_text_phone_or_secret(
    json_lines: io.StringIO,
) -> None:
    secret = "telegram-webhook-secret-for-log-tests"
    webhook = TelegramWebhook(
        bot=FailingBot(),  # type: ignore[arg-type]
        store=UpdateLog(),  # type: ignore[arg-type]
        sender=None,  # type: ignore[arg-type]
        secret=secret,
        clock=lambda: datetime.now(UTC),
    )
    update = {"update_id": 5, "message": {"text": TEXT, "contact": {"phone_number": PHONE}}}
    request = EnvironBuilder(
        method="POST",
        data=json.dumps(update),
        headers={"X-Telegram-Bot-Api-Secret-Token": secret},
    ).get_request()
    _, status, _ = runtime.serve_http("telegram_webhook", "p", request, webhook.handle)
    assert status == 200
    entries = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    (failure,) = [e for e in entries if e["message"] == "Telegram update failed; not retried"]
    assert failure[logs.LABELS_KEY] == {"function": "telegram_webhook"}
    assert failure["update_id"] == "5"
    assert failure["exception"].endswith(
        "ValueError: cannot parse '[text removed]' from {'phone_number': '[phone]'}"
    )
    for private in (TEXT, PHONE, secret):
        assert private not in json_lines.getvalue()


def test_source_location_is_the_line_that_logged_not_the_helper(json_lines: io.StringIO) -> None:
    logs.log_event(logging.getLogger("bridge"), logging.INFO, "applied", action="row 2")
    (entry,) = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    assert entry[logs.SOURCE_KEY]["file"] == __file__
    assert entry[logs.SOURCE_KEY]["function"] == (
        "test_source_location_is_the_line_that_logged_not_the_helper"
    )
