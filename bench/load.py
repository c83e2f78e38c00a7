"""The webhook load generator: signed ERPNext invoice webhooks at a fixed number of connections.

One thread per connection, each with its own keep-alive `requests.Session`. On two cores this
measures more truly than asyncio+httpx: the client's per-request CPU is lower and the GIL is
released while each thread waits on its socket. Signing a body costs microseconds beside the
request's hundreds. Every document name is unique (`<prefix>-<connection>-<n>`), so each accepted request can
be found in Pub/Sub afterwards.

    python -m bench.load --url URL --secret S --seconds 10 --connections 16 --out result.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

from devstack.erpnext import MODIFIED_FORMAT

SIGNATURE_HEADER = "X-Frappe-Webhook-Signature"


@dataclass
class Sample:
    name: str
    status: int
    """HTTP status, or 0 when the request failed without an answer."""
    latency_s: float
    finished_s: float
    """Seconds since the load started, when the answer arrived."""


@dataclass
class LoadResult:
    connections: int
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    cpu_seconds: float = 0.0
    """CPU the load generator itself spent (all its threads) while loading."""

    @property
    def accepted(self) -> list[Sample]:
        return [sample for sample in self.samples if sample.status == 200]

    @property
    def throughput(self) -> float:
        return len(self.accepted) / self.seconds if self.seconds else 0.0

    def write(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "connections": self.connections,
                    "seconds": self.seconds,
                    "cpu_seconds": self.cpu_seconds,
                    "samples": [asdict(sample) for sample in self.samples],
                }
            )
        )

    @classmethod
    def read(cls, path: Path) -> LoadResult:
        raw = json.loads(path.read_text())
        samples = [Sample(**sample) for sample in raw["samples"]]
        return cls(raw["connections"], raw["seconds"], samples, raw.get("cpu_seconds", 0.0))


def frappe_signature(secret: str, body: bytes) -> str:
    """Base64 of HMAC-SHA256 over the body bytes, as Frappe signs."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def invoice_body(name: str) -> bytes:
    """A Frappe v15 Sales Invoice webhook body from the bridge's template
    (`json.dumps(data, default=str)`)."""
    doc = {
        "doctype": "Sales Invoice",
        "name": name,
        "customer": "Acme Builders",
        "project": "PROJ-0001",
        "posting_date": "2026-11-23",
        "grand_total": 1250.0,
        "currency": "USD",
        "docstatus": 1,
        # Now: consumers refuse changes older than their claims outlive.
        "modified": datetime.now(UTC).strftime(MODIFIED_FORMAT),
    }
    return json.dumps({"event": "on_submit", "doc": doc}).encode()


def signed_requests(secret: str, prefix: str, connection: int) -> Iterator[tuple[str, bytes, str]]:
    number = 0
    while True:
        name = f"{prefix}-{connection}-{number}"
        body = invoice_body(name)
        yield name, body, frappe_signature(secret, body)
        number += 1


def run_load(
    url: str,
    secret: str,
    *,
    connections: int = 16,
    seconds: float | None = 10.0,
    requests_total: int | None = None,
    prefix: str = "SINV-LOAD",
) -> LoadResult:
    """Send until `seconds` passed or `requests_total` were sent (whichever is given)."""
    per_connection = None if requests_total is None else -(-requests_total // connections)
    samples: list[list[Sample]] = [[] for _ in range(connections)]
    ready = threading.Barrier(connections + 1)
    started = 0.0
    deadline = float("inf")

    def work(connection: int) -> None:
        session = requests.Session()
        headers = {"Content-Type": "application/json"}
        out = samples[connection]
        ready.wait()
        for number, (name, body, signature) in enumerate(
            signed_requests(secret, prefix, connection)
        ):
            if per_connection is not None and number >= per_connection:
                break
            before = time.perf_counter()
            if before >= deadline:
                break
            try:
                response = session.post(
                    url, data=body, headers={**headers, SIGNATURE_HEADER: signature}, timeout=30
                )
                status = response.status_code
            except requests.RequestException:
                status = 0
            after = time.perf_counter()
            out.append(Sample(name, status, after - before, after - started))
        session.close()

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in range(connections)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    cpu_started = time.process_time()
    if seconds is not None and requests_total is None:
        deadline = started + seconds
    ready.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return LoadResult(connections, elapsed, [s for per in samples for s in per], cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=None, help="instead of --seconds")
    parser.add_argument("--prefix", default="SINV-LOAD")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = run_load(
        args.url,
        args.secret,
        connections=args.connections,
        seconds=args.seconds,
        requests_total=args.requests,
        prefix=args.prefix,
    )
    result.write(args.out)
    print(f"{len(result.samples)} requests, {result.throughput:.0f}/s accepted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
