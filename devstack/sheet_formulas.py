"""Google Sheets formulas, the part the Sheets stand-in needs: conditional-format rules.

A tokenizer, a recursive-descent parser to a small syntax tree, and an evaluator with Sheets'
semantics where our rules touch them (see `evaluate`); a rule whose formula errs does not apply.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

CellValue = str | float | bool | None  # None is an empty cell


class FormulaError(Exception):
    """A formula that does not parse, uses what this evaluator does not know, or errs (#DIV/0!...)."""


class Workbook(Protocol):
    def value(self, sheet: str | None, row: int, col: int) -> CellValue:
        """0-based; sheet None is the rule's own sheet; outside the grid reads as empty."""

    def size(self, sheet: str | None) -> tuple[int, int]:
        """(rows, columns) of a sheet; raises KeyError (or FormulaError) when there is none."""


@dataclass(frozen=True)
class Range:
    """A rectangle of cells, 0-based, end exclusive; an end of None runs to the sheet's edge."""

    sheet: str | None
    row_start: int
    row_end: int | None
    col_start: int
    col_end: int | None

    def cells(self, book: Workbook) -> Iterator[CellValue]:
        """Row by row, clipped to the sheet's grid."""
        try:
            rows, cols = book.size(self.sheet)
        except KeyError as exc:
            raise FormulaError(f"#REF!: no sheet named {self.sheet!r}") from exc
        row_end = rows if self.row_end is None else min(self.row_end, rows)
        col_end = cols if self.col_end is None else min(self.col_end, cols)
        for row in range(self.row_start, row_end):
            for col in range(self.col_start, col_end):
                yield book.value(self.sheet, row, col)

    def first(self, book: Workbook) -> CellValue:
        """The top-left cell: what a range means where one value is wanted."""
        return next(self.cells(book), None)

    def is_cell(self) -> bool:
        return (self.row_end, self.col_end) == (self.row_start + 1, self.col_start + 1)


Value = CellValue | Range

# -- tokens ---------------------------------------------------------------------------------------
_SHEET = r"(?:'(?:[^']|'')+'|[A-Za-z_][A-Za-z0-9_.]*)!"
_TOKEN = re.compile(
    rf"""\s*(?:
    (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<string>"(?:[^"]|"")*")
    |(?P<ref>(?:{_SHEET})?
        (?:\$?[A-Za-z]{{1,3}}\$?\d+(?::\$?[A-Za-z]{{1,3}}\$?\d*)?|\$?[A-Za-z]{{1,3}}:\$?[A-Za-z]{{1,3}})
        (?![A-Za-z0-9_.(!]))
    |(?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    |(?P<op><>|<=|>=|[=<>&+\-*/^(),])
    )""",
    re.VERBOSE,
)
_CELL = re.compile(r"(\$?)([A-Za-z]{1,3})(\$?)(\d*)")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, ref, name or op
    text: str
    position: int  # index into the formula, "=" included


def _tokens(formula: str) -> list[_Token]:
    tokens, position = [], 1
    while formula[position:].strip():
        match = _TOKEN.match(formula, position)
        if match is None:
            start = len(formula[position:]) - len(formula[position:].lstrip()) + position
            raise FormulaError(
                f"cannot read {formula[start : start + 12]!r} at position {start} of {formula!r}"
            )
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


# -- syntax tree: literals are plain values ---------------------------------------------------------
@dataclass(frozen=True)
class _Reference:
    text: str  # as written, e.g. "'Invoice Tracker'!$A2:C"


@dataclass(frozen=True)
class _Binary:
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[_Node, ...]


_Node = str | float | bool | _Reference | _Binary | _Call

# Loosest first; unary minus binds tighter than ^, as in Sheets (=-2^2 is 4).
_COMPARISONS = ("=", "<>", "<", ">", "<=", ">=")
_LEVELS = (_COMPARISONS, ("&",), ("+", "-"), ("*", "/"), ("^",))


class _Parser:
    def __init__(self, formula: str) -> None:
        self.formula = formula
        self.tokens = _tokens(formula)
        self.index = 0

    def parse(self) -> _Node:
        node = self.binary(0)
        if self.index < len(self.tokens):
            raise self.error(self.tokens[self.index])
        return node

    def error(self, token: _Token | None, expected: str = "") -> FormulaError:
        found = f"{token.text!r} at position {token.position}" if token else "the end"
        wanted = f"expected {expected}, found " if expected else "unexpected "
        return FormulaError(f"{wanted}{found} of {self.formula!r}")

    def next(self, expected: str = "") -> _Token:
        token = self.tokens[self.index] if self.index < len(self.tokens) else None
        if token is None or (expected and token.text != expected):
            raise self.error(token, repr(expected) if expected else "a value")
        self.index += 1
        return token

    def at(self, *ops: str) -> bool:
        if self.index >= len(self.tokens):
            return False
        token = self.tokens[self.index]
        return token.kind == "op" and token.text in ops

    def binary(self, level: int) -> _Node:
        if level == len(_LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while self.at(*_LEVELS[level]):
            op = self.next().text
            node = _Binary(op, node, self.binary(level + 1))
        return node

    def unary(self) -> _Node:
        if self.at("-"):
            self.next()
            return _Binary("-", 0.0, self.unary())  # =-A1 is =0-A1
        if self.at("+"):
            self.next()
            return self.unary()
        return self.primary()

    def primary(self) -> _Node:
        token = self.next()
        if token.kind == "number":
            return float(token.text)
        if token.kind == "string":
            return token.text[1:-1].replace('""', '"')
        if token.kind == "ref":
            return _Reference(token.text)
        if token.kind == "name" and self.at("("):
            return self.call(token)
        if token.kind == "name" and token.text.upper() in ("TRUE", "FALSE"):
            return token.text.upper() == "TRUE"
        if token.text == "(":
            node = self.binary(0)
            self.next(")")
            return node
        raise self.error(token)

    def call(self, name: _Token) -> _Call:
        self.next("(")
        args: list[_Node] = []
        if not self.at(")"):
            args.append(self.binary(0))
            while self.at(","):
                self.next()
                args.append(self.binary(0))
        self.next(")")
        upper = name.text.upper()
        if upper not in _FUNCTIONS:
            raise FormulaError(f"unsupported function {name.text} at position {name.position}")
        least, most, _ = _FUNCTIONS[upper]
        if not least <= len(args) <= (most if most is not None else len(args)):
            raise FormulaError(
                f"{upper} takes {least} to {most or 'any'} arguments, not {len(args)}"
            )
        return _Call(upper, tuple(args))


# -- values ---------------------------------------------------------------------------------------
def _reference(text: str, shift: tuple[int, int] = (0, 0)) -> Range:
    """A1 text (with an optional sheet) as a Range; relative parts moved by `shift`."""
    sheet: str | None = None
    if "!" in text:
        sheet, text = text.rsplit("!", 1)
        if sheet.startswith("'") and sheet.endswith("'") and len(sheet) > 1:
            sheet = sheet[1:-1].replace("''", "'")
    first, colon, last = text.strip().partition(":")
    start, end = _CELL.fullmatch(first), _CELL.fullmatch(last if colon else first)
    if start is None or end is None or not (colon or start[4]):
        raise FormulaError(f"#REF!: not a reference: {text!r}")

    def corner(match: re.Match[str]) -> tuple[int | None, int]:
        col_abs, letters, row_abs, digits = match.groups()
        col = _column(letters) + (0 if col_abs else shift[1])
        row = int(digits) - 1 + (0 if row_abs else shift[0]) if digits else None
        if col < 0 or (row is not None and row < 0):
            raise FormulaError(f"#REF!: {text!r} moves off the sheet")
        return row, col

    (row0, col0), (row1, col1) = corner(start), corner(end)
    cols = min(col0, col1), max(col0, col1) + 1
    if row0 is None or row1 is None:  # A:A, or A2:A open to the bottom
        return Range(sheet, row0 or 0, None, *cols)
    return Range(sheet, min(row0, row1), max(row0, row1) + 1, *cols)


def _column(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - ord("A") + 1
    return number - 1


def _text(value: CellValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return format(value, ".15g").upper()  # Sheets shows 15 significant digits: 0.1+0.2 is 0.3
    return value


def _number(value: CellValue) -> float:
    if value is None or isinstance(value, bool | int | float):
        return float(value or 0)
    if _NUMBER.fullmatch(value.strip()):
        return float(value)
    raise FormulaError(f"#VALUE!: {value!r} is not a number")


def _truth(value: CellValue) -> bool:
    if isinstance(value, str):
        if value.upper() not in ("TRUE", "FALSE"):
            raise FormulaError(f"#VALUE!: {value!r} is not TRUE or FALSE")
        return value.upper() == "TRUE"
    return bool(value)


def _rank(value: CellValue) -> tuple[int, float | str | bool]:
    """Sheets' order across types: numbers, then text (ignoring case), then booleans."""
    if isinstance(value, bool):
        return 2, value
    if isinstance(value, int | float):
        return 0, float(value)
    return 1, (value or "").lower()


def _compare(left: CellValue, right: CellValue, op: str) -> bool:
    """Sheets' comparison: an empty cell takes the other side's type ("", 0 or FALSE)."""
    if left is None:
        left = "" if isinstance(right, str) else False if isinstance(right, bool) else 0.0
    if right is None:
        right = "" if isinstance(left, str) else False if isinstance(left, bool) else 0.0
    a, b = _rank(left), _rank(right)
    outcomes = {"=": a == b, "<>": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}
    return outcomes[op]


_ARITHMETIC: dict[str, Callable[[float, float], object]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "^": operator.pow,
}


def _arithmetic(op: str, left: CellValue, right: CellValue) -> float:
    a, b = _number(left), _number(right)
    try:
        result = _ARITHMETIC[op](a, b)
    except ZeroDivisionError as exc:
        raise FormulaError(f"#DIV/0!: {a} {op} {b}") from exc
    except OverflowError as exc:
        raise FormulaError(f"#NUM!: {a} {op} {b}") from exc
    if not isinstance(result, float):  # a negative number to a fractional power is complex
        raise FormulaError(f"#NUM!: {a} {op} {b}")
    return result


def _wildcard(pattern: str) -> re.Pattern[str]:
    """COUNTIF's text pattern: * any run, ? one character, ~ escapes; case ignored."""
    parts = re.findall(r"~.|.", pattern, re.DOTALL)
    regex = "".join(".*" if p == "*" else "." if p == "?" else re.escape(p[-1]) for p in parts)
    return re.compile(regex, re.IGNORECASE | re.DOTALL)


def _criterion(wanted: CellValue) -> Callable[[CellValue], bool]:
    """COUNTIF's test for one cell: a plain value, or text such as ">=5", "<>x", "=a*", ""."""
    op, operand = "=", wanted
    if isinstance(wanted, str):
        op = next((o for o in ("<>", "<=", ">=", "=", "<", ">") if wanted.startswith(o)), "")
        text, op = wanted[len(op) :], op or "="
        operand = float(text) if _NUMBER.fullmatch(text.strip()) else text
        if text.upper() in ("TRUE", "FALSE"):
            operand = text.upper() == "TRUE"
    pattern = _wildcard(operand if isinstance(operand, str) else "")

    def test(cell: CellValue) -> bool:
        blank = cell is None or cell == ""
        if operand is None:
            return False  # an empty criterion cell; what Sheets does here is not checked
        if operand == "":
            return (not blank) if op == "<>" else blank and op == "="
        if op in ("=", "<>"):
            if isinstance(operand, str):
                same = isinstance(cell, str) and pattern.fullmatch(cell) is not None
            else:
                same = not blank and _rank(cell) == _rank(operand)
            return same == (op == "=")
        return not blank and _rank(cell)[0] == _rank(operand)[0] and _compare(cell, operand, op)

    return test


# -- evaluation -----------------------------------------------------------------------------------
class _Evaluator:
    def __init__(self, book: Workbook, shift: tuple[int, int]) -> None:
        self.book, self.shift = book, shift

    def value(self, node: _Node) -> Value:
        if isinstance(node, _Reference):
            return _reference(node.text, self.shift)
        if isinstance(node, _Call):
            return _FUNCTIONS[node.name][2](self, node.args)
        if not isinstance(node, _Binary):
            return node
        left, right = self.scalar(node.left), self.scalar(node.right)
        if node.op in _COMPARISONS:
            return _compare(left, right, node.op)
        if node.op == "&":
            return _text(left) + _text(right)
        return _arithmetic(node.op, left, right)

    def scalar(self, node: _Node) -> CellValue:
        value = self.value(node)
        return value.first(self.book) if isinstance(value, Range) else value

    def text(self, node: _Node) -> str:
        return _text(self.scalar(node))

    def cells(self, args: tuple[_Node, ...]) -> Iterator[CellValue]:
        """Every cell of the ranges among `args`, and the other values as they are."""
        for arg in args:
            value = self.value(arg)
            yield from value.cells(self.book) if isinstance(value, Range) else [value]

    def logicals(self, args: tuple[_Node, ...]) -> list[bool]:
        """AND/OR's operands: ranges give their numbers and booleans, other values must convert."""
        found: list[bool] = []
        for arg in args:
            value = self.value(arg)
            if isinstance(value, Range):
                found += [bool(v) for v in value.cells(self.book) if not isinstance(v, str | None)]
            else:
                found.append(_truth(value))
        if not found:
            raise FormulaError("#VALUE!: AND/OR found no logical values")
        return found


def _if(ev: _Evaluator, args: tuple[_Node, ...]) -> Value:
    """Only the chosen branch is evaluated: =IF(B1=0, 0, A1/B1) does not divide by zero."""
    if _truth(ev.scalar(args[0])):
        return ev.scalar(args[1])
    return ev.scalar(args[2]) if len(args) > 2 else False


def _countif(ev: _Evaluator, args: tuple[_Node, ...]) -> Value:
    target = ev.value(args[0])
    if not isinstance(target, Range):
        raise FormulaError("COUNTIF needs a range as its first argument")
    test = _criterion(ev.scalar(args[1]))
    return float(sum(1 for cell in target.cells(ev.book) if test(cell)))


def _indirect(ev: _Evaluator, args: tuple[_Node, ...]) -> Value:
    if len(args) > 1 and not _truth(ev.scalar(args[1])):
        raise FormulaError("INDIRECT with R1C1 notation is not supported")
    return _reference(ev.text(args[0]))


_Function = Callable[[_Evaluator, tuple[_Node, ...]], Value]
_FUNCTIONS: dict[str, tuple[int, int | None, _Function]] = {  # name: (least, most args, body)
    "AND": (1, None, lambda ev, args: all(ev.logicals(args))),
    "OR": (1, None, lambda ev, args: any(ev.logicals(args))),
    "NOT": (1, 1, lambda ev, args: not _truth(ev.scalar(args[0]))),
    "IF": (2, 3, _if),
    "ISBLANK": (1, 1, lambda ev, args: ev.scalar(args[0]) is None),
    "LEN": (1, 1, lambda ev, args: float(len(ev.text(args[0])))),
    "LOWER": (1, 1, lambda ev, args: ev.text(args[0]).lower()),
    "UPPER": (1, 1, lambda ev, args: ev.text(args[0]).upper()),
    "TRIM": (1, 1, lambda ev, args: re.sub(" +", " ", ev.text(args[0]).strip(" "))),
    "EXACT": (2, 2, lambda ev, args: ev.text(args[0]) == ev.text(args[1])),
    "COUNTA": (1, None, lambda ev, args: float(sum(v not in (None, "") for v in ev.cells(args)))),
    "COUNTIF": (2, 2, _countif),
    "INDIRECT": (1, 2, _indirect),
}


def evaluate(
    formula: str,
    workbook: Workbook,
    *,
    anchor: tuple[int, int] = (0, 0),
    at: tuple[int, int] = (0, 0),
) -> CellValue | Range:
    """`formula` (starting with "="), written for the cell `anchor`, evaluated at the cell `at`.

    Relative parts of references move by `at - anchor`, $-absolute parts stay. A single cell
    gives its value, a larger range a `Range`. Text compares ignoring case; an empty cell equals
    "", 0 and FALSE; across types numbers < text < booleans. Raises FormulaError when the
    formula does not parse (naming the position, "=" being position 0) or errs.
    """
    if not formula.startswith("="):
        raise FormulaError(f"a formula starts with '=': {formula!r}")
    try:
        tree = _Parser(formula).parse()
        value = _Evaluator(workbook, (at[0] - anchor[0], at[1] - anchor[1])).value(tree)
    except RecursionError as exc:
        raise FormulaError("formula nested too deeply") from exc
    return value.first(workbook) if isinstance(value, Range) and value.is_cell() else value


def rule_matches(
    formula: str, workbook: Workbook, *, anchor: tuple[int, int], at: tuple[int, int]
) -> bool:
    """Whether a CUSTOM_FORMULA rule applies at `at`: TRUE or a non-zero number; errors do not."""
    try:
        value = evaluate(formula, workbook, anchor=anchor, at=at)
        if isinstance(value, Range):
            value = value.first(workbook)
    except FormulaError:
        return False
    return isinstance(value, bool | int | float) and bool(value)
