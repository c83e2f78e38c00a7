"""erp_webhook's root: the front door (signed webhooks to Pub/Sub), the dead-letter recorder, and
operations (the admin API, the triage and scheduled retry of error records)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from shared.ingress.settings import IngressSettings
from shared.platform.settings import AdminAccess, Common, EnvReader, ErpNextAccess
from shared.roots.base import Root, importing

if TYPE_CHECKING:
    from shared.ingress.webhook import Ingress
    from shared.operations.admin_api import AdminApi
    from shared.operations.triage import ErrorTriage
    from shared.platform.ports import Publisher
    from shared.platform.runtime import DeadLetterRecorder


@dataclass(frozen=True, slots=True)
class Settings:
    common: Common
    ingress: IngressSettings
    admin: AdminAccess
    erpnext: ErpNextAccess | None
    """Optional: only the replay of a document as it is now reads ERPNext."""
    error_retry_after: timedelta = timedelta(minutes=10)
    """The scheduled retry replays a pending error record once it has been quiet this long."""

    @classmethod
    def read(cls, env: EnvReader) -> Settings:
        common = Common.read(env)
        return cls(
            common=common,
            ingress=IngressSettings.read(env, site=common.site),
            admin=AdminAccess.read(env),
            erpnext=ErpNextAccess.read(env, required=False),
            error_retry_after=timedelta(seconds=env.number("ERROR_RETRY_AFTER_SECONDS", 600)),
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
