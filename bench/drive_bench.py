"""Drive benchmark: peak memory of drive_upload while it copies a 200 MB attachment.

The ERPNext and Drive stand-ins run in this process; the upload runs in a child process that
builds drive_upload's service as the function does, notes its resident memory when idle (clients
built, nothing read yet), uploads, then reports its high-water mark (VmHWM). The target: peak
under 100 MB above idle, memory bounded by the chunk size, not the file size.

    python -m bench.drive_bench [--mb 200]        # or: make bench-drive
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.figures import Figure, write_figures
from devstack.drive import DriveStandIn
from devstack.emulators import running_emulators
from devstack.erpnext import ErpNextStandIn

console = Console()
CHILD = """
import json, os, sys
from datetime import UTC, datetime

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise SystemExit("no " + field)

from shared.roots import drive_upload
from shared.core.envelope import document_envelope

uploader = drive_upload.from_environment().uploader
doc = json.loads(sys.argv[1])
envelope = document_envelope(
    doc, doctype=doc["doctype"], event="after_insert", site="bench", received_at=datetime.now(UTC)
)
idle = rss("VmRSS:")
outcome = uploader.apply(envelope)
print(json.dumps({"idle": idle, "peak": rss("VmHWM:"), "outcome": outcome}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--json", type=Path, help="write the figures here (for bench/report.py)")
    args = parser.parse_args()
    size = args.mb * 1024 * 1024
    with (
        tempfile.TemporaryDirectory(prefix="bench-drive-") as logs,
        running_emulators("bench-drive", Path(logs)) as emulators,
        ErpNextStandIn(api_key="bench", api_secret="bench-secret") as erp,
        DriveStandIn() as drive,
    ):
        drive.add_principal("bench-token", "bench@p.iam.gserviceaccount.com", service_account=True)
        shared = drive.create_shared_drive("Bench", {"bench@p.iam.gserviceaccount.com"})
        with console.status(f"making a {args.mb} MB attachment in the ERPNext stand-in ..."):
            erp.import_docs("Project", [{"name": "Bench", "status": "Open"}])
            erp.import_docs("Sales Invoice", [{"name": "INV-BENCH", "project": "Bench"}])
            file_doc = erp.add_file(
                "big-scan.pdf",
                os.urandom(size),
                is_private=True,
                attached_to_doctype="Sales Invoice",
                attached_to_name="INV-BENCH",
            )
        env = {
            **os.environ,
            **emulators.env(),
            "GCP_PROJECT": "bench-drive",
            "ERPNEXT_URL": erp.url,
            "ERPNEXT_API_KEY": "bench",
            "ERPNEXT_API_SECRET": "bench-secret",
            "DRIVE_AUTH": "shared_drive",
            "DRIVE_SHARED_DRIVE_ID": shared,
            "DRIVE_ENDPOINT": drive.endpoint,
            "DRIVE_CA_CERTS": drive.ca_file or "",
            "DRIVE_TOKEN": "bench-token",
            "LOG_LEVEL": "WARNING",
        }
        payload = json.dumps({**file_doc, "doctype": "File"}, default=str)
        with console.status(f"uploading {args.mb} MB through drive_upload (a child process) ..."):
            result = subprocess.run(
                [sys.executable, "-c", CHILD, payload],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
        if result.returncode != 0:
            console.print(result.stderr[-3000:])
            return 1
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        (copy,) = [f for f in drive.files() if f.name == "big-scan.pdf"]
        intact = copy.size == size and copy.md5 == file_doc["content_hash"]  # Frappe's MD5
    above = (figures["peak"] - figures["idle"]) / 1024 / 1024
    table = Table(title=f"drive_upload: memory while copying a {args.mb} MB attachment")
    for column in ("what", "measured", "target", "met"):
        table.add_column(column)
    table.add_row("resident when idle", f"{figures['idle'] / 1024 / 1024:.0f} MB", "-", "")
    table.add_row("peak", f"{figures['peak'] / 1024 / 1024:.0f} MB", "-", "")
    table.add_row(
        "peak above idle", f"{above:.0f} MB", "< 100 MB", "yes" if above < 100 else "[red]NO"
    )
    table.add_row(
        "copy in Drive: size and MD5 as sent",
        "intact" if intact else "DIFFERS",
        "intact",
        "yes" if intact else "[red]NO",
    )
    console.print(table)
    console.print(f"   {figures['outcome']}")
    if args.json:
        idle_mb, peak_mb = figures["idle"] / 1024 / 1024, figures["peak"] / 1024 / 1024
        write_figures(
            args.json,
            [
                Figure(f"{args.mb} MB upload: resident when idle", f"{idle_mb:.0f} MB", "-", None),
                Figure(f"{args.mb} MB upload: peak", f"{peak_mb:.0f} MB", "-", None),
                Figure(
                    f"{args.mb} MB upload: peak above idle",
                    f"{above:.0f} MB",
                    "< 100 MB",
                    above < 100,
                ),
                Figure(
                    "copy in Drive: size and MD5 as sent",
                    "intact" if intact else "DIFFERS",
                    "intact",
                    intact,
                ),
            ],
        )
    return 0 if above < 100 and intact else 1


if __name__ == "__main__":
    raise SystemExit(main())
