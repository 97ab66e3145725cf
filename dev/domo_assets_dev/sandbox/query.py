"""Row selection as Domo describes it: where expressions, columns, group by, order by, PDP.

Filters are Domo's JSON expressions (the export request's ``query.where``); the SQL of the
query endpoint (`sql.py`) is translated into the same expressions, so both share one
evaluator. Literals are converted to the column's type (``"2026-11-05"`` to a date for a
DATE column, ``"12.5"`` to a decimal for a DECIMAL column...). Comparisons with a null
value are false, as in SQL.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .datasets import Column, ColumnType, DatasetSpec, PdpPolicy, Row

Predicate = Callable[[Row], bool]

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "EQUALS": operator.eq,
    "NOT_EQUALS": operator.ne,
    "GREATER_THAN": operator.gt,
    "GREATER_THAN_EQUAL": operator.ge,
    "GREATER_THAN_EQUALS": operator.ge,
    "LESS_THAN": operator.lt,
    "LESS_THAN_EQUAL": operator.le,
    "LESS_THAN_EQUALS": operator.le,
}
MEMBERSHIP = {"IN": True, "NOT_IN": False}
LOGICAL: dict[str, Callable[[Iterable[bool]], bool]] = {"AND": all, "OR": any}
LIST_KEYS = ("values", "value", "expressions")
OPERAND_LIST_KEYS = ("expressions", "operands")
ASCENDING = frozenset({"ASC", "ASCENDING"})
DESCENDING = frozenset({"DESC", "DESCENDING"})
NUMERIC_TYPES = frozenset({ColumnType.LONG, ColumnType.DECIMAL})


class QueryError(ValueError):
    """A query or filter that cannot be run; the message says why."""


def always(row: Row) -> bool:
    """Predicate that keeps every row."""
    return True


def never(row: Row) -> bool:
    """Predicate that keeps no row."""
    return False


def both(first: Predicate, second: Predicate) -> Predicate:
    """Return the conjunction of two predicates (short-cuts the trivial ones)."""
    if first is always:
        return second
    if second is always:
        return first
    return lambda row: first(row) and second(row)


def coerce(raw: Any, column: Column) -> object:
    """Convert a filter literal to the Python type of `column`'s values.

    Raises:
        QueryError: If the literal does not fit the column's type.
    """
    try:
        return _convert(raw, column.type)
    except (ValueError, InvalidOperation) as exc:
        raise QueryError(
            f"Invalid value {raw!r} for column '{column.name}' ({column.type})"
        ) from exc


def _convert(raw: Any, kind: ColumnType) -> object:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(f"not a scalar: {raw!r}")
    text = str(raw).strip()
    if kind is ColumnType.STRING:
        return raw if isinstance(raw, str) else text
    if kind in NUMERIC_TYPES:
        number = Decimal(text)
        if not number.is_finite():
            raise ValueError(text)
        return number
    if kind is ColumnType.DOUBLE:
        return float(text)
    if kind is ColumnType.DATE:
        return date.fromisoformat(text[:10])
    moment = datetime.fromisoformat(text.removesuffix("Z").replace(" ", "T"))
    return moment.replace(tzinfo=None)


class WhereCompiler:
    """Compiles Domo where expressions over the columns of one DataSet."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self._columns = {column.name: (index, column) for index, column in enumerate(columns)}

    def compile(self, expr: Any) -> Predicate:
        """Return the predicate of `expr` (None keeps every row).

        Raises:
            QueryError: If the expression is malformed or names an unknown column.
        """
        if expr is None:
            return always
        if not isinstance(expr, Mapping):
            raise QueryError(f"Invalid where expression: expected an object, got {expr!r}")
        kind = str(expr.get("exprType", "")).upper()
        if kind in LOGICAL:
            return self._logical(kind, expr)
        if kind in COMPARISONS:
            return self._comparison(kind, expr)
        if kind in MEMBERSHIP:
            return self._membership(kind, expr)
        raise QueryError(f"Invalid where expression: unsupported exprType {kind or None!r}")

    def column(self, operand: Any) -> tuple[int, Column]:
        """Return the position and column named by a COLUMN expression.

        Raises:
            QueryError: If `operand` is not a column expression or the column is unknown.
        """
        name = column_name(operand, "Invalid where expression")
        if name not in self._columns:
            raise QueryError(f"Column not found in DataSet: '{name}'")
        return self._columns[name]

    def _logical(self, kind: str, expr: Mapping[str, Any]) -> Predicate:
        operands = _operand_list(expr)
        predicates = [self.compile(operand) for operand in operands]
        combine = LOGICAL[kind]
        return lambda row: combine(predicate(row) for predicate in predicates)

    def _comparison(self, kind: str, expr: Mapping[str, Any]) -> Predicate:
        index, column = self.column(expr.get("leftExpr"))
        value = coerce(_literal(expr.get("rightExpr")), column)
        compare = COMPARISONS[kind]
        return lambda row: row[index] is not None and compare(row[index], value)

    def _membership(self, kind: str, expr: Mapping[str, Any]) -> Predicate:
        index, column = self.column(expr.get("leftExpr"))
        items = _value_list(expr)
        values = tuple(coerce(_literal(item), column) for item in items)
        wanted = MEMBERSHIP[kind]
        return lambda row: row[index] is not None and (row[index] in values) is wanted


def _operand_list(expr: Mapping[str, Any]) -> list[Any]:
    for key in OPERAND_LIST_KEYS:
        if isinstance(expr.get(key), list) and expr[key]:
            return list(expr[key])
    if "leftExpr" in expr and "rightExpr" in expr:
        return [expr["leftExpr"], expr["rightExpr"]]
    raise QueryError(f"Invalid where expression: {expr.get('exprType')} needs two operands")


def _literal(operand: Any) -> Any:
    """Return the raw value of a value expression (``{"value": ..., "exprType": "*_VALUE"}``)."""
    if isinstance(operand, Mapping) and "value" in operand:
        kind = str(operand.get("exprType", "VALUE")).upper()
        if not kind.endswith("VALUE"):
            raise QueryError(f"Invalid where expression: unsupported value type {kind!r}")
        return operand["value"]
    if isinstance(operand, str | int | float) and not isinstance(operand, bool):
        return operand
    raise QueryError(f"Invalid where expression: expected a value, got {operand!r}")


def _value_list(expr: Mapping[str, Any]) -> list[Any]:
    """Return the items of an IN list, in any of the plausible shapes."""
    candidates = [expr.get("rightExpr"), expr.get("values")]
    for candidate in candidates:
        if isinstance(candidate, list):
            return _non_empty(candidate)
        if isinstance(candidate, Mapping):
            for key in LIST_KEYS:
                if isinstance(candidate.get(key), list):
                    return _non_empty(candidate[key])
    raise QueryError("Invalid where expression: IN needs a list of values")


def _non_empty(items: list[Any]) -> list[Any]:
    if not items:
        raise QueryError("Invalid where expression: IN needs at least one value")
    return items


@dataclass(frozen=True)
class RowQuery:
    """A compiled selection: filter, sort on source columns, project, de-duplicate, limit.

    Attributes:
        names: Names of the output columns.
        columns: Positions of the output columns.
        predicate: Row filter.
        order: ``(position, descending)`` pairs, most significant first.
        distinct: Keep only the first of identical output rows (group by without aggregates).
        limit: Maximum number of output rows, or None.
    """

    names: tuple[str, ...]
    columns: tuple[int, ...]
    predicate: Predicate = always
    order: tuple[tuple[int, bool], ...] = ()
    distinct: bool = False
    limit: int | None = None

    def run(self, rows: Iterable[Row], visible: Predicate = always) -> list[Row]:
        """Return the output rows of `rows` that also pass `visible` (the PDP filter)."""
        keep = both(visible, self.predicate)
        selected = list(rows) if keep is always else [row for row in rows if keep(row)]
        for position, descending in reversed(self.order):
            selected.sort(key=lambda row, p=position: _sort_key(row[p]), reverse=descending)
        projected = [tuple(row[p] for p in self.columns) for row in selected]
        if self.distinct:
            projected = list(dict.fromkeys(projected))
        return projected if self.limit is None else projected[: self.limit]

    def count(self, rows: Iterable[Row], visible: Predicate = always) -> int:
        """Return how many of `rows` pass the filter and `visible` (order and columns aside)."""
        keep = both(visible, self.predicate)
        return sum(1 for row in rows if keep(row))


def _sort_key(value: object) -> tuple[bool, object]:
    """Sort nulls after every value (ascending)."""
    return (value is None, value)


def column_name(item: Any, context: str) -> str:
    """Return the column named by a COLUMN expression (``{"column", "exprType": "COLUMN"}``).

    Raises:
        QueryError: If `item` is not a COLUMN expression; the message starts with `context`.
    """
    if not isinstance(item, Mapping) or not isinstance(item.get("column"), str):
        raise QueryError(f"{context}: expected a column expression, got {item!r}")
    if str(item.get("exprType", "COLUMN")).upper() != "COLUMN":
        raise QueryError(f"{context}: only COLUMN expressions are supported, got {item!r}")
    return item["column"]


def column_names(items: Any, field: str) -> list[str]:
    """Return the column names of a list of COLUMN expressions (None is an empty list).

    Raises:
        QueryError: If `items` is not such a list.
    """
    if items is None:
        return []
    if not isinstance(items, list):
        raise QueryError(f"Invalid query: '{field}' must be a list of column expressions")
    return [column_name(item, f"Invalid query: '{field}'") for item in items]


def order_items(items: Any) -> list[tuple[str, bool]]:
    """Parse ``orderByColumns``: column expressions or ``{expression, order}`` wrappers.

    Returns:
        ``(column name, descending)`` pairs.

    Raises:
        QueryError: If an entry has neither form or an unknown order.
    """
    if items is None:
        return []
    if not isinstance(items, list):
        raise QueryError("Invalid query: 'orderByColumns' must be a list")
    parsed = []
    for item in items:
        target = item.get("expression", item) if isinstance(item, Mapping) else item
        name = column_name(target, "Invalid query: 'orderByColumns'")
        direction = str(item.get("order", "ASCENDING")).upper()
        if direction not in ASCENDING | DESCENDING:
            raise QueryError(f"Invalid query: unknown order {direction!r}")
        parsed.append((name, direction in DESCENDING))
    return parsed


def build_query(
    spec: DatasetSpec,
    columns: Sequence[str],
    where: Any = None,
    group_by: Sequence[str] = (),
    order: Sequence[tuple[str, bool]] = (),
    limit: int | None = None,
) -> RowQuery:
    """Validate names against `spec` and compile a `RowQuery`.

    With `group_by` and no aggregates, output rows are the distinct combinations of the
    selected columns, which must all be grouped (no columns selected: the grouped ones).

    Raises:
        QueryError: For unknown columns, ungrouped columns or a malformed filter.
    """
    position = {column.name: index for index, column in enumerate(spec.columns)}
    names = list(columns) or list(group_by) or list(position)
    unknown = [n for n in [*names, *group_by, *(n for n, _ in order)] if n not in position]
    if unknown:
        raise QueryError(f"Column(s) not found in DataSet: {', '.join(dict.fromkeys(unknown))}")
    if group_by:
        ungrouped = [n for n in [*names, *(n for n, _ in order)] if n not in group_by]
        if ungrouped:
            raise QueryError(
                f"Column(s) must appear in groupByColumns (aggregates are not supported): "
                f"{', '.join(dict.fromkeys(ungrouped))}"
            )
    return RowQuery(
        names=tuple(names),
        columns=tuple(position[n] for n in names),
        predicate=WhereCompiler(spec.columns).compile(where),
        order=tuple((position[n], descending) for n, descending in order),
        distinct=bool(group_by),
        limit=limit,
    )


def pdp_filter(spec: DatasetSpec, user: str) -> Predicate:
    """Return the rows `user` may see under `spec`'s PDP policies.

    Without PDP every row is visible; with PDP a user sees the union of their policies'
    rows, and nothing when no policy names them.
    """
    if not spec.pdp_enabled:
        return always
    policies = [policy for policy in spec.policies if user in policy.users]
    if any(policy.all_rows for policy in policies):
        return always
    if not policies:
        return never
    compiler = WhereCompiler(spec.columns)
    return compiler.compile({"exprType": "OR", "expressions": [_policy_expr(p) for p in policies]})


def _policy_expr(policy: PdpPolicy) -> dict[str, Any]:
    return {
        "exprType": "IN",
        "leftExpr": {"column": policy.column, "exprType": "COLUMN"},
        "rightExpr": {"values": [{"value": v, "exprType": "STRING_VALUE"} for v in policy.values]},
    }
