"""Fixtures shared by every test folder: Google's emulators, once per session, and clean projects."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from devstack.emulators import Emulators, running_emulators
from shared.platform.resilience import BREAKERS
from tests.helpers.receivers import WebhookReceiver


@pytest.fixture(autouse=True)
def no_function_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """functions-framework's create_app writes FUNCTION_TARGET into the process's environment,
    and erp_webhook's root reads only that entry point's settings: each test starts without it
    and leaves none to the next."""
    monkeypatch.delenv("FUNCTION_TARGET", raising=False)


@pytest.fixture(autouse=True)
def closed_circuits() -> Iterator[None]:
    """Circuit breakers are per process: each test starts with every circuit closed and the
    defaults, and leaves no open circuit (or a fake clock) to the next."""
    BREAKERS.reset()
    yield
    BREAKERS.reset()


@pytest.fixture(scope="session")
def emulators() -> Iterator[Emulators]:
    """Pub/Sub and Firestore emulators on free ports for the whole session, their env vars set."""
    with running_emulators() as running, pytest.MonkeyPatch.context() as session_env:
        for key, value in running.env().items():
            session_env.setenv(key, value)
        yield running


@pytest.fixture
def project_id(emulators: Emulators) -> str:
    """A GCP project id of this test alone: both emulators keep each project's data apart."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clear_firestore(emulators: Emulators) -> Callable[[str], None]:
    """A function that deletes every Firestore document of a project (the emulator's reset)."""

    def clear(project: str) -> None:
        url = (
            f"http://{emulators.firestore.host}/emulator/v1/projects/{project}"
            "/databases/(default)/documents"
        )
        requests.delete(url, timeout=10).raise_for_status()

    return clear


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """The other end of a webhook, answering 200 (a test module may give its own)."""
    with WebhookReceiver() as running:
        yield running
