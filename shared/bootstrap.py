"""The composition root: builds each function's services once per instance, lazily, from Settings.

Adapters are imported inside the builders, so a function pays only for the SDKs it uses.
"""

from __future__ import annotations

import functools
import gc
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigurationError
from shared.ingress.webhook import Ingress
from shared.platform import logs, metrics, observability
from shared.platform.ports import SyncExecutionLog
from shared.platform.runtime import Consumer, DeadLetterRecorder, Effect
from shared.settings import SecretReader, Settings

if TYPE_CHECKING:
    from shared.adapters.bot_store import FirestoreBotStore
    from shared.adapters.erpnext import ErpNextClient
    from shared.adapters.erpnext_servicedesk import ErpNextServiceDesk
    from shared.adapters.firestore import FirestoreStores
    from shared.adapters.telegram import TelegramApi
    from shared.alerts.notifier import Notifier
    from shared.alerts.settings import NotifierSettings
    from shared.bot.commands import TelegramBot
    from shared.bot.webhooks import TelegramWebhook, WhatsAppWebhook
    from shared.drive.filing import AttachmentProxy, DriveBackfill, DriveUploader
    from shared.operations.admin_api import AdminApi
    from shared.operations.triage import ErrorTriage
    from shared.platform.auth import AdminAuth
    from shared.platform.jobs import Jobs
    from shared.sheets.reconcile import InvoiceReconciliation
    from shared.sheets.rows import TrackerConfig
    from shared.sheets.sync import InvoiceSheetSync


FUNCTIONS = ("erp_webhook", "sheets_sync", "drive_upload", "notifier")


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
    if os.environ.get("METRICS_PORT"):
        # Only where something scrapes them: the exporter and the OTel SDK cost ~45 ms of cold
        # start, and without a provider the instruments are OpenTelemetry's no-ops.
        metrics.install_prometheus()
    project = os.environ.get("GCP_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT") or ""
    reader = _secret_reader(project) if project else None
    config = Settings.from_env(os.environ, function=function, read_secret=reader)
    observability.start(function, config)  # secrets scrubbed; Sentry and /metrics when configured
    return config


@contextmanager
def _importing() -> Iterator[None]:
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


@functools.cache
def ingress() -> Ingress:
    with _importing():
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
    with _importing():
        from shared.adapters.error_count import count_pending_errors
        from shared.adapters.firestore import FirestoreStores

    stores = FirestoreStores(project)
    metrics.watch_pending_errors(functools.partial(count_pending_errors, stores.connection))
    return stores


@functools.cache
def erpnext(function: str) -> ErpNextClient:
    """The ERPNext REST client with the function's credentials (checked by its settings)."""
    from shared.adapters.erpnext import ErpNextClient

    config = settings(function)
    if not (config.erpnext_url and config.erpnext_api_key and config.erpnext_api_secret):
        raise ConfigurationError(f"{function} has no ERPNext address or API credentials")
    return ErpNextClient(
        config.erpnext_url,
        config.erpnext_api_key,
        config.erpnext_api_secret,
        timeout_s=config.erpnext_timeout_s,
    )


def _tracker() -> tuple[Settings, TrackerConfig]:
    config = settings("sheets_sync")
    if config.tracker is None:
        raise ConfigurationError("sheets_sync has no Invoice Tracker configuration")
    return config, config.tracker


def sheets_service() -> Callable[[], Any]:
    from shared.adapters.sheets import sheets_client

    config = settings("sheets_sync")
    return sheets_client(endpoint=config.sheets_endpoint, timeout_s=config.sheets_timeout_s)


@functools.cache
def invoice_sheet_sync() -> InvoiceSheetSync:
    from shared.adapters.erpnext_directory import ErpNextDirectory
    from shared.adapters.sheets import GoogleInvoiceSheet
    from shared.sheets.sync import InvoiceSheetSync

    config, tracker = _tracker()
    stores = _firestore(config.project)
    return InvoiceSheetSync(
        outbox=stores.sheet_outbox,
        lease=stores.sheet_flush_lease,
        sheet=GoogleInvoiceSheet(sheets_service(), config.spreadsheet_id, tracker),
        directory=ErpNextDirectory(
            erpnext("sheets_sync"), utc_now, manager_field=config.project_manager_field
        ),
        errors=stores.errors,
        config=tracker,
        owner=instance_id(),
        clock=utc_now,
        gather_s=config.sheets_gather_s,
    )


@functools.cache
def invoice_reconciliation() -> InvoiceReconciliation:
    from shared.sheets.reconcile import InvoiceReconciliation

    config, _ = _tracker()
    stores = _firestore(config.project)
    return InvoiceReconciliation(
        erp=erpnext("sheets_sync"),
        outbox=stores.sheet_outbox,
        sync=invoice_sheet_sync(),
        watermarks=stores.watermarks,
        site=config.site or config.erpnext_url or "",
        clock=utc_now,
    )


@functools.cache
def drive_uploader() -> DriveUploader:
    """The drive_upload service; a shared drive is checked once, here, so a wrong id says so."""
    from shared.adapters.drive import GoogleDrive, drive_client, drive_credentials
    from shared.drive.filing import DriveUploader

    config = settings("drive_upload")
    drive_config = config.drive
    if drive_config is None:
        raise ConfigurationError("drive_upload has no Drive configuration")
    credentials = drive_credentials(drive_config)
    service = drive_client(
        credentials,
        endpoint=drive_config.endpoint,
        ca_certs=drive_config.ca_certs,
        timeout_s=drive_config.timeout_s,
    )
    drive = GoogleDrive(service, chunk=drive_config.chunk_bytes)
    if drive_config.auth == "shared_drive" and drive_config.shared_drive:
        drive.check_shared_drive(drive_config.shared_drive)
    return DriveUploader(
        drive=drive,
        erp=erpnext("drive_upload"),
        folders=_firestore(config.project).drive_folders,
        config=drive_config,
        site=config.site or config.erpnext_url or "",
        owner=instance_id(),
        clock=utc_now,
    )


@functools.cache
def attachment_proxy() -> AttachmentProxy:
    from shared.adapters.erpnext import ErpNextClient
    from shared.drive.filing import AttachmentProxy

    config = settings("drive_upload")
    uploader = drive_uploader()
    url = config.erpnext_url or ""

    def as_user(token: str) -> ErpNextClient:
        key, _, secret = token.partition(":")
        return ErpNextClient(url, key, secret, timeout_s=config.erpnext_timeout_s)

    return AttachmentProxy(
        drive=uploader.drive, erp=uploader.erp, config=uploader.config, as_user=as_user
    )


@functools.cache
def drive_backfill() -> DriveBackfill:
    from shared.drive.filing import DriveBackfill

    config = settings("drive_upload")
    stores = _firestore(config.project)
    return DriveBackfill(
        uploader=drive_uploader(),
        erp=erpnext("drive_upload"),
        errors=stores.errors,
        clock=utc_now,
    )


def _notifier_settings() -> tuple[Settings, NotifierSettings]:
    config = settings("notifier")
    if config.notifier is None:
        raise ConfigurationError("notifier has no Telegram configuration")
    return config, config.notifier


@functools.cache
def service_desk() -> ErpNextServiceDesk:
    from shared.adapters.erpnext_servicedesk import DeskConfig, ErpNextServiceDesk

    config, _ = _notifier_settings()
    return ErpNextServiceDesk(
        erpnext("notifier"), DeskConfig(doctype=config.service_request_doctype)
    )


@functools.cache
def telegram_api() -> TelegramApi:
    from shared.adapters.telegram import TelegramApi

    _, notifier_config = _notifier_settings()
    base = notifier_config.telegram_api_url
    return TelegramApi(
        notifier_config.telegram_token,
        base_url=f"{base}/bot" if base else None,
        base_file_url=f"{base}/file/bot" if base else None,
    )


@functools.cache
def notifier() -> Notifier:
    from shared.adapters.erpnext_directory import ErpNextDirectory
    from shared.adapters.twilio import WhatsAppSender
    from shared.alerts.notifier import AlertDrainer, AlertPlanner, Notifier, NotifierConfig
    from shared.alerts.pacing import Limits

    config, notifier_config = _notifier_settings()
    stores = _firestore(config.project)
    alert_config = NotifierConfig(
        rules=notifier_config.rules,
        chats=notifier_config.chats,
        site_url=notifier_config.site_url,
        names=notifier_config.names,
        telegram_limits=Limits(group_window_s=notifier_config.group_window_s),
        budget_s=notifier_config.budget_s,
    )
    whatsapp = None
    if notifier_config.twilio_account_sid and notifier_config.twilio_auth_token:
        whatsapp = WhatsAppSender(
            notifier_config.twilio_account_sid,
            notifier_config.twilio_auth_token,
            notifier_config.whatsapp_from or "",
            base_url=notifier_config.twilio_api_url,
            status_callback_url=notifier_config.whatsapp_public_url,
        )
    directory = ErpNextDirectory(
        erpnext("notifier"), utc_now, manager_field=config.project_manager_field
    )
    return Notifier(
        planner=AlertPlanner(
            config=alert_config, directory=directory, links=_bot_store(), desk=service_desk()
        ),
        drainer=AlertDrainer(
            outbox=stores.alerts,
            lease=stores.alert_drain_lease,
            telegram=telegram_api(),
            whatsapp=whatsapp,
            sessions=stores.whatsapp_sessions,
            errors=stores.errors,
            config=alert_config,
            owner=instance_id(),
            clock=utc_now,
        ),
        desk=service_desk(),
        clock=utc_now,
    )


@functools.cache
def _bot_store() -> FirestoreBotStore:
    from shared.adapters.bot_store import FirestoreBotStore

    config, _ = _notifier_settings()
    return FirestoreBotStore(_firestore(config.project).connection)


@functools.cache
def telegram_bot() -> TelegramBot:
    from shared.bot.commands import BotConfig, TelegramBot

    _, notifier_config = _notifier_settings()
    emergency = notifier_config.names.emergency_priorities[:1]
    return TelegramBot(
        username=notifier_config.bot_username,
        desk=service_desk(),
        store=_bot_store(),
        files=telegram_api(),
        clock=utc_now,
        config=BotConfig(
            priorities=("Low", "Medium", "High", *emergency),
            bootstrap_admin_ids=notifier_config.bootstrap_admin_ids,
        ),
    )


@functools.cache
def telegram_webhook() -> TelegramWebhook:
    from shared.bot.webhooks import TelegramWebhook

    _, notifier_config = _notifier_settings()
    return TelegramWebhook(
        bot=telegram_bot(),
        store=_bot_store(),
        sender=telegram_api(),
        secret=notifier_config.telegram_secret,
        clock=utc_now,
    )


@functools.cache
def whatsapp_webhook() -> WhatsAppWebhook:
    from shared.adapters.twilio import signature_valid
    from shared.bot.webhooks import WhatsAppWebhook
    from shared.errors import UpstreamRejected

    config, notifier_config = _notifier_settings()
    if not (notifier_config.twilio_auth_token and notifier_config.whatsapp_public_url):
        raise ConfigurationError("WhatsApp is not configured (TWILIO_* settings)")
    service = notifier()
    stores = _firestore(config.project)

    def on_failed(sid: str, code: str) -> None:
        alert = stores.alerts.by_message(sid)
        if alert is not None:
            failure = UpstreamRejected(
                f"WhatsApp did not deliver it (error {code})", service="twilio"
            )
            service.drainer.record(alert, failure, now=utc_now())

    return WhatsAppWebhook(
        desk=service_desk(),
        sessions=stores.whatsapp_sessions,
        auth_token=notifier_config.twilio_auth_token,
        public_url=notifier_config.whatsapp_public_url,
        signature_valid=signature_valid,
        clock=utc_now,
        on_failed=on_failed,
    )


def _effect(name: str, project: str) -> Effect:
    if name == "sheets_sync":
        return invoice_sheet_sync().enqueue
    if name == "drive_upload":
        return drive_uploader().apply
    if name == "notifier":
        return notifier().enqueue
    raise ConfigurationError(f"no consumer is called {name!r}")


@functools.cache
def consumer(name: str) -> Consumer:
    config = settings(name)
    stores = _firestore(config.project)
    return Consumer(
        name=name,
        effect=_effect(name, config.project),
        claims=stores.claims,
        versions=stores.versions,
        errors=stores.errors,
        owner=instance_id(),
        clock=utc_now,
        lease=config.claim_lease,
        max_age=config.max_event_age,
        skip_stale=name != "notifier",
    )


@functools.cache
def dead_letter_recorder() -> DeadLetterRecorder:
    config = settings("dead_letter")
    return DeadLetterRecorder(errors=_firestore(config.project).errors, clock=utc_now)


@functools.cache
def admin_auth(function: str) -> AdminAuth:
    """Who may call `function`'s admin and scheduled endpoints."""
    from shared.adapters.google_identity import GoogleIdTokens
    from shared.platform.auth import AdminAuth

    config = settings(function)
    return AdminAuth(
        audience=config.admin_audience,
        allowed=config.admin_allowed,
        tokens=GoogleIdTokens(config.google_certs_url) if config.admin_audience else None,
        local_key=config.admin_key,
    )


@functools.cache
def jobs(function: str) -> Jobs:
    """Every scheduled job `function` runs, and every `bridge` command that runs one: locked
    and recorded alike."""
    from shared.platform.jobs import Jobs

    stores = _firestore(settings(function).project)
    return Jobs(
        lease=stores.lease, executions=stores.executions, owner=instance_id(), clock=utc_now
    )


def executions(function: str) -> SyncExecutionLog:
    return _firestore(settings(function).project).executions


@functools.cache
def error_triage() -> ErrorTriage:
    from shared.operations.triage import ErrorTriage

    config = settings("erp_webhook")
    return ErrorTriage(
        errors=_firestore(config.project).errors,
        publisher=ingress().publisher,
        routes=config.routes,
        erp=lambda: erpnext("erp_webhook"),
        site=config.site,
        jobs=jobs("erp_webhook"),
        clock=utc_now,
        retry_after=config.error_retry_after,
    )


@functools.cache
def admin_api() -> AdminApi:
    from shared.operations.admin_api import AdminApi

    return AdminApi(
        auth=admin_auth("erp_webhook"), desk=error_triage, executions=executions("erp_webhook")
    )


def reset() -> None:
    """Forget every built service, so the next call reads the environment again (tests, reloads)."""
    builders = (
        instance_id,
        settings,
        ingress,
        _firestore,
        erpnext,
        invoice_sheet_sync,
        invoice_reconciliation,
        drive_uploader,
        drive_backfill,
        attachment_proxy,
        service_desk,
        telegram_api,
        notifier,
        _bot_store,
        telegram_bot,
        telegram_webhook,
        whatsapp_webhook,
        admin_auth,
        jobs,
        error_triage,
        admin_api,
        consumer,
        dead_letter_recorder,
    )
    for builder in builders:
        builder.cache_clear()
