"""Google Sheets formulas, the part the Sheets stand-in needs: conditional-format rules.

A small recursive-descent parser and evaluator with Sheets' semantics where our rules touch
them: text compares without regard to case, an empty cell equals "" and 0 and FALSE, numbers sort
before text and text before booleans, relative references shift with the cell a rule is applied
to while $-absolute parts stay, and a rule whose formula errs does not apply.

Supported: numbers, "text" ("" escapes a quote), TRUE/FALSE, references (A1, $A$2, A2:B9, A:A,
A2:A, with 'Sheet name'! or Sheet!), unary -, ^, * /, + -, &, = <> < > <= >=, and AND, OR, NOT,
IF, ISBLANK, LEN, LOWER, UPPER, TRIM, EXACT, COUNTA, COUNTIF, INDIRECT.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

CellValue = str | float | bool | None


class FormulaError(Exception):
    """A formula that does not parse, or uses what this evaluator does not know."""


class Workbook(Protocol):
    def value(self, sheet: str | None, row: int, col: int) -> CellValue:
        """0-based; sheet None is the rule's own sheet; outside the grid reads as empty."""
        ...

    def size(self, sheet: str | None) -> tuple[int, int]:
        """(rows, columns) of a sheet; raises KeyError when there is no such sheet."""
        ...


@dataclass(frozen=True)
class Range:
    """A rectangle of cells, 0-based, end exclusive; None end = to the edge of the sheet."""

    sheet: str | None
    row_start: int
    row_end: int | None
    col_start: int
    col_end: int | None

    def cells(self, book: Workbook) -> Iterator[CellValue]:
        try:
            rows, cols = book.size(self.sheet)
        except KeyError as exc:
            raise FormulaError(f"no sheet named {self.sheet!r}") from exc
        for row in range(self.row_start, rows if self.row_end is None else min(self.row_end, rows)):
            for col in range(
                self.col_start, cols if self.col_end is None else min(self.col_end, cols)
            ):
                yield book.value(self.sheet, row, col)


Value = CellValue | Range

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
    |(?P<string>"(?:[^"]|"")*")
    |(?P<ref>(?:(?:'(?:[^']|'')+'|[A-Za-z_][A-Za-z0-9_.]*)!)?
        (?:\$?[A-Za-z]{1,3}\$?\d+(?::\$?[A-Za-z]{1,3}\$?\d*)?|\$?[A-Za-z]{1,3}:\$?[A-Za-z]{1,3}))
        (?![A-Za-z0-9_(])
    |(?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    |(?P<op><>|<=|>=|[=<>&+\-*/^(),])
    )""",
    re.VERBOSE,
)
_CELL = re.compile(r"^(\$?)([A-Za-z]{1,3})(\$?)(\d*)$")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise FormulaError(
                f"cannot read the formula at position {position}: {text[position : position + 12]!r}"
            )
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


def _column(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - ord("A") + 1
    return number - 1


def parse_reference(text: str, shift: tuple[int, int] = (0, 0)) -> Range:
    """A1 text (with an optional sheet) as a Range; relative parts moved by `shift`."""
    sheet: str | None = None
    if "!" in text:
        sheet, text = text.rsplit("!", 1)
        if sheet.startswith("'"):
            sheet = sheet[1:-1].replace("''", "'")
    first, _, last = text.partition(":")
    start, end = _CELL.match(first), _CELL.match(last or first)
    if start is None or end is None:
        raise FormulaError(f"not a reference: {text!r}")

    def corner(match: re.Match[str]) -> tuple[int | None, int]:
        col_abs, letters, row_abs, digits = match.groups()
        col = _column(letters) + (0 if col_abs else shift[1])
        row = None if not digits else int(digits) - 1 + (0 if row_abs else shift[0])
        return row, col

    (row0, col0), (row1, col1) = corner(start), corner(end)
    return Range(sheet, row0 or 0, None if row1 is None else row1 + 1, col0, col1 + 1)


def _scalar(value: Value, book: Workbook) -> CellValue:
    if isinstance(value, Range):
        cells = list(
            Range(
                value.sheet,
                value.row_start,
                value.row_start + 1,
                value.col_start,
                value.col_start + 1,
            ).cells(book)
        )
        return cells[0] if cells else None
    return value


def _text(value: CellValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return value


def _number(value: CellValue) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        raise FormulaError(f"{value!r} is not a number") from None


def _truth(value: CellValue) -> bool:
    if isinstance(value, str):
        if value.upper() in ("TRUE", "FALSE"):
            return value.upper() == "TRUE"
        raise FormulaError(f"{value!r} is not TRUE or FALSE")
    return bool(value)


def _rank(value: CellValue) -> tuple[int, object]:
    if isinstance(value, bool):
        return 2, value
    if isinstance(value, int | float):
        return 0, float(value)
    return 1, str(value).lower()


def compare(left: CellValue, right: CellValue, op: str) -> bool:
    """Sheets' comparison: empty takes the other side's type; text ignores case."""
    if left is None:
        left = "" if isinstance(right, str) else (False if isinstance(right, bool) else 0.0)
    if right is None:
        right = "" if isinstance(left, str) else (False if isinstance(left, bool) else 0.0)
    a, b = _rank(left), _rank(right)
    return {
        "=": a == b,
        "<>": a != b,
        "<": a < b,
        ">": a > b,
        "<=": a <= b,
        ">=": a >= b,
    }[op]


def _matches(cell: CellValue, criterion: CellValue) -> bool:
    """COUNTIF's criterion: "<5", ">=x", "<>x", "=x", or a plain value (text may use * and ?)."""
    if criterion is None:
        return False  # an empty criterion cell: counted as matching nothing (not checked against Sheets)
    if isinstance(criterion, str):
        operator = next(
            (op for op in ("<>", "<=", ">=", "=", "<", ">") if criterion.startswith(op)), None
        )
        if operator is not None:
            operand_text = criterion[len(operator) :]
            try:
                operand: CellValue = float(operand_text)
            except ValueError:
                operand = operand_text
            if operand == "":
                return (cell in (None, "")) == (operator == "=")
            return cell is not None and compare(cell, operand, operator)
        if isinstance(cell, str):
            return fnmatch.fnmatchcase(cell.lower(), criterion.lower())
        return False
    return cell is not None and compare(cell, criterion, "=")


class _Parser:
    def __init__(self, text: str, book: Workbook, shift: tuple[int, int]) -> None:
        self.tokens = _tokens(text)
        self.position = 0
        self.book = book
        self.shift = shift

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, text: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if token is None or (text is not None and token[1] != text):
            where = token[2] if token else "the end"
            raise FormulaError(f"expected {text or 'more'} at position {where}")
        self.position += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1] in texts

    def expression(self) -> Value:
        left = self.concatenation()
        while self.at("=", "<>", "<", ">", "<=", ">="):
            op = self.take()[1]
            right = self.concatenation()
            left = compare(_scalar(left, self.book), _scalar(right, self.book), op)
        return left

    def _binary(
        self,
        operators: tuple[str, ...],
        operand: Callable[[], Value],
        apply: Callable[[str, CellValue, CellValue], CellValue],
    ) -> Value:
        left = operand()
        while self.at(*operators):
            op = self.take()[1]
            left = apply(op, _scalar(left, self.book), _scalar(operand(), self.book))
        return left

    def concatenation(self) -> Value:
        return self._binary(("&",), self.additive, lambda _, a, b: _text(a) + _text(b))

    def additive(self) -> Value:
        return self._binary(
            ("+", "-"),
            self.multiplicative,
            lambda op, a, b: _number(a) + _number(b) if op == "+" else _number(a) - _number(b),
        )

    def multiplicative(self) -> Value:
        def apply(op: str, a: CellValue, b: CellValue) -> CellValue:
            if op == "*":
                return _number(a) * _number(b)
            if _number(b) == 0:
                raise FormulaError("#DIV/0!")
            return _number(a) / _number(b)

        return self._binary(("*", "/"), self.power, apply)

    def power(self) -> Value:
        return self._binary(("^",), self.unary, lambda _, a, b: _number(a) ** _number(b))

    def unary(self) -> Value:
        if self.at("-"):
            self.take()
            return -_number(_scalar(self.unary(), self.book))
        if self.at("+"):
            self.take()
        return self.primary()

    def primary(self) -> Value:
        kind, text, position = self.take()
        if kind == "number":
            return float(text)
        if kind == "string":
            return text[1:-1].replace('""', '"')
        if kind == "ref":
            return parse_reference(text, self.shift)
        if kind == "name":
            if self.at("("):
                return self.call(text.upper())
            if text.upper() in ("TRUE", "FALSE"):
                return text.upper() == "TRUE"
            raise FormulaError(f"unknown name {text!r} at position {position}")
        if text == "(":
            value = self.expression()
            self.take(")")
            return value
        raise FormulaError(f"unexpected {text!r} at position {position}")

    def call(self, name: str) -> Value:
        self.take("(")
        args: list[Value] = []
        if not self.at(")"):
            args.append(self.expression())
            while self.at(","):
                self.take()
                args.append(self.expression())
        self.take(")")
        function = _FUNCTIONS.get(name)
        if function is None:
            raise FormulaError(f"unknown function {name}")
        return function(args, self.book)


def _values(args: list[Value], book: Workbook) -> Iterator[CellValue]:
    for arg in args:
        if isinstance(arg, Range):
            yield from arg.cells(book)
        else:
            yield arg


def _indirect(args: list[Value], book: Workbook) -> Value:
    return parse_reference(_text(_scalar(args[0], book)))


def _countif(args: list[Value], book: Workbook) -> Value:
    target, criterion = args
    if not isinstance(target, Range):
        raise FormulaError("COUNTIF needs a range")
    wanted = _scalar(criterion, book)
    return float(sum(1 for cell in target.cells(book) if _matches(cell, wanted)))


def _if(args: list[Value], book: Workbook) -> Value:
    chosen = args[1] if _truth(_scalar(args[0], book)) else (args[2] if len(args) > 2 else False)
    return _scalar(chosen, book)


_FUNCTIONS: dict[str, Callable[[list[Value], Workbook], Value]] = {
    "AND": lambda args, book: all(_truth(v) for v in _values(args, book) if v is not None),
    "OR": lambda args, book: any(_truth(v) for v in _values(args, book) if v is not None),
    "NOT": lambda args, book: not _truth(_scalar(args[0], book)),
    "IF": _if,
    "ISBLANK": lambda args, book: _scalar(args[0], book) is None,
    "LEN": lambda args, book: float(len(_text(_scalar(args[0], book)))),
    "LOWER": lambda args, book: _text(_scalar(args[0], book)).lower(),
    "UPPER": lambda args, book: _text(_scalar(args[0], book)).upper(),
    "TRIM": lambda args, book: " ".join(_text(_scalar(args[0], book)).split()),
    "EXACT": lambda args, book: _text(_scalar(args[0], book)) == _text(_scalar(args[1], book)),
    "COUNTA": lambda args, book: float(sum(1 for v in _values(args, book) if v not in (None, ""))),
    "COUNTIF": _countif,
    "INDIRECT": _indirect,
}


def evaluate(
    formula: str,
    workbook: Workbook,
    *,
    anchor: tuple[int, int] = (0, 0),
    at: tuple[int, int] = (0, 0),
) -> Value:
    """`formula` (starting with "="), written for the cell `anchor`, evaluated at the cell `at`."""
    if not formula.startswith("="):
        raise FormulaError("a formula starts with '='")
    parser = _Parser(formula[1:], workbook, (at[0] - anchor[0], at[1] - anchor[1]))
    value = parser.expression()
    if parser.peek() is not None:
        raise FormulaError(f"unexpected {parser.peek()[1]!r} at position {parser.peek()[2]}")  # type: ignore[index]
    single = isinstance(value, Range) and (value.row_end, value.col_end) == (
        value.row_start + 1,
        value.col_start + 1,
    )
    return _scalar(value, workbook) if single else value


def rule_matches(
    formula: str, workbook: Workbook, *, anchor: tuple[int, int], at: tuple[int, int]
) -> bool:
    """Whether a CUSTOM_FORMULA rule applies at `at`; a formula that errs never applies."""
    try:
        value = _scalar(evaluate(formula, workbook, anchor=anchor, at=at), workbook)
        return _truth(value) if not isinstance(value, str) else False
    except (FormulaError, ValueError, TypeError, IndexError):
        return False
