"""Stage one function for deployment: its main.py, the `shared` package and a requirements.txt
pinned from requirements.lock with only the distributions that function needs.

Cloud Functions uploads only a function's own folder, so a deploy from functions/<name>/ alone
would miss `shared/`. `python -m devstack.stage <function> <out dir> [--zip <archive>]` builds the
folder Cloud Build deploys (and, with --zip, a reproducible archive of it: same source, same bytes).
"""

from __future__ import annotations

import argparse
import compileall
import py_compile
import re
import shutil
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = ROOT / "functions"
LOCK_FILE = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")

NOT_NEEDED: Mapping[str, frozenset[str]] = {
    # The ingress and the dead-letter recorder publish, read secrets and write Firestore: no
    # Sheets/Drive client, no bots (a short cold start; tests/functions/test_imports.py).
    "erp_webhook": frozenset({"google-api-python-client", "python-telegram-bot", "twilio"}),
    "sheets_sync": frozenset({"python-telegram-bot", "twilio"}),
    "drive_upload": frozenset({"python-telegram-bot", "twilio"}),
    "notifier": frozenset({"google-api-python-client"}),
}
"""Runtime dependencies (pyproject's [project].dependencies) a function's code never imports.
tests/infra/test_staging.py imports each staged function with everything else hidden."""

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)")
_VIA = re.compile(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)(?:\s+\(.*\))?\s*$")


class StagingError(RuntimeError):
    """The function or one of its dependencies cannot be staged; the message says why."""


def canonical(name: str) -> str:
    """PEP 503 name: `Google_Auth` and `google-auth` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def function_names() -> list[str]:
    return sorted(p.name for p in FUNCTIONS_DIR.iterdir() if (p / "main.py").is_file())


def read_lock(text: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Pins (name -> version) and requirements (name -> the names it needs) of a uv/pip-compile
    lock, from its `# via` annotations."""
    pins: dict[str, str] = {}
    needs: dict[str, set[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        pin = _PIN.match(line)
        if pin:
            current = canonical(pin.group(1))
            pins[current] = pin.group(3)
            continue
        via = _VIA.match(line)
        if current is not None and via:
            needs.setdefault(canonical(via.group(1)), set()).add(current)
    return pins, needs


def runtime_roots() -> list[str]:
    """The distributions pyproject declares for the functions (not the dev or cli extras)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return [
        canonical(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in project["dependencies"]
    ]


def closure(roots: Iterable[str], needs: Mapping[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(needs.get(name, ()))
    return seen


def requirements_for(function: str, lock_text: str | None = None) -> list[str]:
    """`name==version` lines, sorted, of what `function` needs, every version from the lock."""
    if function not in NOT_NEEDED:
        raise StagingError(
            f"{function!r}: say in devstack/stage.py NOT_NEEDED which runtime dependencies it skips"
        )
    pins, needs = read_lock(lock_text if lock_text is not None else LOCK_FILE.read_text())
    roots = [name for name in runtime_roots() if name not in NOT_NEEDED[function]]
    wanted = closure(roots, needs) - {"erpnext-bridge"}
    missing = sorted(name for name in wanted if name not in pins)
    if missing:
        raise StagingError(f"not pinned in requirements.lock: {', '.join(missing)}")
    return [f"{name}=={pins[name]}" for name in sorted(wanted)]


def stage(function: str, out_dir: Path) -> Path:
    """Fill `out_dir` (emptied first) with the function's deployable source; return it."""
    source = FUNCTIONS_DIR / function
    if not (source / "main.py").is_file():
        raise StagingError(
            f"no functions/{function}/main.py; functions: {', '.join(function_names())}"
        )
    requirements = requirements_for(function)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(source, out_dir, ignore=IGNORED)
    shutil.copytree(ROOT / "shared", out_dir / "shared", ignore=IGNORED)
    header = f"# {function}: pinned from requirements.lock by devstack/stage.py; do not edit.\n"
    (out_dir / "requirements.txt").write_text(header + "\n".join(requirements) + "\n")
    precompile(out_dir, shown_as=function)
    return out_dir


def precompile(*paths: Path, shown_as: str | None = None) -> None:
    """Write the bytecode of every .py under `paths` beside it, so an instance does not compile
    our modules at each cold start (nor does any run with PYTHONDONTWRITEBYTECODE set).

    Checked-hash .pyc files: valid by the source's hash, not its timestamp, so they survive the
    zip's fixed dates and deploys, and are ignored if the source changes. `shown_as` replaces
    the folder in the file names the bytecode records (the import fixes them up when it loads),
    so staging into any folder gives the same bytes.
    """
    for path in paths:
        ok = compileall.compile_dir(
            path,
            ddir=shown_as,
            quiet=1,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
        if not ok:
            raise StagingError(f"some Python under {path} does not compile")


def write_zip(folder: Path, archive: Path) -> Path:
    """A reproducible zip of `folder`: sorted entries, fixed timestamps and modes, so the same
    source gives the same bytes (infra names the object by its hash: no change, no redeploy)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            entry = zipfile.ZipInfo(
                path.relative_to(folder).as_posix(), date_time=(1980, 1, 1, 0, 0, 0)
            )
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(entry, path.read_bytes())
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.stage", description=__doc__)
    parser.add_argument("function", help=f"one of: {', '.join(function_names())}")
    parser.add_argument("out_dir", type=Path, help="the folder to fill (emptied first)")
    parser.add_argument("--zip", type=Path, dest="archive", help="also write this zip archive")
    args = parser.parse_args(argv)
    try:
        folder = stage(args.function, args.out_dir)
    except StagingError as exc:
        print(f"stage: {exc}", file=sys.stderr)
        return 2
    print(f"staged {args.function} into {folder}")
    if args.archive is not None:
        print(f"archived it as {write_zip(folder, args.archive)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
