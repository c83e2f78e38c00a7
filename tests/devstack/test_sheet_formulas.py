"""The stand-in's formula evaluator: Sheets semantics for the conditional-format rules we write."""

from __future__ import annotations

import pytest

from devstack.sheet_formulas import CellValue, FormulaError, evaluate, rule_matches
from shared.core.invoice_rows import TrackerConfig, mismatch_formula_for


class Book:
    """Sheets as {title: rows}; the rule's own sheet is "Tracker"."""

    def __init__(self, sheets: dict[str, list[list[CellValue]]]) -> None:
        self.sheets = sheets

    def value(self, sheet: str | None, row: int, col: int) -> CellValue:
        rows = self.sheets[sheet or "Tracker"]
        if row >= len(rows) or col >= len(rows[row]):
            return None
        return rows[row][col]

    def size(self, sheet: str | None) -> tuple[int, int]:
        rows = self.sheets[sheet or "Tracker"]
        return len(rows), max((len(row) for row in rows), default=0)


BOOK = Book({"Tracker": [["a", 2.0, None], ["B", 3.0, "x"]], "My Sheet": [["HQ"], ["ops"]]})


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("=1+2*3^2", 19.0),
        ("=-2^2", 4.0),
        ("=(1+2)*3", 9.0),
        ('="a"&"b"&1', "ab1"),
        ('="Ann"="ann"', True),
        ("=A1=A2", False),
        ('=C1=""', True),
        ("=C1=0", True),
        ('=1<"a"', True),
        ('="z"<TRUE', True),
        ("=AND(TRUE, B1<B2, NOT(FALSE))", True),
        ("=OR(FALSE, FALSE)", False),
        ('=IF(B2>2, "big", "small")', "big"),
        ("=ISBLANK(C1)", True),
        ('=LEN("abc")&LOWER("X")&UPPER("y")&TRIM("  a  b ")', "3xYa b"),
        ('=EXACT("a", "A")', False),
        ("=COUNTA(A1:C2)", 5.0),
        ('=COUNTIF(B1:B2, ">2")', 1.0),
        ('=COUNTIF(A:A, "b")', 1.0),
        ('=COUNTIF(INDIRECT("\'My Sheet\'!$A:$A"), "hq")', 1.0),
        ("=COUNTIF('My Sheet'!A:A, \"o*\")", 1.0),
    ],
)
def test_operators_functions_and_sheets_comparisons(formula: str, expected: object) -> None:
    assert evaluate(formula, BOOK) == expected


def test_relative_references_shift_with_the_cell_and_absolute_ones_stay() -> None:
    book = Book({"Tracker": [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]})
    assert evaluate("=A1+$B$1", book, anchor=(0, 0), at=(2, 0)) == 13.0
    assert evaluate("=$A1", book, anchor=(0, 0), at=(1, 1)) == 2.0
    assert evaluate("=A$1", book, anchor=(0, 0), at=(2, 1)) == 10.0


def test_the_tracker_mismatch_rule_highlights_only_real_mismatches_outside_overhead() -> None:
    config = TrackerConfig(site_url="https://erp.example.com")
    formula = mismatch_formula_for(config, "Overhead!$A:$A")
    entered, manager, project = (
        config.index_of(key) for key in ("entered_by", "project_manager", "project")
    )
    rows: list[list[CellValue]] = [[None] * len(config.columns) for _ in range(6)]
    cases = [
        ("Ann Lee", "Ann Lee", "ACME"),  # row 2: same person
        ("Bob Roe", "Ann Lee", "ACME"),  # row 3: mismatch
        ("Bob Roe", "Ann Lee", "HQ"),  # row 4: overhead project
        ("ann lee", "Ann Lee", "ACME"),  # row 5: same, other case
        ("Bob Roe", None, "ACME"),  # row 6: no manager
    ]
    for offset, (by, pm, proj) in enumerate(cases, start=1):
        rows[offset][entered], rows[offset][manager], rows[offset][project] = by, pm, proj
    book = Book({"Tracker": rows, "Overhead": [["Overhead projects"], ["HQ"]]})
    highlighted = [
        row + 1
        for row in range(1, 6)
        for col in (0, len(config.columns) - 1)  # the rule applies across the whole row
        if rule_matches(formula, book, anchor=(1, 0), at=(row, col))
    ]
    assert highlighted == [3, 3]


@pytest.mark.parametrize("formula", ["=1+", "=AND(1", "=NOPE(1)", '="open', "1+1", "=A1 A2"])
def test_bad_formulas_raise_and_never_apply_as_rules(formula: str) -> None:
    with pytest.raises(FormulaError):
        evaluate(formula, BOOK)
    assert rule_matches(formula, BOOK, anchor=(0, 0), at=(0, 0)) is False
