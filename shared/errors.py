"""The one error tree of the bridge; the runtime wrappers alone turn it into ack, retry or an HTTP answer.

    BridgeError                      base, carries context (event_id, doctype, name)
    ├── Retryable                    raise -> Pub/Sub redelivers / webhook answers 503
    │   ├── UpstreamUnavailable      429, 5xx, timeouts, connection errors
    │   └── ClaimHeld                another instance holds the idempotency claim
    └── Permanent                    record an error, acknowledge
        ├── InvalidSignature         the webhook signature is missing or wrong
        ├── InvalidPayload           the body is not what we accept (not JSON, too big, fields missing)
        ├── AccessDenied             the caller may not do this (403)
        ├── AlreadyRunning           a job asked to start while it runs (409)
        ├── MappingError             a valid event that cannot be mapped to the target's shape
        └── UpstreamRejected         an outside service refused the request (4xx other than 429)
            ├── NotFound             ERPNext: the document, file or method does not exist (404)
            ├── PermissionDenied     ERPNext: the API user may not read or write it (403)
            ├── DocumentChanged      ERPNext: modified after it was read (417, optimistic lock)
            ├── ChatMoved            Telegram: the group became a supergroup with a new id
            └── OutsideSessionWindow WhatsApp: free text refused after 24 h; send a template

    ConfigurationError               the deployment is wrong, not the event
    └── StorageQuotaRefused          Drive: a service account writing outside a shared drive

ConfigurationError stands outside the tree. Raised at start (a missing setting), it stops the
instance. Raised while handling an event (ERPNext answers 401, Drive refuses the credentials or
the folder, the sheet's header is not the tracker's), it says the deployment must be fixed, and
no event is to blame: the runtime treats it as a surprise, so the event gets a pending error
record saying what to fix and is retried (Pub/Sub redelivers until the dead letter keeps it),
and once the settings are right the retries and replays let the backlog through.
"""

from __future__ import annotations

from collections.abc import Mapping


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose; `context` names the event it concerns."""

    def __init__(self, message: str, **context: str) -> None:
        super().__init__(message)
        self.message = message
        self.context: Mapping[str, str] = context

    def __str__(self) -> str:
        if not self.context:
            return self.message
        where = ", ".join(f"{key}={value}" for key, value in sorted(self.context.items()))
        return f"{self.message} ({where})"


class Retryable(BridgeError):
    """Trying again later may succeed: Pub/Sub redelivers, the webhook answers 503."""


class UpstreamUnavailable(Retryable):
    """An outside service was throttling, failing (5xx), slow or unreachable.

    `retry_after_s` is the wait the service asked for (Telegram's retry_after, Retry-After).
    `maybe_applied`: the request left and its answer was lost (a read timeout, a dropped
    connection), so the service may have done it; a refusal or a failed connect is never that."""

    def __init__(
        self,
        message: str,
        *,
        service: str,
        retry_after_s: float | None = None,
        maybe_applied: bool = False,
        **context: str,
    ) -> None:
        super().__init__(message, service=service, **context)
        self.service = service
        self.retry_after_s = retry_after_s
        self.maybe_applied = maybe_applied


class ClaimHeld(Retryable):
    """Another instance holds the idempotency claim of this event and its lease has not expired."""


class Permanent(BridgeError):
    """Trying again cannot help: the event becomes an error record and is acknowledged."""


class InvalidSignature(Permanent):
    """The X-Frappe-Webhook-Signature header is missing or does not match the body."""


class InvalidPayload(Permanent):
    """The request or message is not something the bridge accepts."""

    def __init__(self, message: str, *, status: int = 400, **context: str) -> None:
        super().__init__(message, **context)
        self.status = status


class AccessDenied(Permanent):
    """The person asking may not have what they asked for (HTTP 403)."""


class AlreadyRunning(Permanent):
    """A scheduled job was asked to start while a run of it holds its lock (HTTP 409)."""


class MappingError(Permanent):
    """A well-formed event that cannot be turned into the target's shape."""


class UpstreamRejected(Permanent):
    """An outside service refused the request with a 4xx other than 429."""

    def __init__(self, message: str, *, service: str, **context: str) -> None:
        super().__init__(message, service=service, **context)
        self.service = service


class ConfigurationError(Exception):
    """Settings are missing or contradict each other; raised at instance start, never per event."""


class NotFound(UpstreamRejected):
    """ERPNext: the document, file or method does not exist (any more): HTTP 404."""


class PermissionDenied(UpstreamRejected):
    """ERPNext: the API user is authenticated but may not read or write this: HTTP 403."""


class DocumentChanged(UpstreamRejected):
    """ERPNext: optimistic locking refused a save, the document was modified after it was read
    (HTTP 417)."""


class ChatMoved(UpstreamRejected):
    """Telegram: a group became a supergroup, and Telegram names the chat's new id."""

    def __init__(self, new_chat_id: int) -> None:
        super().__init__("the group was upgraded to a supergroup with a new id", service="telegram")
        self.new_chat_id = new_chat_id


class OutsideSessionWindow(UpstreamRejected):
    """WhatsApp refused free text: the person's last message is more than 24 hours old (63016).
    Send an approved template instead."""

    def __init__(self, message: str, **context: str) -> None:
        super().__init__(message, service="twilio", **context)


class StorageQuotaRefused(ConfigurationError):
    """Drive refused the content: a service account writing outside a shared drive."""
