"""How every function reads its settings: a typed reader that collects problems, and the
sections more than one function needs (the project, ERPNext's address, who may call the admin
endpoints).

Each feature reads its own section with an `EnvReader` (`shared/ingress/settings.py`,
`shared/sheets/settings.py`, ...); each function's settings are the sections it needs
(`shared/settings.py`). A reader never raises on a bad value: it notes the problem and returns
the default, so one start reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeAlias

from shared.core.claims import MAX_EVENT_AGE
from shared.core.routing import RouteTable, default_routes, parse_routes
from shared.errors import ConfigurationError

MANAGER_FIELD = "project_manager"
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"

EMULATORS = ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST")
"""Set only in local runs: a setting for local runs is refused where neither is."""

SecretReader: TypeAlias = Callable[[str], str | None]
"""Reads a secret by its Secret Manager name (`webhook-secret`); None when it does not exist."""


class EnvReader:
    """Typed reads of an environment; each malformed value becomes a problem, named by its key."""

    def __init__(self, env: Mapping[str, str], read_secret: SecretReader | None = None) -> None:
        self.env = env
        self._read_secret = read_secret
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def text(self, key: str, default: str = "") -> str:
        """The value, stripped; `default` when unset or blank."""
        return self.env.get(key, "").strip() or default

    def optional(self, key: str) -> str | None:
        return self.text(key) or None

    @property
    def local(self) -> bool:
        """A local run, against the emulators."""
        return is_local(self.env)

    def local_only(self, key: str) -> str | None:
        """A setting that points the bridge at a stand-in (an API's address, its certificate or
        token); in the cloud it would hand tokens, or the trust in admin tokens, to whoever
        serves there, so it is refused outside the emulators."""
        value = self.optional(key)
        if value and not self.local:
            self.problem(f"{key} is only honoured against the emulators (local runs)")
            return None
        return value

    def required(self, key: str, meaning: str) -> str:
        value = self.text(key)
        if not value:
            self.problem(f"{key} ({meaning}) is not set")
        return value

    def secret(self, key: str, secret_name: str) -> str | None:
        """From the environment (local runs, or Cloud Functions' secret env vars), otherwise from
        Secret Manager when the function reads it."""
        value = self.env.get(key) or (self._read_secret(secret_name) if self._read_secret else None)
        return value or None

    def number(self, key: str, default: float) -> float:
        """A positive number."""
        raw = self.text(key)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problem(f"{key} must be a number, not {raw!r}")
            return default
        if value <= 0:
            self.problem(f"{key} must be positive, not {raw!r}")
            return default
        return value

    def seconds(self, key: str, default: float) -> float:
        raw = self.text(key)
        try:
            value = float(raw) if raw else default
        except ValueError:
            value = 0.0
        if value <= 0:
            self.problem(f"{key} must be a positive number of seconds, not {raw!r}")
            return default
        return value

    def integer(self, key: str, default: int, *, multiple_of: int = 1, unit: str = "") -> int:
        """A positive whole number, a multiple of `multiple_of` (`unit` says it in words)."""
        raw = self.text(key)
        if not raw:
            return default
        rule = "a positive whole number" + (
            f", a multiple of {multiple_of}{f' ({unit})' if unit else ''}"
            if multiple_of > 1
            else ""
        )
        try:
            value = int(raw)
        except ValueError:
            self.problem(f"{key} must be {rule}, not {raw!r}")
            return default
        if value <= 0 or value % multiple_of:
            self.problem(f"{key} must be {rule}, not {raw!r}")
            return default
        return value

    def flag(self, key: str) -> bool:
        return self.text(key).lower() in ("1", "true", "yes")

    def names(self, key: str, default: str = "") -> tuple[str, ...]:
        """A comma-separated list, blanks dropped."""
        return tuple(part.strip() for part in self.env.get(key, default).split(",") if part.strip())

    def check(self, function: str) -> None:
        """Raise one ConfigurationError naming every problem noted so far."""
        if self.problems:
            raise ConfigurationError(
                f"{function} cannot start; fix these settings:\n- " + "\n- ".join(self.problems)
            )


def is_local(env: Mapping[str, str]) -> bool:
    return any(env.get(host) for host in EMULATORS)


@dataclass(frozen=True, slots=True)
class Common:
    """What every function knows: its project, the ERPNext site, the routing and the claims."""

    project: str
    site: str = ""
    """The ERPNext site name (ERP_SITE); part of every event id."""
    service_request_doctype: str = "Issue"
    service_report_doctype: str = "Service Report"
    routes: RouteTable = field(default_factory=default_routes)
    claim_lease: timedelta = timedelta(seconds=120)
    max_event_age: timedelta = MAX_EVENT_AGE

    @classmethod
    def read(cls, env: EnvReader) -> Common:
        project = env.text("GCP_PROJECT") or env.text("GOOGLE_CLOUD_PROJECT")
        if not project:
            env.problem("GCP_PROJECT (the Google Cloud project id) is not set")
        request_doctype = env.text("SERVICE_REQUEST_DOCTYPE", "Issue")
        report_doctype = env.text("SERVICE_REPORT_DOCTYPE", "Service Report")
        routes = default_routes(request_doctype, report_doctype)
        if env.text("ROUTES_JSON"):
            try:
                routes = parse_routes(env.env["ROUTES_JSON"])
            except ValueError as exc:
                env.problem(f"ROUTES_JSON: {exc}")
        env.local_only("SECRET_MANAGER_ENDPOINT")  # read before the settings: see roots.start
        longest = MAX_EVENT_AGE / timedelta(hours=1)
        max_age = timedelta(hours=env.number("MAX_EVENT_AGE_HOURS", longest))
        if max_age > MAX_EVENT_AGE:
            env.problem(
                f"MAX_EVENT_AGE_HOURS may be at most {longest:g}: an older event's claim may be "
                "gone, and the event would be applied twice"
            )
        return cls(
            project=project,
            site=env.text("ERP_SITE"),
            service_request_doctype=request_doctype,
            service_report_doctype=report_doctype,
            routes=routes,
            claim_lease=timedelta(seconds=env.number("CLAIM_LEASE_SECONDS", 120)),
            max_event_age=max_age,
        )


@dataclass(frozen=True, slots=True)
class ErpNextAccess:
    """ERPNext's address and the bridge's API token; the token never shows in repr."""

    url: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    timeout_s: float = 30.0
    public_url: str = ""
    """The address people open (ERPNEXT_PUBLIC_URL), for links in sheets and messages."""
    manager_field: str = MANAGER_FIELD
    """The Project field that names its manager (PROJECT_MANAGER_FIELD)."""

    @classmethod
    def read(cls, env: EnvReader, *, required: bool) -> ErpNextAccess | None:
        url = env.text("ERPNEXT_URL").rstrip("/")
        key = env.secret("ERPNEXT_API_KEY", "erpnext-api-key")
        secret = env.secret("ERPNEXT_API_SECRET", "erpnext-api-secret")
        timeout_s = env.number("ERPNEXT_TIMEOUT_SECONDS", 30.0)
        if not (url and key and secret):
            if required:
                env.problem(
                    "ERPNEXT_URL, ERPNEXT_API_KEY and ERPNEXT_API_SECRET (or secrets "
                    "'erpnext-api-key', 'erpnext-api-secret') are all needed to read ERPNext"
                )
            return None
        public = env.text("ERPNEXT_PUBLIC_URL").rstrip("/") or url
        manager_field = env.text("PROJECT_MANAGER_FIELD", MANAGER_FIELD)
        return cls(url, key, secret, timeout_s, public, manager_field)


@dataclass(frozen=True, slots=True)
class AdminAccess:
    """Who may call a function's admin API and scheduled endpoints."""

    audience: str | None = None
    """The function's URL, the `aud` of the OIDC tokens Cloud Scheduler and operators send."""
    allowed: frozenset[str] = frozenset()
    """Emails (service accounts, operators) allowed to call the admin API and scheduled jobs."""
    local_key: str | None = field(default=None, repr=False)
    """Local runs: a key accepted instead of a Google identity (`Authorization: Key ...`)."""
    certs_url: str = GOOGLE_CERTS_URL

    @classmethod
    def read(cls, env: EnvReader) -> AdminAccess:
        key = env.env.get("ADMIN_API_KEY") or None
        if key and not env.env.get("FIRESTORE_EMULATOR_HOST"):
            # In the cloud, callers prove a Google identity.
            env.problem(
                "ADMIN_API_KEY is only honoured against the Firestore emulator (local runs)"
            )
        return cls(
            audience=env.optional("ADMIN_AUDIENCE"),
            allowed=frozenset(env.names("ADMIN_ALLOWED_EMAILS")),
            local_key=key,
            certs_url=env.local_only("GOOGLE_CERTS_URL") or GOOGLE_CERTS_URL,
        )
