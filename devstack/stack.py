"""The local runner: emulators on free ports, every function under functions-framework, and the wiring.

Topics, dead-letter topic and push subscriptions are created as infra/ declares them in the cloud;
each push endpoint carries its topic in the path, as Eventarc's CloudEvents name their source.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from devstack.drive import DriveStandIn
from devstack.emulators import Emulators, running_emulators
from devstack.erpnext import ErpNextStandIn
from devstack.google_oidc import OidcIssuer
from devstack.processes import ServerProcess, launch
from devstack.sheets import SheetsStandIn
from devstack.sockets import free_port
from devstack.telegram import TelegramStandIn
from devstack.twilio import TwilioStandIn
from shared.adapters.firestore import FirestoreStores
from shared.adapters.pubsub import ensure_push_subscription, ensure_topic
from shared.adapters.sheets import GoogleSheetLayout, sheets_client
from shared.adapters.telegram import TelegramApi
from shared.core.routing import DEAD_LETTER, DEAD_LETTER_SUBSCRIPTION, SUBSCRIPTIONS, TOPICS
from shared.roots import read_settings
from shared.sheets.layout import TRACKER_TAB
from shared.sheets.sync import set_up_sheet

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
DRIVE_ACCOUNT = "bridge@bridge-local.iam.gserviceaccount.com"
BOT_USERNAME = "erp_bridge_bot"
CHATS = {"service_team": -1001001, "oncall": -1001002, "admins": -1001003}
"""The named group chats alerts go to (negative ids: groups)."""
TWILIO_ACCOUNT = "AC" + "0" * 32
WHATSAPP_FROM = "+14155238886"
WHATSAPP_PUBLIC_URL = "https://bridge.example.com/whatsapp"
"""Where Twilio believes the webhook is (a load balancer's address): signatures cover it."""
TELEGRAM_PUBLIC_URL = "https://bridge.example.com/telegram/"
"""The webhook as Telegram is told of it (HTTPS on 443); the stand-in's front reaches the function."""
COMPLETED_TEMPLATE = "HX" + "c0" * 16
SCHEDULER_ACCOUNT = "scheduler@bridge-local.iam.gserviceaccount.com"
ADMIN_AUDIENCE = "https://bridge.example.com/"
"""One audience for every function here (in the cloud: each function's own URL)."""


@dataclass(frozen=True)
class FunctionSpec:
    """One deployable function: its folder under functions/ and its entry point."""

    folder: str
    target: str


WEBHOOK = FunctionSpec("erp_webhook", "receive_erp_webhook")
DEAD_LETTERS = FunctionSpec("erp_webhook", "record_dead_letter")
RECONCILE = FunctionSpec("sheets_sync", "reconcile_invoices")
BACKFILL = FunctionSpec("drive_upload", "backfill_attachments")
DOWNLOAD = FunctionSpec("drive_upload", "download_attachment")
TELEGRAM_WEBHOOK = FunctionSpec("notifier", "telegram_webhook")
WHATSAPP_WEBHOOK = FunctionSpec("notifier", "whatsapp_webhook")
DRAIN = FunctionSpec("notifier", "drain_alerts")
DIGEST = FunctionSpec("notifier", "daily_digest")
ADMIN = FunctionSpec("erp_webhook", "admin_api")
RETRY = FunctionSpec("erp_webhook", "retry_errors")
HTTP_SPECS = (
    WEBHOOK,
    ADMIN,
    RETRY,
    RECONCILE,
    BACKFILL,
    DOWNLOAD,
    TELEGRAM_WEBHOOK,
    WHATSAPP_WEBHOOK,
    DRAIN,
    DIGEST,
)
HTTP_TARGETS = {spec.target for spec in HTTP_SPECS}
CONSUMER_FUNCTIONS = {
    "sheets_sync": FunctionSpec("sheets_sync", "sync_invoice_sheet"),
    "drive_upload": FunctionSpec("drive_upload", "upload_attachment"),
    "notifier": FunctionSpec("notifier", "send_alerts"),
}


@dataclass
class RunningFunction(ServerProcess):
    spec: FunctionSpec
    metrics_port: int = 0
    """Where its Prometheus endpoint listens (METRICS_PORT): `metrics_url`."""

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.metrics_port) if self.metrics_port else (self.port,)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


def launch_function(
    spec: FunctionSpec,
    env: Mapping[str, str],
    log_dir: Path,
    port: int | None = None,
    metrics_port: int | None = None,
    *,
    serve_metrics: bool = True,
) -> RunningFunction:
    """Start one function under functions-framework on a free port, its /metrics on another
    (unless `serve_metrics` is false: no METRICS_PORT, as infra/ deploys it); `wait_serving`
    waits for it."""
    port = port or free_port()
    env = {key: value for key, value in env.items() if key != "METRICS_PORT"}
    if serve_metrics:
        metrics_port = metrics_port or free_port()
        env["METRICS_PORT"] = str(metrics_port)
    else:
        metrics_port = 0
    log_path = log_dir / f"{spec.target}.log"
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        f"--target={spec.target}",
        f"--source={ROOT / 'functions' / spec.folder / 'main.py'}",
        f"--port={port}",
        "--host=127.0.0.1",
    ]
    if spec.target not in HTTP_TARGETS:
        command.append("--signature-type=cloudevent")
    server = launch(spec.target, command, port=port, log_path=log_path, env=env, cwd=ROOT)
    return RunningFunction(
        server.name, server.port, server.process, server.log_path, spec, metrics_port
    )


def scrape(url: str) -> list[Sample]:
    """What a Prometheus server would read from one endpoint; [] when it does not answer."""
    try:
        response = requests.get(url, timeout=10)
        response.raise_for_status()
    except requests.RequestException:
        return []
    families = text_string_to_metric_families(response.text)
    return [sample for family in families for sample in family.samples]


def wait_serving(running: RunningFunction) -> RunningFunction:
    running.wait_listening(START_TIMEOUT_S)
    return running


@dataclass
class Devstack:
    """Everything running; `webhook_url` is where ERPNext (or its stand-in) sends webhooks."""

    emulators: Emulators
    env: dict[str, str]
    log_dir: Path
    erpnext: ErpNextStandIn
    sheets: SheetsStandIn
    spreadsheet_id: str
    drive: DriveStandIn
    telegram: TelegramStandIn
    twilio: TwilioStandIn
    oidc: OidcIssuer
    functions: dict[str, RunningFunction] = field(default_factory=dict)
    _stores: FirestoreStores | None = None
    _past_logs: dict[str, list[Path]] = field(default_factory=dict)
    """The logs of a function's earlier processes (it was restarted): each process has its own."""

    def tracker_rows(self) -> list[list[object]]:
        """The Invoice Tracker as a person sees it: header first."""
        return list(self.sheets.values(self.spreadsheet_id, TRACKER_TAB, "FORMATTED_VALUE"))

    def tracker_row(self, invoice: str) -> dict[str, object] | None:
        """One invoice's row as {header: value}; None when the sheet has no row for it."""
        header, *rows = self.tracker_rows() or [[]]
        for row in rows:
            if row and row[0] == invoice:
                return dict(zip(header, [*row, *[""] * (len(header) - len(row))], strict=True))
        return None

    @property
    def project(self) -> str:
        return self.emulators.project

    @property
    def webhook_url(self) -> str:
        return self.functions[WEBHOOK.target].url + "/"

    def stores(self) -> FirestoreStores:
        """This process's view of the Firestore records the functions write."""
        if self._stores is None:
            self._stores = FirestoreStores(self.project)
        return self._stores

    def outboxes_empty(self) -> bool:
        """No sheet change and no alert waits to be written or sent: every effect queued so far
        has happened (or failed into a record)."""
        stores = self.stores()
        return not stores.sheet_outbox.pending(1) and not stores.alerts.pending(1)

    def consumer_log(self) -> list[dict[str, object]]:
        """Every JSON log line the consumer functions wrote, in time order."""
        entries: list[dict[str, object]] = []
        for target in (spec.target for spec in CONSUMER_FUNCTIONS.values()):
            for log_path in [*self._past_logs.get(target, []), self.functions[target].log_path]:
                for line in log_path.read_text(errors="replace").splitlines():
                    if line.startswith("{"):
                        entries.append(json.loads(line))
        return sorted(entries, key=lambda entry: str(entry.get("time")))

    def outcomes(self) -> list[dict[str, object]]:
        """Every consumer outcome the functions logged, in order."""
        return [entry for entry in self.consumer_log() if "outcome" in entry]

    def actions(self) -> dict[tuple[str, str], str]:
        """What each consumer did for an event it applied: (consumer, event id) -> action."""
        return {
            (str(entry.get("consumer")), str(entry.get("event_id"))): str(entry["action"])
            for entry in self.consumer_log()
            if "action" in entry
        }

    def reconcile(self) -> dict[str, object]:
        """What Cloud Scheduler does: call the reconciliation function; its JSON answer."""
        return self._scheduled(RECONCILE)

    def backfill(self) -> dict[str, object]:
        """What Cloud Scheduler does: call the attachment backfill; its JSON answer."""
        return self._scheduled(BACKFILL)

    @property
    def download_url(self) -> str:
        return self.functions[DOWNLOAD.target].url + "/"

    def drain_alerts(self) -> dict[str, object]:
        """What Cloud Scheduler does: drain alerts a throttle left behind."""
        return self._scheduled(DRAIN)

    def daily_digest(self) -> dict[str, object]:
        """What Cloud Scheduler does each morning: the digest to the admins' chat."""
        return self._scheduled(DIGEST)

    def retry_errors(self) -> dict[str, object]:
        """What Cloud Scheduler does: replay pending errors whose failure is old enough."""
        return self._scheduled(RETRY)

    @property
    def admin_url(self) -> str:
        return self.functions[ADMIN.target].url

    def admin_headers(self) -> dict[str, str]:
        """What Cloud Scheduler sends: an OIDC identity token of its service account."""
        token = self.oidc.token_for(SCHEDULER_ACCOUNT, ADMIN_AUDIENCE)
        return {"Authorization": f"Bearer {token}"}

    def _scheduled(self, spec: FunctionSpec) -> dict[str, object]:
        response = requests.post(
            self.functions[spec.target].url + "/", headers=self.admin_headers(), timeout=300
        )
        answer: dict[str, object] = response.json()
        return answer

    def metrics(self) -> dict[str, list[Sample]]:
        """Every function's /metrics, as Prometheus would scrape them: target -> samples."""
        return {target: scrape(running.metrics_url) for target, running in self.functions.items()}

    def stop_functions(self) -> None:
        for running in self.functions.values():
            running.stop()

    def restart(self, target: str) -> RunningFunction:
        """Start a stopped or killed function again on its port (push endpoints stay valid)."""
        old = self.functions[target]
        old.stop()
        self._past_logs.setdefault(target, []).append(old.log_path)
        self.functions[target] = wait_serving(
            launch_function(
                old.spec, self.env, self.log_dir, port=old.port, metrics_port=old.metrics_port
            )
        )
        return self.functions[target]

    def crash(self, target: str) -> None:
        """kill -9 of the process serving the function's requests (gunicorn's worker) in the
        middle of its work; the master forks a new worker on the same socket, as Cloud Run puts
        a new instance behind the same URL. (Killing the whole function instead would leave
        the port refusing connections, which the Pub/Sub emulator never retries; GCP has no
        such state.)"""
        master = self.functions[target].process.pid
        workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if not workers:
            raise RuntimeError(f"{target} has no worker to kill")
        for worker in workers:
            os.kill(int(worker), signal.SIGKILL)

    def subscribe(self) -> None:
        """Create (or re-point) every push subscription, dead-lettering to DEAD_LETTER."""
        attempts = int(self.env.get("MAX_DELIVERY_ATTEMPTS", "5"))
        for subscription in (*SUBSCRIPTIONS, DEAD_LETTER_SUBSCRIPTION):
            if subscription is DEAD_LETTER_SUBSCRIPTION:
                function = self.functions[DEAD_LETTERS.target]
                dead_letter_topic = None
            else:
                function = self.functions[CONSUMER_FUNCTIONS[subscription.consumer].target]
                dead_letter_topic = DEAD_LETTER
            ensure_push_subscription(
                self.project,
                subscription.name,
                subscription.topic,
                push_endpoint=f"{function.url}/projects/{self.project}/topics/{subscription.topic}",
                dead_letter_topic=dead_letter_topic,
                max_delivery_attempts=attempts,
                min_backoff_s=1,
                max_backoff_s=10,
                ack_deadline_s=30,
            )


@contextmanager
def running_devstack(
    *,
    webhook_secret: str,
    site: str = "erp.example.com",
    extra_env: Mapping[str, str] | None = None,
    project: str = "bridge-local",
    log_dir: Path | None = None,
    emulators: Emulators | None = None,
) -> Iterator[Devstack]:
    """Start emulators (unless given running ones) and all functions, wire topics and push
    subscriptions under `project`; stop everything this call started."""
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="bridge-devstack-"))
    with ExitStack() as stack:
        if emulators is None:
            emulators = stack.enter_context(running_emulators(project, log_dir))
        else:
            emulators = Emulators(emulators.pubsub, emulators.firestore, project)
        api_secret = secrets.token_hex(16)
        erpnext = stack.enter_context(ErpNextStandIn(api_key="devstack", api_secret=api_secret))
        erpnext.seed_demo_data()
        sheets = stack.enter_context(SheetsStandIn())
        spreadsheet_id = sheets.create_spreadsheet("Invoice Tracker")
        drive = stack.enter_context(DriveStandIn())
        telegram_token = f"7000001:{secrets.token_urlsafe(24)}"
        group_window_s = float((extra_env or {}).get("TELEGRAM_GROUP_WINDOW_SECONDS") or 60.0)
        telegram = stack.enter_context(
            TelegramStandIn(telegram_token, username=BOT_USERNAME, group_window_s=group_window_s)
        )
        telegram.added_to(*CHATS.values())
        twilio_token = secrets.token_hex(16)
        twilio = stack.enter_context(
            TwilioStandIn(TWILIO_ACCOUNT, twilio_token, business_number=WHATSAPP_FROM)
        )
        twilio.add_template(
            COMPLETED_TEMPLATE, "Your service request {{1}} ({{2}}) is completed. Thank you!"
        )
        oidc = stack.enter_context(OidcIssuer())
        drive_token = secrets.token_hex(16)
        drive.add_principal(drive_token, DRIVE_ACCOUNT, service_account=True)
        shared_drive = drive.create_shared_drive("ERPNext attachments", {DRIVE_ACCOUNT})
        env = {
            **emulators.env(),
            "ERP_SITE": site,
            "WEBHOOK_SECRET": webhook_secret,
            "LOG_LEVEL": "INFO",
            "ERPNEXT_URL": erpnext.url,
            "ERPNEXT_API_KEY": erpnext.api_key,
            "ERPNEXT_API_SECRET": api_secret,
            "SHEETS_ENDPOINT": sheets.url,
            "SHEETS_SPREADSHEET_ID": spreadsheet_id,
            "SHEETS_GATHER_SECONDS": "0.5",
            "TRACKER_OVERHEAD_PROJECTS": "Overhead",
            "DRIVE_AUTH": "shared_drive",
            "DRIVE_SHARED_DRIVE_ID": shared_drive,
            "DRIVE_ENDPOINT": drive.endpoint,
            "DRIVE_CA_CERTS": drive.ca_file or "",
            "DRIVE_TOKEN": drive_token,
            "TELEGRAM_BOT_TOKEN": telegram_token,
            "TELEGRAM_WEBHOOK_SECRET": secrets.token_urlsafe(24),
            "TELEGRAM_BOT_USERNAME": BOT_USERNAME,
            "TELEGRAM_API_URL": telegram.url,
            "ALERT_CHATS_JSON": json.dumps(CHATS),
            "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT,
            "TWILIO_AUTH_TOKEN": twilio_token,
            "TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
            "TWILIO_API_URL": twilio.base_url,
            "WHATSAPP_WEBHOOK_PUBLIC_URL": WHATSAPP_PUBLIC_URL,
            "WHATSAPP_TEMPLATE_REQUEST_COMPLETED": COMPLETED_TEMPLATE,
            "ADMIN_AUDIENCE": ADMIN_AUDIENCE,
            "ADMIN_ALLOWED_EMAILS": SCHEDULER_ACCOUNT,
            "GOOGLE_CERTS_URL": oidc.certs_url,
            "ADMIN_API_KEY": secrets.token_urlsafe(24),
            **(extra_env or {}),
        }
        set_up_tracker(env)
        saved = {key: os.environ.get(key) for key in emulators.env()}
        os.environ.update(emulators.env())  # this process's admin clients talk to the emulators
        stack.callback(_restore_env, saved)
        for topic in (*TOPICS, DEAD_LETTER):
            ensure_topic(project, topic)
        devstack = Devstack(
            emulators, env, log_dir, erpnext, sheets, spreadsheet_id, drive, telegram, twilio, oidc
        )
        stack.callback(devstack.stop_functions)
        specs = [*HTTP_SPECS, DEAD_LETTERS, *CONSUMER_FUNCTIONS.values()]
        for spec in specs:  # launch all, then wait: each spends seconds importing
            devstack.functions[spec.target] = launch_function(spec, env, log_dir)
        for running in devstack.functions.values():
            wait_serving(running)
        devstack.subscribe()
        set_up_bot_webhooks(devstack)
        yield devstack


def set_up_bot_webhooks(devstack: Devstack) -> None:
    """What an operator does once: point Telegram and Twilio at the two webhooks."""
    config = read_settings("notifier", devstack.env).alerts
    api = TelegramApi(config.telegram_token, base_url=devstack.telegram.base_url)
    devstack.telegram.front(
        TELEGRAM_PUBLIC_URL, devstack.functions[TELEGRAM_WEBHOOK.target].url + "/"
    )
    api.set_webhook(TELEGRAM_PUBLIC_URL, config.telegram_secret)
    devstack.twilio.set_webhook(
        devstack.functions[WHATSAPP_WEBHOOK.target].url + "/", public_url=WHATSAPP_PUBLIC_URL
    )


def set_up_tracker(env: Mapping[str, str]) -> int:
    """What an operator's `bridge sheet-setup` does, with the devstack's settings."""
    config = read_settings("sheets_sync", env).sheets
    service = sheets_client(endpoint=config.endpoint, timeout_s=config.timeout_s)
    return set_up_sheet(GoogleSheetLayout(service, config.spreadsheet_id), config.tracker)


def _restore_env(saved: Mapping[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
