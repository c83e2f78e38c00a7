"""erp_webhook's root: the front door (signed webhooks to Pub/Sub), the dead-letter recorder, and
operations (the admin API, the triage and scheduled retry of error records).

Each of the folder's entry points is its own deployed function under its own identity, and reads
only the secrets it uses: the receiver the webhook secret, the operations ERPNext's token (a
replay of a document as it is now), the recorder none (infra/locals.tf grants exactly these).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from shared.errors import ConfigurationError
from shared.ingress.settings import IngressSettings
from shared.platform.settings import AdminAccess, Common, EnvReader, ErpNextAccess
from shared.roots.base import Root, importing

if TYPE_CHECKING:
    from shared.ingress.webhook import Ingress
    from shared.operations.admin_api import AdminApi
    from shared.operations.triage import ErrorTriage
    from shared.platform.ports import Publisher
    from shared.platform.runtime import DeadLetterRecorder

RECEIVER = "receive_erp_webhook"
RECORDER = "record_dead_letter"
OPERATIONS = frozenset({"admin_api", "retry_errors"})
"""The entry points that replay error records: the only ones that may read ERPNext."""
ENTRY_POINTS = frozenset({RECEIVER, RECORDER, *OPERATIONS})
"""functions/erp_webhook/main.py's entry points (tests/infra holds the two equal)."""
TARGET = "FUNCTION_TARGET"
"""Where functions-framework (what Cloud Functions runs, and the devstack) puts the entry point it
serves, before it imports main.py."""


def serving(env: Mapping[str, str]) -> frozenset[str]:
    """The entry points this instance serves: its FUNCTION_TARGET, or all of them when that is
    none of this folder's (a test or the `bridge` command, which may call any of them)."""
    target = env.get(TARGET, "")
    return frozenset({target}) if target in ENTRY_POINTS else ENTRY_POINTS


@dataclass(frozen=True, slots=True)
class Settings:
    common: Common
    ingress: IngressSettings
    """Holds the webhook secret only when `serves` includes the receiver."""
    admin: AdminAccess
    erpnext: ErpNextAccess | None
    """Optional, and read only when `serves` includes an operation: only the replay of a document
    as it is now reads ERPNext."""
    error_retry_after: timedelta = timedelta(minutes=10)
    """The scheduled retry replays a pending error record once it has been quiet this long."""
    serves: frozenset[str] = ENTRY_POINTS
    """The entry points this instance serves (`serving`)."""

    @classmethod
    def read(cls, env: EnvReader) -> Settings:
        serves = serving(env.env)
        common = Common.read(env)
        return cls(
            common=common,
            ingress=IngressSettings.read(env, site=common.site, receives=RECEIVER in serves),
            admin=AdminAccess.read(env),
            erpnext=ErpNextAccess.read(env, required=False) if serves & OPERATIONS else None,
            error_retry_after=timedelta(seconds=env.number("ERROR_RETRY_AFTER_SECONDS", 600)),
            serves=serves,
        )


class ErpWebhookRoot(Root[Settings]):
    @cached_property
    def publisher(self) -> Publisher:
        with importing():
            from shared.adapters.pubsub import PubSubPublisher

        timeout_s = self.settings.ingress.publish_timeout_s
        return PubSubPublisher(self.common.project, timeout_s=timeout_s)

    @cached_property
    def ingress(self) -> Ingress:
        from shared.ingress.webhook import Ingress

        if RECEIVER not in self.settings.serves:
            # Its settings hold no webhook secret: an Ingress without one would accept anything.
            raise ConfigurationError(
                f"this instance serves {', '.join(sorted(self.settings.serves))}, not {RECEIVER}:"
                " it has no webhook secret"
            )
        ingress = self.settings.ingress
        return Ingress(
            site=self.common.site,
            webhook_secret=ingress.webhook_secret,
            routes=self.common.routes,
            publisher=self.publisher,
            clock=self.clock,
            max_body_bytes=ingress.max_body_bytes,
        )

    @cached_property
    def dead_letters(self) -> DeadLetterRecorder:
        from shared.platform.runtime import DeadLetterRecorder

        return DeadLetterRecorder(errors=self.stores.errors, clock=self.clock)

    @cached_property
    def triage(self) -> ErrorTriage:
        from shared.operations.triage import ErrorTriage

        return ErrorTriage(
            errors=self.stores.errors,
            publisher=self.publisher,
            routes=self.common.routes,
            erp=lambda: self.erpnext,
            site=self.common.site,
            jobs=self.jobs,
            clock=self.clock,
            retry_after=self.settings.error_retry_after,
        )

    @cached_property
    def admin_api(self) -> AdminApi:
        from shared.operations.admin_api import AdminApi

        return AdminApi(
            auth=self.auth, triage=lambda: self.triage, executions=self.stores.executions
        )


def from_environment() -> ErpWebhookRoot:
    """The root of this instance, from its environment; refuses to start on any bad setting."""
    from shared.roots import start

    return ErpWebhookRoot(start("erp_webhook"))
