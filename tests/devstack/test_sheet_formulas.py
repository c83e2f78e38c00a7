"""The stand-in's formula evaluator: Sheets semantics for the conditional-format rules we write."""

from __future__ import annotations

import pytest

from devstack.sheet_formulas import CellValue, FormulaError, Range, evaluate, rule_matches
from shared.sheets.rows import TrackerConfig, mismatch_formula_for


class Book:
    """A Workbook over {title: rows}; the rule's own sheet is "Tracker"."""

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


#   A      B     C     D
# 1 "a"    2     None  TRUE
# 2 "B"    3     "x"   "3"
# 3 None   -1    ""    "ab*"
BOOK = Book(
    {
        "Tracker": [["a", 2.0, None, True], ["B", 3.0, "x", "3"], [None, -1.0, "", "ab*"]],
        "My Sheet": [["HQ"], ["ops"], ["Ops"]],
        "Bob's": [[7.0]],
        "Sheet2": [[5.0, 6.0]],
    }
)


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("=42", 42.0),
        ("=1.5e2", 150.0),
        ("=.5", 0.5),
        ('="say ""hi"""', 'say "hi"'),
        ('=""', ""),
        ("=TRUE", True),
        ("=false", False),
        ("=  1 +\t2  ", 3.0),
    ],
)
def test_literals_and_whitespace_evaluate_when_written_as_in_sheets(
    formula: str, expected: CellValue
) -> None:
    assert evaluate(formula, BOOK) == expected


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("=-B1", -2.0),
        ("=--B1", 2.0),
        ("=+B1", 2.0),
        ("=2^3", 8.0),
        ("=2*3", 6.0),
        ("=7/2", 3.5),
        ("=2+3", 5.0),
        ("=2-3", -1.0),
        ('="a"&"b"', "ab"),
        ('="n"&1&TRUE&C1&0.5', "n1TRUE0.5"),
        ('=0.1+0.2&""', "0.3"),
        ('="2"+1', 3.0),
        ("=TRUE+1", 2.0),
        ("=C1+1", 1.0),
        # precedence: unary minus > ^ > * / > + - > & > comparisons; all left-associative
        ("=1+2*3^2", 19.0),
        ("=-2^2", 4.0),
        ("=2^3^2", 64.0),
        ("=(1+2)*3", 9.0),
        ("=8/2/2", 2.0),
        ("=10-2-3", 5.0),
        ('=1+2&"x"', "3x"),
        ('="1"&2=12', False),
        ('="1"&2="12"', True),
        ("=1+1=2", True),
        ("=2>1=TRUE", True),
    ],
)
def test_operators_follow_sheets_precedence(formula: str, expected: CellValue) -> None:
    assert evaluate(formula, BOOK) == expected


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ('="Ann Lee"="ann lee"', True),
        ('="Ann"<>"ANN"', False),
        ('="apple"<"Banana"', True),
        ("=A1=A2", False),
        ('=C1=""', True),
        ("=C1=0", True),
        ("=C1=FALSE", True),
        ('=""=C1', True),
        ("=C1=C1", True),
        ("=C3=C1", True),
        ("=B3<C1", True),
        ('=1<"a"', True),
        ('=99999<"0"', True),
        ('="z"<TRUE', True),
        ("=FALSE<TRUE", True),
        ('="3"=3', False),
        ("=2<=2", True),
        ("=2>=3", False),
        ("=3>2", True),
        ('="b">="B"', True),
    ],
)
def test_comparisons_follow_sheets_rules_across_case_types_and_empty_cells(
    formula: str, expected: bool
) -> None:
    assert evaluate(formula, BOOK) is expected


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("=AND(TRUE, B1<B2, NOT(FALSE))", True),
        ("=AND(TRUE, FALSE)", False),
        ("=and(1, 2)", True),
        ("=AND(D1:D2)", True),  # text in a range is skipped
        ("=OR(FALSE, FALSE)", False),
        ("=OR(FALSE, B1=2)", True),
        ("=NOT(0)", True),
        ("=NOT(C1)", True),
        ('=IF(B2>2, "big", "small")', "big"),
        ('=If(B2>5, "big", "small")', "small"),
        ("=IF(FALSE, 1)", False),
        ("=IF(C1=0, 0, 1/C1)", 0.0),
        ("=IF(TRUE, 1, 1/0)", 1.0),  # only the chosen branch is evaluated
        ("=ISBLANK(C1)", True),
        ("=ISBLANK(C3)", False),  # "" is not blank
        ("=ISBLANK(A1)", False),
        ('=LEN("abc")', 3.0),
        ("=LEN(B1*10)", 2.0),
        ('=LOWER("AbC")', "abc"),
        ('=UPPER("AbC")', "ABC"),
        ('=TRIM("  a   b ")', "a b"),
        ('=EXACT("a", "A")', False),
        ('=EXACT("a", LOWER("A"))', True),
        ("=EXACT(B1, 2)", True),
        ("=COUNTA(A1:D3)", 9.0),
        ("=COUNTA(C:C)", 1.0),
        ('=COUNTA(1, "x", C1)', 2.0),
        ('=IF(AND(B1>1, OR(A1="A", FALSE)), UPPER(A1), "no")', "A"),
    ],
)
def test_functions_behave_as_in_sheets(formula: str, expected: CellValue) -> None:
    assert evaluate(formula, BOOK) == expected


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("=B2", 3.0),
        ("=$B$2", 3.0),
        ("=$B2", 3.0),
        ("=b$2", 3.0),
        ("=COUNTA(A1:B2)", 4.0),
        ("=COUNTA(B2:A1)", 4.0),  # corners in any order
        ("=COUNTA(B:B)", 3.0),
        ("=COUNTA($B:$B)", 3.0),
        ("=COUNTA(A2:A)", 1.0),  # open to the bottom
        ("=COUNTA(A:B)", 5.0),
        ("=Sheet2!B1", 6.0),
        ("=COUNTA(Sheet2!A1:B1)", 2.0),
        ("=COUNTA('My Sheet'!A:A)", 3.0),
        ("='Bob''s'!A1", 7.0),
        ("=Z99", None),  # outside the grid reads as empty
    ],
)
def test_references_read_cells_ranges_columns_and_other_sheets(
    formula: str, expected: CellValue
) -> None:
    assert evaluate(formula, BOOK) == expected


def test_a_range_evaluates_to_a_range_when_it_spans_more_than_one_cell() -> None:
    assert evaluate("='My Sheet'!A2:A", BOOK) == Range("My Sheet", 1, None, 0, 1)


@pytest.mark.parametrize(
    ("formula", "at", "expected"),
    [
        ("=A1", (0, 0), 1.0),
        ("=A1", (2, 1), 30.0),  # both parts move
        ("=$A$1", (2, 1), 1.0),  # neither moves
        ("=$A1", (2, 1), 3.0),  # the row moves
        ("=A$1", (2, 1), 10.0),  # the column moves
        ("=A1+$B$1", (2, 0), 13.0),
        ("=COUNTA(A1:A2)", (2, 0), 1.0),  # A3:A4
        ("=COUNTA($A1:$A)", (1, 1), 2.0),  # $A2:$A
        ('=INDIRECT("A1")', (2, 1), 1.0),  # text is not a reference: it never moves
    ],
)
def test_relative_parts_shift_with_the_cell_and_absolute_parts_stay_when_applied_elsewhere(
    formula: str, at: tuple[int, int], expected: CellValue
) -> None:
    book = Book({"Tracker": [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]})
    assert evaluate(formula, book, anchor=(0, 0), at=at) == expected


def test_a_reference_shifted_off_the_sheet_errs_and_its_rule_does_not_apply() -> None:
    with pytest.raises(FormulaError, match="#REF!"):
        evaluate("=A1", BOOK, anchor=(1, 1), at=(0, 1))
    assert rule_matches("=ISBLANK(A1)", BOOK, anchor=(1, 1), at=(0, 1)) is False


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        ('"hq"', 1.0),  # plain text: equality ignoring case
        ('"OPS"', 2.0),
        ('"o*"', 2.0),  # wildcards
        ('"?ps"', 2.0),
        ('"h"', 0.0),  # whole-cell match, not substring
        ('"<>ops"', 1.0),
        ('"=HQ"', 1.0),
        ('">n"', 2.0),  # text compares with text
        ('"<=hq"', 1.0),
        ("'My Sheet'!A1", 1.0),  # the criterion from a cell
    ],
)
def test_countif_matches_text_criteria_as_sheets_does(criterion: str, expected: float) -> None:
    assert evaluate(f"=COUNTIF('My Sheet'!A:A, {criterion})", BOOK) == expected


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        ("2", 1.0),  # numbers equal numbers
        ('"2"', 1.0),  # text that reads as a number compares as one
        ('">0"', 1.0),  # numbers only: the text and the boolean are not counted
        ('">=-1"', 2.0),
        ('"<2"', 1.0),
        ('"<>2"', 5.0),  # every other cell, blanks included
        ('"="', 1.0),  # blank cells
        ('""', 1.0),
        ('"<>"', 5.0),  # non-blank cells
        ("TRUE", 1.0),
        ('"x"', 1.0),
        ('"X*"', 1.0),
        ('"~*"', 0.0),  # ~ escapes a wildcard
        ('"ab~*"', 1.0),
    ],
)
def test_countif_matches_numbers_blanks_and_comparisons_as_sheets_does(
    criterion: str, expected: float
) -> None:
    book = Book({"Tracker": [[2.0], [-1.0], ["x"], [True], [None], ["ab*"]]})
    assert evaluate(f"=COUNTIF(A1:A6, {criterion})", book) == expected


def test_indirect_reads_a_quoted_sheet_name_and_countif_counts_there() -> None:
    assert evaluate('=COUNTIF(INDIRECT("\'My Sheet\'!$A:$A"), "ops")', BOOK) == 2.0
    assert evaluate("=INDIRECT(\"'Bob''s'!A1\")", BOOK) == 7.0
    assert evaluate('=indirect("Sheet2!" & "B1")', BOOK) == 6.0


TRACKER_RULE = '=AND($H2<>"", $I2<>"", $H2<>$I2, COUNTIF(INDIRECT("Overhead!$A:$A"), $C2)=0)'


def _tracker(rows: list[tuple[CellValue, CellValue, CellValue]]) -> Book:
    """Invoice Tracker rows under a header: project in C, entered by in H, manager in I."""
    grid: list[list[CellValue]] = [["Invoice", "Date", "Project", *"DEFG", "Entered by", "PM"]]
    for project, entered_by, manager in rows:
        grid.append(["INV", "2026-11-01", project, None, None, None, None, entered_by, manager])
    return Book({"Tracker": grid, "Overhead": [["Overhead projects"], ["HQ"], ["Admin"]]})


TRACKER = _tracker(
    [
        ("ACME", "Bob Roe", "Ann Lee"),  # row 2: a mismatch
        ("ACME", "Ann Lee", "Ann Lee"),  # row 3: the same person
        ("ACME", "ann lee", "Ann Lee"),  # row 4: the same person, other case
        ("hq", "Bob Roe", "Ann Lee"),  # row 5: an overhead project (listed as "HQ")
        ("ACME", None, "Ann Lee"),  # row 6: nobody entered it
        ("ACME", "Bob Roe", ""),  # row 7: no manager
        ("Admin", "Bob Roe", "Ann Lee"),  # row 8: overhead
        (None, "Bob Roe", "Ann Lee"),  # row 9: no project, so not overhead: a mismatch
        ("Beta", "Cy Poe", "Ann Lee"),  # row 10: a mismatch
    ]
)


@pytest.mark.parametrize(
    ("row", "highlighted"),
    [
        (2, True),
        (3, False),
        (4, False),
        (5, False),
        (6, False),
        (7, False),
        (8, False),
        (9, True),
        (10, True),
    ],
)
@pytest.mark.parametrize("col", [0, 2, 7, 8])
def test_the_invoice_tracker_rule_highlights_a_row_when_people_differ_outside_overhead(
    row: int, col: int, highlighted: bool
) -> None:
    # The rule's range starts at A2: anchor (1, 0); `row` is 1-based as Sheets shows it.
    assert rule_matches(TRACKER_RULE, TRACKER, anchor=(1, 0), at=(row - 1, col)) is highlighted


def test_the_invoice_tracker_rule_reads_the_overhead_sheet_as_it_is_now() -> None:
    book = _tracker([("ACME", "Bob Roe", "Ann Lee")])
    assert rule_matches(TRACKER_RULE, book, anchor=(1, 0), at=(1, 0)) is True
    book.sheets["Overhead"].append(["acme"])
    assert rule_matches(TRACKER_RULE, book, anchor=(1, 0), at=(1, 0)) is False


def test_the_invoice_tracker_rule_does_not_apply_when_the_overhead_sheet_is_missing() -> None:
    book = _tracker([("ACME", "Bob Roe", "Ann Lee")])
    del book.sheets["Overhead"]
    assert rule_matches(TRACKER_RULE, book, anchor=(1, 0), at=(1, 0)) is False


def test_the_rule_shared_core_writes_highlights_only_real_mismatches_outside_overhead() -> None:
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


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("=TRUE", True),
        ("=2", True),
        ("=-0.5", True),
        ("=0", False),
        ("=FALSE", False),
        ('="TRUE"', False),
        ("=C1", False),
        ("=B1:B2", True),
        ("=1/0", False),
    ],
)
def test_a_rule_applies_when_its_result_is_true_or_a_nonzero_number(
    formula: str, expected: bool
) -> None:
    assert rule_matches(formula, BOOK, anchor=(0, 0), at=(0, 0)) is expected


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("=1+", "expected a value, found the end"),
        ("=AND(1", "expected ')', found the end"),
        ("=A1 A2", "unexpected 'A2' at position 4"),
        ("=(1))", "unexpected ')' at position 4"),
        ('=1 & "open', "cannot read '\"open' at position 5"),
        ("=1 # 2", "cannot read '# 2' at position 3"),
        ("=,", "unexpected ',' at position 1"),
        ("=NOPE(1)", "unsupported function NOPE at position 1"),
        ("=SUM(A1:A2)", "unsupported function SUM"),
        ("=NOT(1, 2)", "NOT takes 1 to 1 arguments, not 2"),
        ("=IF(TRUE)", "IF takes 2 to 3 arguments, not 1"),
        ("=Nope", "unexpected 'Nope' at position 1"),
        ("1+1", "starts with '='"),
    ],
)
def test_a_formula_that_does_not_parse_raises_naming_where_and_never_applies_as_a_rule(
    formula: str, message: str
) -> None:
    with pytest.raises(FormulaError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(formula, BOOK)
    assert rule_matches(formula, BOOK, anchor=(0, 0), at=(0, 0)) is False


def test_a_parse_error_is_reported_before_anything_is_evaluated() -> None:
    with pytest.raises(FormulaError, match="unexpected"):
        evaluate("=1/0 )", BOOK)


@pytest.mark.parametrize(
    ("formula", "error"),
    [
        ("=1/0", "#DIV/0!"),
        ('="a"+1', "#VALUE!"),
        ('=AND("maybe")', "#VALUE!"),
        ("=AND(C1)", "#VALUE!"),  # no logical values at all
        ("=(-8)^0.5", "#NUM!"),
        ("=10^400", "#NUM!"),
        ("=Nowhere!A1", "#REF!: no sheet named 'Nowhere'"),
        ('=INDIRECT("not a ref")', "#REF!"),
        ('=INDIRECT("A1", FALSE)', "R1C1"),
        ('=COUNTIF("A1", 1)', "needs a range"),
    ],
)
def test_a_formula_that_errs_raises_the_sheets_error_and_never_applies_as_a_rule(
    formula: str, error: str
) -> None:
    with pytest.raises(FormulaError, match=error.replace("(", r"\(")):
        evaluate(formula, BOOK)
    assert rule_matches(formula, BOOK, anchor=(0, 0), at=(0, 0)) is False
