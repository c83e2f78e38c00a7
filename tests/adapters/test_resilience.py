"""Circuit breakers against stand-ins that go down and come back: ERPNext answering 503 through
ErpNextClient, and Twilio and Telegram cut off by a fault proxy (a real outage). After the
threshold, calls fail fast without reaching the stand-in; after the pause one trial goes through
and closes the circuit; the state gauge follows, read from the Prometheus registry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from devstack.erpnext import ErpNextStandIn
from devstack.faultproxy import FaultProxy
from devstack.telegram import TelegramStandIn
from devstack.twilio import TwilioStandIn
from shared.adapters.erpnext import ErpNextClient
from shared.adapters.telegram import KeptSession, TelegramApi
from shared.adapters.twilio import WhatsAppSender
from shared.errors import UpstreamUnavailable
from shared.platform import metrics
from shared.platform.resilience import BREAKERS, BreakerSettings, CircuitOpen
from tests.helpers.clocks import Ticker

KEY, SECRET = "bridge-key", "breaker-test-secret"
SETTINGS = BreakerSettings(threshold=3, pause_s=30.0, max_pause_s=120.0)
WHO = "frappe.auth.get_logged_user"
WHO_PATH = "/api/method/" + WHO
ACCOUNT = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "breaker-test-auth-token"
BOT_TOKEN = "123456:breaker-test-bot-token"
PERSON = "+4915112345678"
CHAT = 4242


@pytest.fixture
def clock() -> Iterator[Ticker]:
    metrics.install_prometheus()
    fake = Ticker(5000.0)
    BREAKERS.reset(SETTINGS, clock=fake)
    yield fake
    BREAKERS.reset()


def gauge(service: str) -> float | None:
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == "bridge_circuit_state" and sample.labels.get("service") == service:
                return float(sample.value)
    return None


def transitions(service: str) -> dict[str, float]:
    return {
        sample.labels["state"]: sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == "bridge_circuit_transitions_total"
        and sample.labels.get("service") == service
    }


def requests_seen(erp: ErpNextStandIn) -> int:
    return sum(erp.request_counts().values())


@pytest.fixture
def erp() -> Iterator[ErpNextStandIn]:
    with ErpNextStandIn(api_key=KEY, api_secret=SECRET) as running:
        yield running


def test_erpnext_circuit_opens_fails_fast_and_closes_when_the_site_comes_back(
    erp: ErpNextStandIn, clock: Ticker
) -> None:
    client = ErpNextClient(erp.url, KEY, SECRET, timeout_s=5)
    before = transitions("erpnext")
    assert client.call_method(WHO) == "Administrator"
    assert gauge("erpnext") == 0

    erp.faults.fail_next(1000, status=503)  # the site is down
    with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
        client.call_method(WHO)  # three attempts inside the call: the threshold
    assert erp.request_count("GET", WHO_PATH) == 1 + 3
    assert gauge("erpnext") == 2

    erp.faults.clear()  # the site is back, but the circuit is still open
    seen = requests_seen(erp)
    clock.advance(20)
    for _ in range(5):
        with pytest.raises(CircuitOpen, match="erpnext circuit open until") as refused:
            client.call_method(WHO)
        assert refused.value.retry_after_s == pytest.approx(10.0)
    with pytest.raises(CircuitOpen):
        client.insert("ToDo", {"description": "not sent"})
    assert requests_seen(erp) == seen  # failed fast: nothing reached the site
    assert gauge("erpnext") == 2

    clock.advance(10)
    assert gauge("erpnext") == 1  # half-open: the next call is the trial
    assert client.call_method(WHO) == "Administrator"

    assert requests_seen(erp) == seen + 1
    assert gauge("erpnext") == 0
    assert client.list_docs("ToDo", fields=["name"]) == []
    after = transitions("erpnext")
    for state in ("open", "half-open", "closed"):
        assert after.get(state, 0) == before.get(state, 0) + 1


def test_erpnext_circuit_reopens_for_twice_the_pause_when_the_trial_fails(
    erp: ErpNextStandIn, clock: Ticker
) -> None:
    client = ErpNextClient(erp.url, KEY, SECRET, timeout_s=5)
    erp.faults.fail_next(1000, status=502)
    with pytest.raises(UpstreamUnavailable, match="HTTP 502"):
        client.call_method(WHO)
    seen = requests_seen(erp)

    clock.advance(30)
    with pytest.raises(UpstreamUnavailable):
        client.call_method(WHO)  # the trial, still down; the call's retry then finds it open
    assert requests_seen(erp) == seen + 1  # one trial, not the call's three attempts
    with pytest.raises(CircuitOpen) as refused:
        client.call_method(WHO)
    assert refused.value.retry_after_s == pytest.approx(60.0)
    assert gauge("erpnext") == 2
    assert requests_seen(erp) == seen + 1


def test_a_refusal_is_no_outage_when_erpnext_answers_404(
    erp: ErpNextStandIn, clock: Ticker
) -> None:
    client = ErpNextClient(erp.url, KEY, SECRET, timeout_s=5)
    for _ in range(SETTINGS.threshold * 2):
        with pytest.raises(Exception, match="HTTP 404"):
            client.get_doc("ToDo", "nothing-here")
    assert gauge("erpnext") == 0


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    clock_utc = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with TwilioStandIn(ACCOUNT, TWILIO_TOKEN, clock=lambda: clock_utc) as running:
        running.open_window(PERSON)
        yield running


def through(url: str) -> FaultProxy:
    host, port = url.removeprefix("http://").split("/", 1)[0].split(":")
    return FaultProxy(host, int(port)).start()


def test_twilio_circuit_opens_on_an_outage_and_closes_when_twilio_is_back(
    twilio: TwilioStandIn, clock: Ticker
) -> None:
    proxy = through(twilio.base_url)
    try:
        sender = WhatsAppSender(
            ACCOUNT, TWILIO_TOKEN, "+14155238886", base_url=f"http://{proxy.address}", timeout_s=5
        )
        sender.send_text(PERSON, "first")
        proxy.cut()  # Twilio unreachable
        for _ in range(SETTINGS.threshold):
            with pytest.raises(UpstreamUnavailable, match="twilio unreachable"):
                sender.send_text(PERSON, "lost")
        assert gauge("twilio") == 2

        proxy.restore()  # reachable again; the circuit stays open until the pause is over
        with pytest.raises(CircuitOpen, match="twilio circuit open"):
            sender.send_text(PERSON, "refused at once")
        assert len(twilio.messages) == 1

        clock.advance(30)
        assert gauge("twilio") == 1
        sender.send_text(PERSON, "second")
        assert len(twilio.messages) == 2
        assert gauge("twilio") == 0
    finally:
        proxy.stop()


def test_telegram_circuit_opens_on_an_outage_and_closes_when_telegram_is_back(
    clock: Ticker,
) -> None:
    with TelegramStandIn(BOT_TOKEN) as telegram:
        telegram.started_by(CHAT, CHAT + 1)
        proxy = through(telegram.url)
        try:
            api = KeptSession(
                TelegramApi(BOT_TOKEN, base_url=f"http://{proxy.address}/bot", timeout_s=5)
            )
            api.send(CHAT, "first")
            proxy.cut()
            for _ in range(SETTINGS.threshold):
                with pytest.raises(UpstreamUnavailable, match="telegram did not answer"):
                    api.send(CHAT, "lost")
            assert gauge("telegram") == 2

            proxy.restore()
            with pytest.raises(CircuitOpen, match="telegram circuit open"):
                api.send(CHAT, "refused at once")
            assert telegram.texts(CHAT) == ["first"]

            clock.advance(30)
            api.send(CHAT + 1, "second")  # another chat: Telegram's one a second per chat
            assert telegram.texts(CHAT) == ["first"] and telegram.texts(CHAT + 1) == ["second"]
            assert gauge("telegram") == 0
        finally:
            proxy.stop()
