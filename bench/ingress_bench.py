"""Ingress and cold-start benchmark: erp_webhook against a naive verify-publish-wait handler.

1. ingress: the Pub/Sub emulator, then the naive handler (bench/naive_webhook.py) and erp_webhook
   (`receive_erp_webhook` under functions-framework, launched as the devstack launches it), one
   after the other against the same emulator and topic. Each is warmed up, then loaded from a
   separate process (bench/load.py) at 16 connections. Reported: accepted requests a second,
   p50/p99 latency, and every request answered 200 found in a pull subscription made before
   the run (by document name).
2. cold start: process start to the first accepted webhook, erp_webhook vs the naive handler; and
   process start to the first 2xx on a trivial request (a CloudEvent for event functions) for
   sync_invoice_sheet, upload_attachment and send_alerts vs a bare functions-framework function.
   The median of several trials.

    python -m bench.ingress_bench [--seconds 15] [--trials 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.figures import Figure, write_figures
from bench.load import LoadResult, frappe_signature, invoice_body
from devstack.emulators import running_emulators
from devstack.processes import ServerProcess, launch
from devstack.sockets import free_port
from devstack.stack import (
    CONSUMER_FUNCTIONS,
    ROOT,
    START_TIMEOUT_S,
    WEBHOOK,
    FunctionSpec,
    launch_function,
    running_devstack,
)
from devstack.stage import precompile
from shared.adapters.pubsub import ensure_topic
from shared.core.routing import DEAD_LETTER, INVOICES, TOPICS

console = Console()
CONNECTIONS = 16
SITE = "erp.example.com"
AUDIT_SUBSCRIPTION = "bench-ingress-audit"
NAIVE = "naive"
ERP_WEBHOOK = "erp_webhook"


@dataclass
class IngressRun:
    name: str
    load: LoadResult
    found_in_pubsub: int = 0
    server_cpu_s: float = 0.0
    """CPU the handler's process group (gunicorn master and worker) spent during the load."""
    emulator_cpu_s: float = 0.0

    def cpu_ms_per_request(self, cpu_s: float) -> float:
        return cpu_s / len(self.load.accepted) * 1000 if self.load.accepted else float("nan")

    def percentile(self, fraction: float) -> float:
        latencies = sorted(sample.latency_s for sample in self.load.accepted)
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))]


@dataclass
class IngressReport:
    runs: dict[str, IngressRun]
    figures: list[Figure] = field(default_factory=list)


def function_command(source: Path, target: str, port: int, *, event: bool = False) -> list[str]:
    """What devstack.stack.launch_function runs, for a source outside functions/."""
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        f"--target={target}",
        f"--source={source}",
        f"--port={port}",
        "--host=127.0.0.1",
    ]
    if event:
        command.append("--signature-type=cloudevent")
    return command


def launch_bench_function(
    source: str, target: str, env: Mapping[str, str], log_dir: Path, *, event: bool = False
) -> ServerProcess:
    port = free_port()
    return launch(
        target,
        function_command(ROOT / "bench" / source, target, port, event=event),
        port=port,
        log_path=log_dir / f"{target}.log",
        env=env,
        cwd=ROOT,
    )


def launch_subject(name: str, env: Mapping[str, str], log_dir: Path) -> ServerProcess:
    """Start erp_webhook or the naive handler; not yet waited for."""
    if name == ERP_WEBHOOK:
        return launch_function(WEBHOOK, env, log_dir, port=free_port(), metrics_port=free_port())
    return launch_bench_function("naive_webhook.py", "naive_webhook", env, log_dir)


def webhook_url(server: ServerProcess) -> str:
    return f"http://{server.host}/"


@contextmanager
def serving(name: str, env: Mapping[str, str], log_dir: Path) -> Iterator[ServerProcess]:
    server = launch_subject(name, env, log_dir)
    try:
        server.wait_listening(START_TIMEOUT_S)
        yield server
    finally:
        server.stop()


def run_load_process(
    url: str, secret: str, *, seconds: float | None, requests_total: int | None, prefix: str
) -> LoadResult:
    """bench/load.py in its own process, with a progress bar over the seconds it runs."""
    with tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        out = Path(folder) / "result.json"
        command = [
            sys.executable,
            "-m",
            "bench.load",
            f"--url={url}",
            f"--secret={secret}",
            f"--connections={CONNECTIONS}",
            f"--prefix={prefix}",
            f"--out={out}",
        ]
        command += [f"--requests={requests_total}"] if requests_total else [f"--seconds={seconds}"]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
        with Progress(
            TextColumn(f"   {prefix}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(prefix, total=seconds)
            started = time.monotonic()
            while process.poll() is None:
                progress.update(task, completed=time.monotonic() - started)
                time.sleep(0.2)
        if process.returncode != 0:
            raise SystemExit(f"the load generator failed ({process.returncode})")
        return LoadResult.read(out)


def pull_names(project: str, subscription: str) -> set[str]:
    """Every message in the subscription, acknowledged; the document names they carry."""
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, subscription)
    names: set[str] = set()
    empty = 0
    with console.status("pulling every message from the audit subscription ..."):
        while empty < 3:
            # Every publish was confirmed before this pull: nothing is still on its way, and an
            # empty pull that waits would cost ~9 s on the emulator.
            response = subscriber.pull(
                request={
                    "subscription": path,
                    "max_messages": 1000,
                    "return_immediately": True,
                },
                timeout=30,
            )
            if not response.received_messages:
                empty += 1
                continue
            empty = 0
            for received in response.received_messages:
                # erp_webhook publishes the envelope; the naive handler the webhook's body
                data = json.loads(received.message.data)
                names.add(str(data.get("name") or data["doc"].get("name")))
            subscriber.acknowledge(
                request={
                    "subscription": path,
                    "ack_ids": [received.ack_id for received in response.received_messages],
                }
            )
    subscriber.close()
    return names


def create_audit_subscription(project: str, topic: str) -> None:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(project, AUDIT_SUBSCRIPTION),
            "topic": subscriber.topic_path(project, topic) if "/" not in topic else topic,
            "ack_deadline_seconds": 600,
        }
    )
    subscriber.close()


def group_cpu_seconds(group: int) -> float:
    """User + system CPU of every live process in a process group, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[2]) == group:  # pgrp; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def measure_ingress(seconds: float, warmup: int, log_dir: Path) -> IngressReport:
    project = "bench-ingress"
    secret = secrets.token_urlsafe(24)
    runs: dict[str, IngressRun] = {}
    with running_emulators(project, log_dir) as emulators:
        os.environ.update(emulators.env())
        for topic in (*TOPICS, DEAD_LETTER):
            ensure_topic(project, topic)
        create_audit_subscription(project, INVOICES)
        env = {
            **emulators.env(),
            "ERP_SITE": SITE,
            "WEBHOOK_SECRET": secret,
            "LOG_LEVEL": "INFO",
            "NAIVE_TOPIC": INVOICES,
        }
        for name in (NAIVE, ERP_WEBHOOK):
            console.print(
                f"[bold]ingress: {name}[/] (warm-up {warmup} requests, then {seconds:g} s)"
            )
            with serving(name, env, log_dir) as server:
                url = webhook_url(server)
                run_load_process(
                    url, secret, seconds=None, requests_total=warmup, prefix=f"WARM-{name}"
                )
                emulator = emulators.pubsub.process.pid
                cpu_before = group_cpu_seconds(server.process.pid), group_cpu_seconds(emulator)
                load = run_load_process(
                    url, secret, seconds=seconds, requests_total=None, prefix=f"LOAD-{name}"
                )
                server_cpu = group_cpu_seconds(server.process.pid) - cpu_before[0]
                emulator_cpu = group_cpu_seconds(emulator) - cpu_before[1]
            runs[name] = IngressRun(name, load, 0, server_cpu, emulator_cpu)
            console.print(
                f"   {len(load.accepted)} accepted of {len(load.samples)} in {load.seconds:.1f} s"
            )
        names = pull_names(project, AUDIT_SUBSCRIPTION)
    for run in runs.values():
        run.found_in_pubsub = sum(1 for sample in run.load.accepted if sample.name in names)
    return IngressReport(runs, ingress_figures(runs))


def ingress_figures(runs: Mapping[str, IngressRun]) -> list[Figure]:
    naive, bridge = runs[NAIVE], runs[ERP_WEBHOOK]
    ratio = bridge.load.throughput / naive.load.throughput if naive.load.throughput else 0.0
    figures = []
    for run in (naive, bridge):
        statuses: dict[int, int] = {}
        for sample in run.load.samples:
            statuses[sample.status] = statuses.get(sample.status, 0) + 1
        figures += [
            Figure(
                f"{run.name}: accepted requests/s ({CONNECTIONS} connections)",
                f"{run.load.throughput:.0f}",
                "-",
                None,
            ),
            Figure(f"{run.name}: p50 latency", f"{run.percentile(0.50) * 1000:.1f} ms", "-", None),
            Figure(
                f"{run.name}: p99 latency",
                f"{run.percentile(0.99) * 1000:.1f} ms",
                "< 100 ms" if run is bridge else "-",
                run.percentile(0.99) < 0.1 if run is bridge else None,
            ),
            Figure(
                f"{run.name}: CPU per accepted request: handler / emulator / load generator",
                " / ".join(
                    f"{run.cpu_ms_per_request(cpu):.2f}"
                    for cpu in (run.server_cpu_s, run.emulator_cpu_s, run.load.cpu_seconds)
                )
                + " ms",
                "-",
                None,
            ),
            Figure(
                f"{run.name}: answers by status",
                ", ".join(f"{code or 'no answer'}: {n}" for code, n in sorted(statuses.items())),
                "all 200",
                set(statuses) == {200},
            ),
            Figure(
                f"{run.name}: answered 200 and found in Pub/Sub",
                f"{run.found_in_pubsub} of {len(run.load.accepted)}",
                "all",
                run.found_in_pubsub == len(run.load.accepted),
            ),
        ]
    figures.append(
        Figure(
            "throughput ratio erp_webhook / naive",
            f"{ratio:.2f}",
            "> 1.0",
            ratio > 1.0,
        )
    )
    return figures


# --- cold start -------------------------------------------------------------------------------


def cloud_event_headers() -> dict[str, str]:
    return {
        "ce-id": uuid.uuid4().hex,
        "ce-specversion": "1.0",
        "ce-source": "//pubsub.googleapis.com/projects/bench/topics/bench",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "Content-Type": "application/json",
    }


def trivial_push_body() -> bytes:
    """A Pub/Sub delivery whose data is not an envelope: the consumer records it and acks."""
    message = {"data": base64.b64encode(b"{}").decode(), "messageId": uuid.uuid4().hex}
    return json.dumps({"message": message, "subscription": "bench"}).encode()


def first_answer(
    server: ServerProcess,
    started: float,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
) -> float:
    """Seconds from `started` to the first 2xx answer, polling as fast as connections refuse."""
    deadline = started + START_TIMEOUT_S
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited; see {server.log_path}")
        try:
            response = requests.post(url, data=body, headers=dict(headers), timeout=30)
        except requests.ConnectionError:
            time.sleep(0.005)
            continue
        if 200 <= response.status_code < 300:
            return time.perf_counter() - started
        time.sleep(0.005)
    raise SystemExit(f"{server.name} gave no 2xx answer in {START_TIMEOUT_S:.0f} s")


@dataclass(frozen=True)
class ColdStartSubject:
    label: str
    spec: FunctionSpec | None
    """A bridge function, or None for a bench/ module (`source`, `target`)."""
    source: str = ""
    target: str = ""
    event: bool = False
    webhook: bool = False
    metrics: bool = False
    """METRICS_PORT set (/metrics served); infra/ deploys without it."""


NAIVE_SUBJECT = ColdStartSubject(NAIVE, None, "naive_webhook.py", "naive_webhook", webhook=True)
WEBHOOK_SUBJECT = ColdStartSubject(ERP_WEBHOOK, WEBHOOK, webhook=True)
WEBHOOK_METRICS_SUBJECT = ColdStartSubject(
    f"{ERP_WEBHOOK} with /metrics", WEBHOOK, webhook=True, metrics=True
)
HELLO_HTTP = ColdStartSubject("bare hello (HTTP)", None, "hello_function.py", "hello_http")
HELLO_EVENT = ColdStartSubject(
    "bare hello (CloudEvent)", None, "hello_function.py", "hello_event", event=True
)
CONSUMERS = [
    ColdStartSubject(spec.target, spec, event=True) for spec in CONSUMER_FUNCTIONS.values()
]


def cold_start_once(
    subject: ColdStartSubject, env: Mapping[str, str], log_dir: Path, secret: str
) -> float:
    started = time.perf_counter()
    if subject.spec is not None:
        server: ServerProcess = launch_function(
            subject.spec, env, log_dir, port=free_port(), serve_metrics=subject.metrics
        )
    else:
        server = launch_bench_function(
            subject.source, subject.target, env, log_dir, event=subject.event
        )
    try:
        if subject.webhook:
            body = invoice_body(f"SINV-COLD-{uuid.uuid4().hex[:12]}")
            headers = {
                "Content-Type": "application/json",
                "X-Frappe-Webhook-Signature": frappe_signature(secret, body),
            }
            return first_answer(server, started, webhook_url(server), body, headers)
        if subject.event:
            url = f"http://{server.host}/"
            return first_answer(server, started, url, trivial_push_body(), cloud_event_headers())
        return first_answer(server, started, f"http://{server.host}/", b"", {})
    finally:
        server.stop()


def measure_cold_starts(trials: int, log_dir: Path) -> tuple[dict[str, list[float]], list[Figure]]:
    """Trials interleaved (one of each subject per round), so drift hits every subject alike."""
    secret = secrets.token_urlsafe(24)
    # As deployed: staging ships bytecode, so no subject compiles its source while we time it.
    precompile(ROOT / "shared", ROOT / "functions", ROOT / "bench")
    subjects = [
        NAIVE_SUBJECT,
        WEBHOOK_SUBJECT,
        WEBHOOK_METRICS_SUBJECT,
        HELLO_HTTP,
        HELLO_EVENT,
        *CONSUMERS,
    ]
    seconds: dict[str, list[float]] = {subject.label: [] for subject in subjects}
    console.print("[bold]cold start[/]: starting the devstack for the functions' settings ...")
    with running_devstack(
        webhook_secret=secret, project="bench-coldstart", log_dir=log_dir
    ) as stack:
        env = {**stack.env, "NAIVE_TOPIC": INVOICES}
        with Progress(
            TextColumn("   cold starts"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("cold starts", total=trials * len(subjects))
            for _ in range(trials):
                for subject in subjects:
                    seconds[subject.label].append(cold_start_once(subject, env, log_dir, secret))
                    progress.advance(task)
    median = {label: statistics.median(values) for label, values in seconds.items()}
    figures = [
        Figure(
            "erp_webhook: process start to first accepted webhook",
            f"{median[ERP_WEBHOOK]:.2f} s",
            f"<= naive {median[NAIVE]:.2f} s",
            median[ERP_WEBHOOK] <= median[NAIVE],
        ),
        Figure(
            "erp_webhook with /metrics (METRICS_PORT set): process start to first accepted webhook",
            f"{median[WEBHOOK_METRICS_SUBJECT.label]:.2f} s",
            f"naive {median[NAIVE]:.2f} s",
            None,
        ),
    ]
    for subject in CONSUMERS:
        bare = median[HELLO_EVENT.label]
        figures.append(
            Figure(
                f"{subject.label}: process start to first acknowledged CloudEvent",
                f"{median[subject.label]:.2f} s",
                f"bare functions-framework {bare:.2f} s",
                None,
            )
        )
    figures.append(
        Figure(
            "bare functions-framework, HTTP: process start to first 200",
            f"{median[HELLO_HTTP.label]:.2f} s",
            "-",
            None,
        )
    )
    return seconds, figures


def print_figures(title: str, figures: list[Figure]) -> None:
    table = Table(title=title)
    for column in ("what", "measured", "target / baseline", "met"):
        table.add_column(column)
    for figure in figures:
        met = "" if figure.ok is None else ("yes" if figure.ok else "[red]NO")
        table.add_row(figure.what, figure.measured, figure.target, met)
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--json", type=Path, help="write the figures here (for bench/report.py)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingress-") as folder:
        report = measure_ingress(args.seconds, args.warmup, Path(folder))
        print_figures("Ingress: erp_webhook vs a naive verify-publish-wait handler", report.figures)
        figures = report.figures
        if not args.skip_cold_start:
            _, cold = measure_cold_starts(args.trials, Path(folder))
            print_figures("Cold start (median of trials)", cold)
            figures = figures + cold
    if args.json:
        write_figures(args.json, figures)
    return 0 if all(figure.ok is not False for figure in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
