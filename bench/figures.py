"""A benchmark's figures, each beside its target or same-run baseline, as bench/report.py reads them.

Each benchmark run with `--json PATH` writes its figures there; the report renders them as tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One measured figure beside its target or its baseline measured in the same run."""

    what: str
    measured: str
    target: str
    ok: bool | None
    """None: a figure reported for context, with no target."""


def write_figures(path: Path, figures: Sequence[Figure]) -> None:
    path.write_text(json.dumps([asdict(figure) for figure in figures], indent=1))


def read_figures(path: Path) -> list[Figure]:
    return [Figure(**raw) for raw in json.loads(path.read_text())]
