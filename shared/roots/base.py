"""What every function's root builds alike: its clock and instance id, its Firestore stores, the
ERPNext client, the scheduled jobs, who may call its admin endpoints, and its consumer."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property, partial
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from shared.errors import ConfigurationError
from shared.platform import metrics
from shared.platform.settings import MANAGER_FIELD, AdminAccess, Common, ErpNextAccess
from shared.roots import instance_id, utc_now

if TYPE_CHECKING:
    from shared.adapters.erpnext import ErpNextClient
    from shared.adapters.erpnext_directory import ErpNextDirectory
    from shared.adapters.firestore import FirestoreStores
    from shared.platform.auth import AdminAuth
    from shared.platform.jobs import Jobs
    from shared.platform.runtime import Consumer, Effect


class SettingsOfAFunction(Protocol):
    """The sections every function's settings have."""

    @property
    def common(self) -> Common: ...
    @property
    def admin(self) -> AdminAccess: ...
    @property
    def erpnext(self) -> ErpNextAccess | None: ...


S = TypeVar("S", bound=SettingsOfAFunction)


@contextmanager
def importing() -> Iterator[None]:
    """Import an SDK with the cyclic garbage collector paused: imports allocate hundreds of
    thousands of objects and almost no garbage, and the collections they trigger took a quarter
    of the import time (measured here, functions-framework and the Pub/Sub SDK: 0.46 s with,
    0.34 s without). Cold start is what this buys; the collector is back after the import."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


class Root(Generic[S]):
    """A function's services, each built once, on first use; any of them can be handed in.

    `Root(settings, clock=fixed, stores=fakes)` puts the given pieces in place of the ones the
    root would build (each keyword names one of its cached properties).
    """

    def __init__(self, settings: S, **given: object) -> None:
        self.settings = settings
        for name, piece in given.items():
            if not isinstance(getattr(type(self), name, None), cached_property):
                raise TypeError(f"{type(self).__name__} builds nothing called {name!r}")
            self.__dict__[name] = piece  # where cached_property looks first

    @property
    def common(self) -> Common:
        return self.settings.common

    @cached_property
    def clock(self) -> Callable[[], datetime]:
        return utc_now

    @cached_property
    def owner(self) -> str:
        """Who holds this instance's claims and leases."""
        return instance_id()

    @cached_property
    def stores(self) -> FirestoreStores:
        """Every Firestore-backed port, over one connection; the pending-errors gauge reads it."""
        with importing():
            from shared.adapters.error_count import count_pending_errors
            from shared.adapters.firestore import FirestoreStores

        stores = FirestoreStores(self.common.project)
        metrics.watch_pending_errors(partial(count_pending_errors, stores.connection))
        return stores

    @cached_property
    def erpnext(self) -> ErpNextClient:
        """The ERPNext REST client with the function's own token."""
        from shared.adapters.erpnext import ErpNextClient

        access = self.settings.erpnext
        if access is None:
            raise ConfigurationError("this function has no ERPNext address or API credentials")
        return ErpNextClient(
            access.url, access.api_key, access.api_secret, timeout_s=access.timeout_s
        )

    @cached_property
    def directory(self) -> ErpNextDirectory:
        """People and projects in ERPNext: full names, project managers."""
        from shared.adapters.erpnext_directory import ErpNextDirectory

        access = self.settings.erpnext
        manager_field = access.manager_field if access else MANAGER_FIELD
        return ErpNextDirectory(self.erpnext, self.clock, manager_field=manager_field)

    @cached_property
    def jobs(self) -> Jobs:
        """Every scheduled job the function runs, and every `bridge` command that runs one:
        locked and recorded alike."""
        from shared.platform.jobs import Jobs

        return Jobs(
            lease=self.stores.lease,
            executions=self.stores.executions,
            owner=self.owner,
            clock=self.clock,
        )

    @cached_property
    def auth(self) -> AdminAuth:
        """Who may call the function's admin and scheduled endpoints."""
        from shared.adapters.google_identity import GoogleIdTokens
        from shared.platform.auth import AdminAuth

        admin = self.settings.admin
        return AdminAuth(
            audience=admin.audience,
            allowed=admin.allowed,
            tokens=GoogleIdTokens(admin.certs_url) if admin.audience else None,
            local_key=admin.local_key,
        )

    def consumer_of(self, name: str, effect: Effect, *, skip_stale: bool = True) -> Consumer:
        """The exactly-once path in front of `effect`, for the subscription's consumer `name`."""
        from shared.platform.runtime import Consumer

        return Consumer(
            name=name,
            effect=effect,
            claims=self.stores.claims,
            versions=self.stores.versions,
            errors=self.stores.errors,
            owner=self.owner,
            clock=self.clock,
            lease=self.common.claim_lease,
            max_age=self.common.max_event_age,
            skip_stale=skip_stale,
        )

    @property
    def site(self) -> str:
        """The site name events carry (ERP_SITE), or ERPNext's address when it is not set."""
        access = self.settings.erpnext
        return self.common.site or (access.url if access else "")
