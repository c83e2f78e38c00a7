"""The composition root: builds each function's services once per instance, lazily, from Settings.

Adapters are imported inside the builders, so a function pays only for the SDKs it uses.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared import logs, metrics
from shared.config import SecretReader, Settings
from shared.core.envelope import Envelope
from shared.core.plans import PLANS
from shared.ingress import Ingress
from shared.runtime import Consumer, DeadLetterRecorder, Effect

if TYPE_CHECKING:
    from shared.adapters.firestore import FirestoreStores


def utc_now() -> datetime:
    return datetime.now(UTC)


@functools.cache
def instance_id() -> str:
    """Who holds a claim: this host and process, unique per instance."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _secret_reader(project: str) -> SecretReader | None:
    if os.environ.get("SECRETS_BACKEND") != "secret-manager":
        return None
    from shared.adapters.secrets import SecretManagerReader

    return SecretManagerReader(
        project,
        os.environ.get("SECRETS_VERSION", "latest"),
        endpoint=os.environ.get("SECRET_MANAGER_ENDPOINT") or None,
    )


@functools.cache
def settings(function: str) -> Settings:
    """Read and check the settings once; raises ConfigurationError listing every problem."""
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"))
    metrics.install_prometheus()
    project = os.environ.get("GCP_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT") or ""
    reader = _secret_reader(project) if project else None
    return Settings.from_env(os.environ, function=function, read_secret=reader)


@functools.cache
def ingress() -> Ingress:
    from shared.adapters.pubsub import PubSubPublisher

    config = settings("erp_webhook")
    return Ingress(
        site=config.site,
        webhook_secret=config.webhook_secret,
        routes=config.routes,
        publisher=PubSubPublisher(config.project, timeout_s=config.publish_timeout_s),
        clock=utc_now,
        max_body_bytes=config.max_body_bytes,
    )


@functools.cache
def _firestore(project: str) -> FirestoreStores:
    from shared.adapters.firestore import FirestoreStores

    return FirestoreStores(project)


def recorded_effect(consumer: str, project: str) -> Effect:
    """The placeholder side effect: write down, in Firestore, what the consumer would do."""
    describe = PLANS[consumer]
    actions = _firestore(project).actions

    def effect(envelope: Envelope) -> str:
        action = describe(envelope)
        actions.record(consumer, envelope, action, now=utc_now())
        return action

    return effect


@functools.cache
def consumer(name: str) -> Consumer:
    config = settings(name)
    stores = _firestore(config.project)
    return Consumer(
        name=name,
        effect=recorded_effect(name, config.project),
        claims=stores.claims,
        versions=stores.versions,
        errors=stores.errors,
        owner=instance_id(),
        clock=utc_now,
        lease=config.claim_lease,
        max_age=config.max_event_age,
    )


@functools.cache
def dead_letter_recorder() -> DeadLetterRecorder:
    config = settings("dead_letter")
    return DeadLetterRecorder(errors=_firestore(config.project).errors, clock=utc_now)


def reset() -> None:
    """Forget every built service, so the next call reads the environment again (tests, reloads)."""
    for builder in (instance_id, settings, ingress, _firestore, consumer, dead_letter_recorder):
        builder.cache_clear()
