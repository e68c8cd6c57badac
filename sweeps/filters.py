"""The eval stage's filter language: a small, safe expression over a cell's axis values.

    filter: test_sample_ratio >= train_sample_ratio and num_decoders != 0

Parsed with ``ast`` and compiled to closures: comparisons, ``and``/``or``/``not``, parentheses, numbers,
strings and axis names, nothing else (no calls, attributes or subscripts), so a spec cannot run code.
"""

from __future__ import annotations

import ast
import operator
import typing
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_LANGUAGE = "comparisons < <= > >= == !=, and, or, not, parentheses, numbers, strings, axis names"

Cell = Mapping[str, Any]


def compile_filter(text: str, names: list[str]) -> Callable[[Cell], bool]:
    """A predicate over a cell's axis values; ValueError (one line) for anything outside the language."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"not a valid filter expression: {error.msg} (allowed: {_LANGUAGE})") from None
    predicate = _compile(tree.body, names)
    return lambda cell: bool(predicate(cell))


def _compile(node: ast.expr, names: list[str]) -> Callable[[Cell], Any]:
    if isinstance(node, ast.BoolOp):
        parts = [_compile(value, names) for value in node.values]
        if isinstance(node.op, ast.And):
            return lambda cell: all(part(cell) for part in parts)
        return lambda cell: any(part(cell) for part in parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        negated = _compile(node.operand, names)
        return lambda cell: not negated(cell)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        number = node.operand.value if isinstance(node.operand, ast.Constant) else None
        if type(number) not in (int, float):
            _refuse(node, "a sign goes on a number only")
        constant = -typing.cast(float, number) if isinstance(node.op, ast.USub) else number
        return lambda cell: constant
    if isinstance(node, ast.Compare):
        return _compile_comparison(node, names)
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise ValueError(f"unknown axis name {node.id!r} in the filter (allowed: {', '.join(names)})")
        name = node.id
        return lambda cell: cell[name]
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str):
        value = node.value
        return lambda cell: value
    _refuse(node, f"{type(node).__name__} is not part of the filter language")


def _compile_comparison(node: ast.Compare, names: list[str]) -> Callable[[Cell], bool]:
    terms = [_compile(node.left, names)] + [_compile(c, names) for c in node.comparators]
    tests = []
    for op in node.ops:
        test = _COMPARISONS.get(type(op))
        if test is None:
            _refuse(node, f"{type(op).__name__} is not a comparison of the filter language")
        tests.append(test)

    def compare(cell: Cell) -> bool:
        values = [term(cell) for term in terms]
        return all(test(a, b) for test, a, b in zip(tests, values, values[1:], strict=False))

    return compare


def _refuse(node: ast.AST, problem: str) -> NoReturn:
    snippet = ast.unparse(node)
    raise ValueError(f"{problem}: {snippet[:40]} (allowed: {_LANGUAGE})")
