"""Every benchmark in one run, written to bench/REPORT.md and bench/latency.png.

Ingress and cold start run in this process (their latency samples feed the plot); the Sheets,
Drive and notifier benchmarks run as their own commands with `--json`, their output shown as it
comes. Each figure stands beside its target or its baseline measured in the same run.

    python -m bench.report [--seconds 15] [--trials 5]      # or: make bench
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.figures import Figure, read_figures
from bench.ingress_bench import (
    CONNECTIONS,
    ERP_WEBHOOK,
    NAIVE,
    IngressRun,
    console,
    measure_cold_starts,
    measure_ingress,
    print_figures,
)
from devstack.stack import ROOT

BENCH = ROOT / "bench"
SUBPROCESS_BENCHES = (
    ("Sheets: 1,000-event burst and reconciliation of 10,000 invoices", "bench.sheets_bench"),
    ("Drive: memory while copying a 200 MB attachment", "bench.drive_bench"),
    ("Notifier: alerts drained into the Telegram stand-in", "bench.notifier_bench"),
)


@dataclass
class Section:
    title: str
    figures: list[Figure]
    seconds: float
    note: str = ""


def run_subprocess_bench(title: str, module: str, folder: Path) -> Section:
    console.rule(f"[bold]{title}")
    out = folder / f"{module}.json"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", module, f"--json={out}"], cwd=ROOT, check=False)
    seconds = time.monotonic() - started
    if not out.exists():
        failed = Figure(f"python -m {module}", f"exited {result.returncode}", "runs", False)
        return Section(title, [failed], seconds, "The benchmark failed before writing figures.")
    return Section(title, read_figures(out), seconds)


def markdown_table(figures: Sequence[Figure]) -> str:
    lines = ["| figure | measured | target or baseline | met |", "|---|---|---|---|"]
    for figure in figures:
        met = "" if figure.ok is None else ("pass" if figure.ok else "**FAIL**")
        lines.append(f"| {figure.what} | {figure.measured} | {figure.target} | {met} |")
    return "\n".join(lines)


def write_report(path: Path, sections: Sequence[Section], runs: dict[str, IngressRun]) -> None:
    failed = sum(1 for s in sections for f in s.figures if f.ok is False)
    passed = sum(1 for s in sections for f in s.figures if f.ok)
    lines = [
        "# Benchmark report",
        "",
        f"Written by `make bench` at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on "
        f"{platform.machine()} with {_cpus()} CPUs, Python {platform.python_version()}. "
        f"{passed} figures met their target, {failed} did not. Baselines are measured in the "
        "same run. Load average when the report was written (other work on the machine skews "
        f"throughput and tails): {' / '.join(f'{n:.1f}' for n in os.getloadavg())}.",
        "",
        "![latency of erp_webhook and the naive handler](latency.png)",
        "",
    ]
    for section in sections:
        lines += [f"## {section.title}", "", f"({section.seconds:.0f} s)", ""]
        if section.note:
            lines += [section.note, ""]
        lines += [markdown_table(section.figures), ""]
    path.write_text("\n".join(lines))


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def plot_latency(path: Path, runs: dict[str, IngressRun]) -> None:
    """The cumulative distribution of accepted requests' latency, both handlers on one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name, colour in ((ERP_WEBHOOK, "tab:blue"), (NAIVE, "tab:orange")):
        run = runs[name]
        latencies = sorted(sample.latency_s * 1000 for sample in run.load.accepted)
        if not latencies:
            continue
        share = [(index + 1) / len(latencies) for index in range(len(latencies))]
        label = (
            f"{name}: {run.load.throughput:.0f} req/s, p50 {run.percentile(0.5) * 1000:.0f} ms, "
            f"p99 {run.percentile(0.99) * 1000:.0f} ms"
        )
        axes.plot(latencies, share, color=colour, label=label)
    axes.axvline(100, color="grey", linestyle="--", linewidth=1, label="p99 target: 100 ms")
    axes.axhline(0.99, color="grey", linestyle=":", linewidth=1)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xticks([10, 20, 30, 50, 100, 200, 500])
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("share of accepted requests")
    axes.set_title(f"Webhook latency at {CONNECTIONS} connections (Pub/Sub emulator, loopback)")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="ingress load per handler")
    parser.add_argument("--warmup", type=int, default=500, help="warm-up requests per handler")
    parser.add_argument("--trials", type=int, default=5, help="cold starts per function")
    parser.add_argument("--only-ingress", action="store_true", help="skip Sheets, Drive, notifier")
    args = parser.parse_args()
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="bench-report-") as name:
        folder = Path(name)
        console.rule("[bold]Ingress: erp_webhook vs a naive verify-publish-wait handler")
        started = time.monotonic()
        ingress = measure_ingress(args.seconds, args.warmup, folder)
        print_figures("Ingress", ingress.figures)
        sections.append(
            Section(
                f"Ingress at {CONNECTIONS} connections: erp_webhook vs a naive handler",
                ingress.figures,
                time.monotonic() - started,
                f"Each handler under functions-framework against the same Pub/Sub emulator, "
                f"warmed up with {args.warmup} requests, then loaded for {args.seconds:g} s by "
                f"bench/load.py in its own process ({CONNECTIONS} threads, one keep-alive "
                "requests.Session each, unique signed Sales Invoice webhooks). Found in Pub/Sub: "
                "every message pulled from a subscription made before the run, matched by "
                "document name.",
            )
        )
        console.rule("[bold]Cold start")
        started = time.monotonic()
        _, cold = measure_cold_starts(args.trials, folder)
        print_figures("Cold start (median of trials)", cold)
        sections.append(
            Section(
                "Cold start: process start to first accepted request",
                cold,
                time.monotonic() - started,
                f"Median of {args.trials} trials, interleaved. Process start is the Popen of "
                "`python -m functions_framework`; the clock stops at the first 2xx answer: a "
                "signed webhook published to Pub/Sub for erp_webhook and the naive handler, a "
                "Pub/Sub CloudEvent the consumer records and acknowledges for event functions. "
                "Every subject as deployed: its bytecode compiled beforehand (devstack/stage.py "
                "ships .pyc files), no METRICS_PORT (infra/ sets none) except the line that says "
                "so.",
            )
        )
        if not args.only_ingress:
            for title, module in SUBPROCESS_BENCHES:
                sections.append(run_subprocess_bench(title, module, folder))
    plot_latency(BENCH / "latency.png", ingress.runs)
    write_report(BENCH / "REPORT.md", sections, ingress.runs)
    console.print(f"wrote {BENCH / 'REPORT.md'} and {BENCH / 'latency.png'}")
    return 0 if all(f.ok is not False for s in sections for f in s.figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
