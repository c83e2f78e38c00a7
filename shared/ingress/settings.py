"""The front door's settings: the webhook secret (or the local-only unsigned mode), the body
limit and how long a publish may take."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.platform.settings import EnvReader

INSECURE_FLAG = "BRIDGE_INSECURE_UNSIGNED_WEBHOOKS"
INSECURE_VALUE = "local-only"


@dataclass(frozen=True, slots=True)
class IngressSettings:
    webhook_secret: str | None = field(default=None, repr=False)
    allow_unsigned: bool = False
    """Local runs only, against the Pub/Sub emulator: webhooks without a signature."""
    max_body_bytes: int = 1_000_000
    publish_timeout_s: float = 10.0

    @classmethod
    def read(cls, env: EnvReader, *, site: str) -> IngressSettings:
        if not site:
            env.problem("ERP_SITE (the ERPNext site name, part of every event id) is not set")
        secret = env.secret("WEBHOOK_SECRET", "webhook-secret")
        unsigned = env.env.get(INSECURE_FLAG) == INSECURE_VALUE
        if unsigned and not env.env.get("PUBSUB_EMULATOR_HOST"):
            env.problem(
                f"{INSECURE_FLAG} is only honoured against the Pub/Sub emulator (local runs)"
            )
        elif secret is None and not unsigned:
            env.problem(
                "WEBHOOK_SECRET is not set (or secret 'webhook-secret'); for a local run "
                f"without signatures set {INSECURE_FLAG}={INSECURE_VALUE}"
            )
        return cls(
            webhook_secret=secret,
            allow_unsigned=unsigned and secret is None,
            max_body_bytes=int(env.number("MAX_BODY_BYTES", 1_000_000)),
            publish_timeout_s=env.number("PUBLISH_TIMEOUT_SECONDS", 10.0),
        )
