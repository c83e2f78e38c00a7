"""What the code says the cloud must have, read from the source itself (never a copied list):
entry points, Secret Manager names, the Firestore databases it opens, Firestore collections with
an `expire_at` TTL field."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions"
SHARED_DIR = ROOT / "shared"
ADAPTERS_DIR = SHARED_DIR / "adapters"
TTL_FIELD = "expire_at"

FRAMEWORK = "functions_framework"
EVENT_DECORATORS = {"cloud_event"}
HTTP_DECORATORS = {"http"}


@dataclass(frozen=True)
class EntryPoint:
    name: str
    folder: str
    kind: str
    """`http` or `cloud_event`."""


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def entry_points() -> dict[str, EntryPoint]:
    """Every function in functions/*/main.py decorated by functions_framework (also `aio.`)."""
    found: dict[str, EntryPoint] = {}
    for main_py in sorted(FUNCTIONS_DIR.glob("*/main.py")):
        tree = ast.parse(main_py.read_text(), filename=str(main_py))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for decorator in node.decorator_list:
                parts = _dotted(decorator).split(".")
                if parts[0] != FRAMEWORK:
                    continue
                if parts[-1] in EVENT_DECORATORS:
                    kind = "cloud_event"
                elif parts[-1] in HTTP_DECORATORS:
                    kind = "http"
                else:
                    raise AssertionError(f"{main_py}: unknown decorator {'.'.join(parts)}")
                assert node.name not in found, f"entry point {node.name} is defined twice"
                found[node.name] = EntryPoint(node.name, main_py.parent.name, kind)
    return found


def secret_pairs() -> dict[str, str]:
    """Secret Manager name -> environment variable, from every `env.secret("ENV", "name")` call."""
    pairs: dict[str, str] = {}
    for path in sorted(SHARED_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "secret"
                and len(node.args) == 2
                and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
            ):
                env_key, name = (a.value for a in node.args)  # type: ignore[attr-defined]
                assert pairs.get(name, env_key) == env_key, f"secret {name} read as two variables"
                pairs[name] = env_key
    return pairs


DEFAULT_DATABASE = "(default)"


def firestore_databases() -> dict[str, list[str]]:
    """Database -> where the code opens a Firestore client on it (file:line): every
    `firestore.Client(...)` / `AsyncClient(...)` in shared/, `(default)` without `database=`."""
    found: dict[str, list[str]] = {}
    for path in sorted(SHARED_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (
                isinstance(node, ast.Call)
                and _dotted(node.func) in ("firestore.Client", "firestore.AsyncClient")
            ):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            database = DEFAULT_DATABASE
            for keyword in node.keywords:
                if keyword.arg == "database":
                    value = keyword.value
                    assert isinstance(value, ast.Constant) and isinstance(value.value, str), (
                        f"{where} opens a database this test cannot tell; extend codefacts.py"
                    )
                    database = value.value
            found.setdefault(database, []).append(where)
    return found


# ---- which collections get documents with expire_at -------------------------------------------

WRITES = {"create", "set", "update"}


class _Unresolved(Exception):
    pass


@dataclass
class _Scope:
    path: Path
    constants: dict[str, str]
    methods: dict[str, ast.FunctionDef]


def _assigned(function: ast.FunctionDef, name: str) -> list[tuple[ast.expr, int | None]]:
    """What `name` is assigned in `function`: (value, tuple position or None)."""
    values: list[tuple[ast.expr, int | None]] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    values.append((node.value, None))
                elif isinstance(target, ast.Tuple):
                    for index, element in enumerate(target.elts):
                        if isinstance(element, ast.Name) and element.id == name:
                            values.append((node.value, index))
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
            and node.value is not None
        ):
            values.append((node.value, None))
    return values


def _self_method(node: ast.expr, scope: _Scope) -> ast.FunctionDef | None:
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
    ):
        return scope.methods.get(node.func.attr)
    return None


def _returns(function: ast.FunctionDef) -> list[ast.expr]:
    return [n.value for n in ast.walk(function) if isinstance(n, ast.Return) and n.value]


def _has_ttl(expr: ast.expr, function: ast.FunctionDef, scope: _Scope) -> bool:
    if isinstance(expr, ast.Dict):
        return any(isinstance(k, ast.Constant) and k.value == TTL_FIELD for k in expr.keys)
    if isinstance(expr, ast.Name):
        return any(_has_ttl(v, function, scope) for v, _ in _assigned(function, expr.id))
    method = _self_method(expr, scope)
    if method is not None:
        return any(_has_ttl(r, method, scope) for r in _returns(method))
    return False


def _collections(
    expr: ast.expr, function: ast.FunctionDef, scope: _Scope, position: int | None = None
) -> set[str]:
    """The collection(s) a document reference expression points into."""
    if position is not None:
        method = _self_method(expr, scope)
        if method is None:
            raise _Unresolved
        found: set[str] = set()
        for value in _returns(method):
            if not isinstance(value, ast.Tuple):
                raise _Unresolved
            found |= _collections(value.elts[position], method, scope)
        return found
    if isinstance(expr, ast.Name):
        assigned = _assigned(function, expr.id)
        if not assigned:
            raise _Unresolved
        return set().union(*(_collections(v, function, scope, p) for v, p in assigned))
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
        if expr.func.attr == "collection" and expr.args:
            name = expr.args[0]
            if isinstance(name, ast.Name) and name.id in scope.constants:
                return {scope.constants[name.id]}
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                return {name.value}
            raise _Unresolved
        method = _self_method(expr, scope)
        if method is not None:
            return set().union(*(_collections(r, method, scope) for r in _returns(method)))
        return _collections(expr.func.value, function, scope)
    raise _Unresolved


def _writes(call: ast.Call, method: ast.FunctionDef) -> list[tuple[ast.expr, ast.expr]]:
    """(document, fields) of a write: `<document>.create/set/update(fields)`,
    `batch.create/set(<document>, fields)`, or `Change(fields)` applied by `swap(<document>, ...)`."""
    if isinstance(call.func, ast.Attribute) and call.func.attr in WRITES:
        if len(call.args) >= 2:
            return [(call.args[0], call.args[1])]
        if len(call.args) == 1:
            return [(call.func.value, call.args[0])]
    if isinstance(call.func, ast.Name) and call.func.id == "Change" and call.args:
        swaps = [
            n.args[0]
            for n in ast.walk(method)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "swap"
            and n.args
        ]
        return [(document, call.args[0]) for document in swaps]
    return []


def ttl_collections() -> dict[str, list[str]]:
    """Collection -> where the code writes `expire_at` into it (file:line), for every adapter.

    A write (see `_writes`) counts when `expire_at` is among its fields. A write whose collection cannot be told fails loudly: extend this reader, do not guess.
    """
    found: dict[str, list[str]] = {}
    for path in sorted(ADAPTERS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            methods = {m.name: m for m in cls.body if isinstance(m, ast.FunctionDef)}
            scope = _Scope(path, constants, methods)
            for method in methods.values():
                for node in ast.walk(method):
                    if not isinstance(node, ast.Call):
                        continue
                    for document, fields in _writes(node, method):
                        if not _has_ttl(fields, method, scope):
                            continue
                        where = f"{path.relative_to(ROOT)}:{node.lineno}"
                        try:
                            names = _collections(document, method, scope)
                        except _Unresolved:
                            raise AssertionError(
                                f"{where} writes {TTL_FIELD} into a collection this test cannot "
                                "tell; extend tests/infra/codefacts.py"
                            ) from None
                        for name in names:
                            found.setdefault(name, []).append(where)
    return found
