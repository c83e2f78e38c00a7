"""Each function staged as Cloud Build stages it (devstack/stage.py) imports from its folder alone.

A fresh interpreter starts in the staged folder with only that folder on its path; the project's
virtualenv supplies third-party packages, but every distribution the staged requirements.txt does
not name is hidden, and so is the repository's own `shared`. The probe imports main.py and every
module its composition root imports lazily, so a deploy cannot fail on a missing module or
a missing requirement, at start or at the first request.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from devstack import stage
from tests.infra import codefacts

FUNCTIONS = stage.function_names()
PIN = re.compile(r"^([a-z0-9][a-z0-9-]*)==([A-Za-z0-9.+!-]+)$")

ENV = {
    "GCP_PROJECT": "p",
    "ERP_SITE": "erp.example.com",
    "WEBHOOK_SECRET": "staging-check-secret",
    "SHEETS_SPREADSHEET_ID": "staging-check-sheet",
    "ERPNEXT_URL": "http://erp.invalid",
    "ERPNEXT_API_KEY": "staging-check-key",
    "ERPNEXT_API_SECRET": "staging-check-secret",
    "DRIVE_AUTH": "shared_drive",
    "DRIVE_SHARED_DRIVE_ID": "staging-check-drive",
    "TELEGRAM_BOT_TOKEN": "1:staging-check-token",
    "TELEGRAM_WEBHOOK_SECRET": "staging-check-secret",
    "TELEGRAM_BOT_USERNAME": "staging_check_bot",
    "ALERT_CHATS_JSON": '{"service_team": -1, "oncall": -2, "admins": -3}',
    "PATH": "/usr/bin:/bin",
}

PROBE = r"""
import importlib, importlib.abc, importlib.machinery, json, os, sys

staged, hidden_file, wanted = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
hidden = json.load(open(hidden_file))
# The repository's editable install would supply `shared` from the work tree: remove it.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__name__", type(f).__name__)]
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != os.path.realpath(hidden["repo"])]
files = set(hidden["files"])


class HideUnlisted(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.origin in files:
            raise ModuleNotFoundError(f"{name} is not in the staged requirements.txt", name=name)
        return None


sys.meta_path.insert(0, HideUnlisted())
main = importlib.import_module("main")
for module in wanted["modules"]:
    importlib.import_module(module)
outside = sorted(
    name for name, module in list(sys.modules.items())
    if (name == "shared" or name.startswith("shared.") or name == "main")
    and not os.path.realpath(getattr(module, "__file__", "") or staged).startswith(os.path.realpath(staged))
)
print(json.dumps({
    "entry_points": sorted(n for n in wanted["entry_points"] if callable(getattr(main, n, None))),
    "outside": outside,
}))
"""


def lazy_modules(staged: Path, function: str) -> list[str]:
    """Every module the function's composition root imports, at its top or inside the pieces
    it builds on first use (and so does the base every root shares)."""
    roots = staged / "shared" / "roots"
    modules: set[str] = set()
    for path in (roots / f"{function}.py", roots / "base.py", roots / "__init__.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
    return sorted(modules)


def hidden_files(requirements: list[str]) -> list[str]:
    """Every file of an installed distribution the staged requirements do not name."""
    allowed = {stage.canonical(line.split("==")[0]) for line in requirements}
    files: list[str] = []
    for dist in metadata.distributions():
        if stage.canonical(dist.metadata["Name"]) in allowed:
            continue
        files.extend(
            str(dist.locate_file(f)) for f in dist.files or () if f.suffix in (".py", ".so")
        )
    return files


@pytest.fixture(scope="module")
def staged_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("staged")
    for function in FUNCTIONS:
        stage.stage(function, root / function)
    return root


def requirement_lines(folder: Path) -> list[str]:
    lines = (folder / "requirements.txt").read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_every_function_folder_is_staged() -> None:
    assert sorted({e.folder for e in codefacts.entry_points().values()}) == FUNCTIONS


@pytest.mark.parametrize("function", FUNCTIONS)
def test_staged_requirements_pin_exact_versions_from_the_lock(
    staged_root: Path, function: str
) -> None:
    pins, _ = stage.read_lock(stage.LOCK_FILE.read_text())
    lines = requirement_lines(staged_root / function)
    assert lines
    for line in lines:
        match = PIN.match(line)
        assert match, f"{function}: {line!r} is not name==version"
        assert pins[match.group(1)] == match.group(2), line
    assert "functions-framework" in {line.split("==")[0] for line in lines}


def test_dev_tools_and_foreign_sdks_stay_out_of_the_webhook(staged_root: Path) -> None:
    names = {line.split("==")[0] for line in requirement_lines(staged_root / "erp_webhook")}
    assert not names & {"pytest", "mypy", "ruff", "checkov", "python-telegram-bot", "twilio"}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_staged_function_imports_its_entry_points_from_its_folder_alone(
    staged_root: Path, function: str, tmp_path: Path
) -> None:
    folder = staged_root / function
    wanted = {
        "entry_points": sorted(
            n for n, e in codefacts.entry_points().items() if e.folder == function
        ),
        "modules": lazy_modules(folder, function),
    }
    hidden = tmp_path / "hidden.json"
    hidden.write_text(
        json.dumps({"repo": str(codefacts.ROOT), "files": hidden_files(requirement_lines(folder))})
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), str(hidden), json.dumps(wanted)],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**ENV, "PYTHONPATH": str(folder)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["entry_points"] == wanted["entry_points"]
    assert report["outside"] == []


def test_a_missing_requirement_is_caught(staged_root: Path, tmp_path: Path) -> None:
    """The probe must fail when the staged requirements lack what the code imports."""
    folder = staged_root / "notifier"
    lines = [line for line in requirement_lines(folder) if not line.startswith("twilio==")]
    hidden = tmp_path / "hidden.json"
    hidden.write_text(json.dumps({"repo": str(codefacts.ROOT), "files": hidden_files(lines)}))
    wanted = {"entry_points": [], "modules": ["shared.adapters.twilio"]}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), str(hidden), json.dumps(wanted)],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**ENV, "PYTHONPATH": str(folder)},
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "twilio is not in the staged requirements.txt" in result.stderr


def test_staged_archive_is_reproducible(staged_root: Path, tmp_path: Path) -> None:
    first = stage.write_zip(staged_root / "erp_webhook", tmp_path / "a.zip").read_bytes()
    again = stage.stage("erp_webhook", tmp_path / "again")
    second = stage.write_zip(again, tmp_path / "b.zip").read_bytes()
    assert first == second


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_staged_module_ships_bytecode_valid_for_its_source(
    staged_root: Path, function: str
) -> None:
    """Checked-hash .pyc (PEP 552): flags 0b11, then the source's hash; no timestamps, so the
    zip's fixed dates cannot invalidate them and an instance never compiles our code."""
    sources = sorted((staged_root / function).rglob("*.py"))
    assert any(path.parts[-2:] == ("roots", f"{function}.py") for path in sources)
    for source in sources:
        compiled = Path(importlib.util.cache_from_source(str(source)))
        assert compiled.is_file(), f"no bytecode for {source.name}"
        header = compiled.read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(header[4:8], "little") == 0b11, source.name
        assert header[8:16] == importlib.util.source_hash(source.read_bytes()), source.name
