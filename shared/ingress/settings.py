"""The front door's settings: the webhook secret (or the local-only unsigned mode), the body
limit and how long a publish may take (the operations' replays publish too)."""

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
    def read(cls, env: EnvReader, *, site: str, receives: bool = True) -> IngressSettings:
        """`receives`: this instance may serve the webhook receiver. Only then is the webhook
        secret read (and required): an instance that never verifies a webhook neither asks for
        it nor can build an `Ingress` (its root refuses), and infra/ does not grant it."""
        if not site:
            env.problem("ERP_SITE (the ERPNext site name, part of every event id) is not set")
        secret = env.secret("WEBHOOK_SECRET", "webhook-secret") if receives else None
        unsigned = receives and env.env.get(INSECURE_FLAG) == INSECURE_VALUE
        if unsigned and not env.env.get("PUBSUB_EMULATOR_HOST"):
            env.problem(
                f"{INSECURE_FLAG} is only honoured against the Pub/Sub emulator (local runs)"
            )
        elif receives and secret is None and not unsigned:
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
