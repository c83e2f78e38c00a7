"""The layout's import rules, read from the source (every import, function-local and
type-checking ones included):

    errors <- core <- platform <- features <- adapters <- composition roots, CLI, functions/

A module imports its own layer or those below it. Features never import each other, except the
one domain they share, the service desk (requests and the people behind them). Only adapters
import an SDK; the platform's telemetry modules alone import the telemetry libraries, and only
functions/ imports the functions framework. Each offending import is named.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FEATURES = ("ingress", "sheets", "drive", "servicedesk", "alerts", "bot", "operations")
SHARED_DOMAIN = "servicedesk"
"""The one feature others may import: the bot and the alerts both speak of its requests."""
ROOTS = ("shared.roots", "shared.cli")
"""The composition roots: they build every feature from its settings and its adapters."""
LAYERS = ("errors", "core", "platform", "features", "adapters", "roots")

SDKS = (
    "google",
    "googleapiclient",
    "google_auth_httplib2",
    "httplib2",
    "grpc",
    "requests",
    "httpx",
    "urllib3",
    "telegram",
    "twilio",
)
TELEMETRY = {
    "sentry_sdk": ("shared.platform.observability",),
    "prometheus_client": ("shared.platform.observability",),
    "opentelemetry": ("shared.platform.metrics",),
}
FRAMEWORK = ("functions_framework", "flask", "cloudevents")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """The layer of a module of ours."""
    parts = module.split(".")
    if parts[0] == "functions" or any(module == r or module.startswith(r + ".") for r in ROOTS):
        return "roots"
    if len(parts) < 2:
        return "roots"  # `shared` itself
    if parts[1] == "errors":
        return "errors"
    if parts[1] in FEATURES:
        return "features"
    if parts[1] in ("core", "platform", "adapters"):
        return parts[1]
    raise AssertionError(f"{module} belongs to no layer: put it in one, or name it here")


def imports(path: Path, importer: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file; `from a import b` is `a.b` when
    b is a module of ours, else `a`."""
    tree = ast.parse(path.read_text(), str(path))
    package = importer.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                above = ".".join(package[: len(package) - node.level])
                base = f"{above}.{node.module}" if node.module else above
            modules = {
                f"{base}.{alias.name}" if existing(f"{base}.{alias.name}") else base
                for alias in node.names
            }
            for module in sorted(modules):
                yield node.lineno, module


def sources() -> list[Path]:
    found = sorted((ROOT / "shared").rglob("*.py")) + sorted((ROOT / "functions").rglob("*.py"))
    assert len(found) > 50
    return found


def ours(module: str) -> bool:
    return module.split(".", maxsplit=1)[0] in ("shared", "functions")


def existing(module: str) -> bool:
    """Whether `module` names a module or package of ours (not a name inside one)."""
    path = ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def offences(path: Path, importer: str | None = None) -> Iterator[str]:
    """Each import of the file (module `importer`, by default the file's own) that breaks a rule."""
    importer = importer or module_name(path)
    where = layer_of(importer)
    feature = importer.split(".")[1] if where == "features" else None
    for line, imported in imports(path, importer):
        at = f"{importer}:{line} imports {imported}"
        top = imported.split(".")[0]
        if ours(imported):
            target = layer_of(imported)
            if LAYERS.index(target) > LAYERS.index(where):
                yield f"{at}: {where} may not import {target}"
            other = imported.split(".")[1] if target == "features" else None
            if feature and other and other not in (feature, SHARED_DOMAIN):
                yield f"{at}: feature {feature} may not import feature {other}"
        elif top in SDKS and where != "adapters":
            yield f"{at}: only adapters import an SDK"
        elif top in TELEMETRY and importer not in TELEMETRY[top]:
            yield f"{at}: only {', '.join(TELEMETRY[top])} imports {top}"
        elif top in FRAMEWORK and importer.split(".")[0] != "functions":
            yield f"{at}: only functions/ imports {top}"


def test_every_import_points_down_the_layers() -> None:
    wrong = [offence for path in sources() for offence in offences(path)]
    assert wrong == [], "\n".join(wrong)


def test_the_rules_catch_a_feature_importing_an_adapter_another_feature_and_an_sdk(
    tmp_path: Path,
) -> None:
    # A Drive module written as the wrong ones were: each breach named, the shared domain allowed.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from shared.adapters.drive import GoogleDrive\n"
        "from shared.sheets import sync\n"
        "from shared.servicedesk.ports import ServiceRequest\n"
        "import requests\n"
        "def later() -> None:\n"
        "    from shared.roots import drive_upload\n"
    )
    found = list(offences(probe, "shared.drive.probe"))
    assert len(found) == 4, found
    assert "features may not import adapters" in found[0]
    assert "feature drive may not import feature sheets" in found[1]
    assert "only adapters import an SDK" in found[2]
    assert "features may not import roots" in found[3]
