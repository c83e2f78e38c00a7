"""Each function imports only what it needs: erp_webhook carries no Sheets, Drive, Telegram,
Twilio or Firestore code, which keeps its cold start short. Checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOREIGN = (
    "telegram",
    "twilio",
    "googleapiclient",
    "google.cloud.firestore",
    "google.cloud.pubsub_v1",
)

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("main", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_modules(main_py: Path) -> set[str]:
    env = {
        "GCP_PROJECT": "p",
        "ERP_SITE": "erp.example.com",
        "WEBHOOK_SECRET": "import-check-secret",
        "SHEETS_SPREADSHEET_ID": "import-check-sheet",
        "ERPNEXT_URL": "http://erp.invalid",
        "ERPNEXT_API_KEY": "import-check-key",
        "ERPNEXT_API_SECRET": "import-check-secret",
        "DRIVE_AUTH": "shared_drive",
        "DRIVE_SHARED_DRIVE_ID": "import-check-drive",
        "TELEGRAM_BOT_TOKEN": "1:import-check-token",
        "TELEGRAM_WEBHOOK_SECRET": "import-check-secret",
        "TELEGRAM_BOT_USERNAME": "import_check_bot",
        "ALERT_CHATS_JSON": '{"service_team": -1, "oncall": -2, "admins": -3}',
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(main_py)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_erp_webhook_imports_no_consumer_sdk_at_start() -> None:
    modules = loaded_modules(ROOT / "functions" / "erp_webhook" / "main.py")
    assert "functions_framework" in modules
    leaked = sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in FOREIGN))
    assert leaked == []


@pytest.mark.parametrize("folder", ["sheets_sync", "drive_upload", "notifier"])
def test_consumers_build_no_client_at_import(folder: str) -> None:
    modules = loaded_modules(ROOT / "functions" / folder / "main.py")
    assert "google.cloud.firestore" not in modules
    assert "googleapiclient" not in modules and "requests" not in modules
    assert "telegram" not in modules and "twilio" not in modules
