r"""The tiny SQL dialect of the query endpoints, translated to Domo where expressions.

Grammar (keywords case-insensitive, the table is always called ``table``)::

    SELECT (COUNT(*) | * | column [, column]...) FROM table [WHERE condition] [LIMIT n] [;]
    condition := term [OR term]...      term := factor [AND factor]...
    factor    := ( condition ) | operand op literal | operand [NOT] IN ( literal [, literal]... )
    operand   := column | literal
    op        := = | != | <> | < | <= | > | >=
    column    := `Back-ticked` | bare_identifier | "Double-quoted" (lenient quotes only)
    literal   := 'string' | "string" (mysql quotes only) | number

Two quote modes. ``lenient``: a double-quoted token is a column name (``""`` is a quote in
it). ``mysql``: as in Domo's MySQL-like dialect, a double-quoted token is a string literal and
only back-ticks quote names. Both read MySQL literals: in a string a doubled quote is a quote
and backslash escapes apply (``\0 \b \n \r \t \Z``; ``\%`` and ``\_`` keep their
backslash; any other ``\x`` is ``x``); in a back-ticked name two back-ticks are one.

A comparison whose left side is a literal does not depend on the row: it is evaluated once,
MySQL-style (string against number: the string's leading numeric prefix, 0 without one;
string against string: string comparison), so ``"Days Supply" >= 30`` in ``mysql`` mode is
``0 >= 30``, false for every row.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .datasets import ColumnType, DatasetSpec, Row
from .query import (
    COMPARISONS,
    MEMBERSHIP,
    Predicate,
    QueryError,
    WhereCompiler,
    always,
    build_query,
    never,
    pdp_filter,
)

LENIENT_QUOTES = "lenient"
MYSQL_QUOTES = "mysql"
SQL_QUOTE_MODES = (LENIENT_QUOTES, MYSQL_QUOTES)
TABLE_NAME = "table"
COUNT_COLUMN = "COUNT(*)"
SINGLE_QUOTED_STRING = r"'(?:[^'\\]|\\.|'')*'"
DOUBLE_QUOTED_STRING = r'"(?:[^"\\]|\\.|"")*"'
DOUBLE_QUOTED_NAME = r'"(?:[^"]|"")*"'
BACK_TICKED_NAME = r"`(?:[^`]|``)*`"
OTHER_TOKENS = r"""
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<symbol><=|>=|<>|!=|=|<|>|\(|\)|,|\*|;)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )"""


def _token_pattern(strings: str, names: str) -> re.Pattern[str]:
    body = rf"\s*(?: (?P<string>{strings}) | (?P<quoted>{names}) {OTHER_TOKENS}"
    return re.compile(body, re.VERBOSE | re.DOTALL)


TOKEN_PATTERNS: dict[str, re.Pattern[str]] = {
    LENIENT_QUOTES: _token_pattern(
        SINGLE_QUOTED_STRING, f"{DOUBLE_QUOTED_NAME}|{BACK_TICKED_NAME}"
    ),
    MYSQL_QUOTES: _token_pattern(
        f"{SINGLE_QUOTED_STRING}|{DOUBLE_QUOTED_STRING}", BACK_TICKED_NAME
    ),
}
# MySQL's string escapes; an escaped character not listed here stands for itself.
MYSQL_ESCAPES = {
    "0": "\0",
    "b": "\b",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "Z": "\x1a",
    "%": "\\%",  # kept with its backslash, as MySQL does (LIKE patterns need it)
    "_": "\\_",
}
ESCAPE_PATTERNS = {quote: re.compile(rf"\\(.)|{quote}{quote}", re.DOTALL) for quote in "'\""}
NUMERIC_PREFIX = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
OPERATORS = {
    "=": "EQUALS",
    "!=": "NOT_EQUALS",
    "<>": "NOT_EQUALS",
    "<": "LESS_THAN",
    "<=": "LESS_THAN_EQUAL",
    ">": "GREATER_THAN",
    ">=": "GREATER_THAN_EQUAL",
}
KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIMIT", "COUNT"})
LITERAL_KINDS = frozenset({"string", "number"})
DOUBLE_QUOTE_HINT = (
    "a double-quoted token is a string literal in Domo's MySQL-like dialect: wrap column "
    "names in back-ticks, e.g. `Days Supply`"
)


@dataclass(frozen=True)
class Token:
    """A lexical token: kind (a token pattern group name), text and offset."""

    kind: str
    text: str
    offset: int


@dataclass(frozen=True)
class ConstantCondition:
    """A condition that does not depend on the row (a comparison of two literals)."""

    value: bool


@dataclass(frozen=True)
class SqlQuery:
    """A parsed statement.

    Attributes:
        count: True for ``SELECT COUNT(*)``.
        columns: Selected column names (empty for ``*`` or a count).
        where: The condition as a Domo where expression (whose operands may also be
            `ConstantCondition`s), or None.
        limit: The LIMIT, or None.
    """

    count: bool
    columns: tuple[str, ...]
    where: dict[str, Any] | ConstantCondition | None
    limit: int | None


def tokenize(sql: str, quotes: str = LENIENT_QUOTES) -> list[Token]:
    """Split `sql` into tokens under a quote mode (``lenient`` or ``mysql``).

    Raises:
        QueryError: On a character that starts no token (an unterminated string, say).
    """
    pattern = TOKEN_PATTERNS[quotes]
    tokens, position, end = [], 0, len(sql.rstrip())
    while position < end:
        match = pattern.match(sql, position)
        if match is None or match.lastgroup is None:
            raise QueryError(f"SQL syntax error at offset {position}: {sql[position:][:20]!r}")
        tokens.append(Token(match.lastgroup, match.group(match.lastgroup), match.start(0)))
        position = match.end()
    return tokens


def parse_sql(sql: str, quotes: str = LENIENT_QUOTES) -> SqlQuery:
    """Parse a statement of the dialect above under a quote mode.

    Raises:
        QueryError: If `sql` is not in the dialect.
    """
    return _Parser(tokenize(sql, quotes)).statement()


class _Parser:
    """Recursive-descent parser over a token list."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._index = 0

    def statement(self) -> SqlQuery:
        self._keyword("SELECT")
        count, columns = self._select_list()
        self._keyword("FROM")
        self._table()
        where = self._condition() if self._accept_keyword("WHERE") else None
        limit = self._limit() if self._accept_keyword("LIMIT") else None
        self._accept_symbol(";")
        if self._peek() is not None:
            self._fail("unexpected input")
        return SqlQuery(count=count, columns=tuple(columns), where=where, limit=limit)

    def _select_list(self) -> tuple[bool, list[str]]:
        if self._accept_keyword("COUNT"):
            for symbol in "(*)":
                self._symbol(symbol)
            return True, []
        if self._accept_symbol("*"):
            return False, []
        columns = [self._identifier()]
        while self._accept_symbol(","):
            columns.append(self._identifier())
        return False, columns

    def _table(self) -> None:
        token = self._next("a table name")
        name = _unquote(token) if token.kind in ("quoted", "word") else None
        if name is None or name.lower() != TABLE_NAME:
            raise QueryError(f"Unknown table {token.text!r}: the table is always called 'table'")

    def _limit(self) -> int:
        token = self._next("a number")
        if token.kind != "number" or not token.text.isdigit():
            self._fail("LIMIT needs a non-negative integer", token)
        return int(token.text)

    def _condition(self) -> Any:
        return self._chain("OR", self._term)

    def _term(self) -> Any:
        return self._chain("AND", self._factor)

    def _chain(self, keyword: str, operand: Any) -> Any:
        expressions = [operand()]
        while self._accept_keyword(keyword):
            expressions.append(operand())
        if len(expressions) == 1:
            return expressions[0]
        return {"exprType": keyword, "expressions": expressions}

    def _factor(self) -> dict[str, Any] | ConstantCondition:
        if self._accept_symbol("("):
            condition = self._condition()
            self._symbol(")")
            return condition
        peeked = self._peek()
        if peeked is not None and peeked.kind in LITERAL_KINDS:
            return _constant(self._predicate(self._literal()))
        return self._predicate({"column": self._identifier(), "exprType": "COLUMN"})

    def _predicate(self, left: dict[str, Any]) -> dict[str, Any]:
        """Parse what follows the left operand: ``[NOT] IN (...)`` or ``op literal``."""
        negated = self._accept_keyword("NOT")
        if negated or self._accept_keyword("IN"):
            if negated:
                self._keyword("IN")
            return {
                "exprType": "NOT_IN" if negated else "IN",
                "leftExpr": left,
                "rightExpr": {"values": self._literal_list()},
            }
        token = self._next("a comparison operator")
        if token.kind != "symbol" or token.text not in OPERATORS:
            self._fail("expected a comparison operator", token)
        return {"exprType": OPERATORS[token.text], "leftExpr": left, "rightExpr": self._literal()}

    def _literal_list(self) -> list[dict[str, Any]]:
        self._symbol("(")
        values = [self._literal()]
        while self._accept_symbol(","):
            values.append(self._literal())
        self._symbol(")")
        return values

    def _literal(self) -> dict[str, Any]:
        token = self._next("a literal")
        if token.kind == "string":
            return {"value": _decode_string(token.text), "exprType": "STRING_VALUE"}
        if token.kind == "number":
            return {"value": token.text, "exprType": "NUMERIC_VALUE"}
        return self._fail("expected a 'string' or a number", token)

    def _identifier(self) -> str:
        token = self._next("a column name")
        if token.kind == "quoted" or (token.kind == "word" and token.text.upper() not in KEYWORDS):
            return _unquote(token)
        if token.kind == "string" and token.text.startswith('"'):
            return self._fail(f"expected a column name; {DOUBLE_QUOTE_HINT}", token)
        return self._fail("expected a column name", token)

    def _peek(self) -> Token | None:
        return self._tokens[self._index] if self._index < len(self._tokens) else None

    def _next(self, expected: str) -> Token:
        token = self._peek()
        if token is None:
            raise QueryError(f"SQL syntax error: unexpected end of statement, expected {expected}")
        self._index += 1
        return token

    def _accept_keyword(self, keyword: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "word" and token.text.upper() == keyword:
            self._index += 1
            return True
        return False

    def _accept_symbol(self, symbol: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "symbol" and token.text == symbol:
            self._index += 1
            return True
        return False

    def _keyword(self, keyword: str) -> None:
        if not self._accept_keyword(keyword):
            self._fail(f"expected {keyword}")

    def _symbol(self, symbol: str) -> None:
        if not self._accept_symbol(symbol):
            self._fail(f"expected '{symbol}'")

    def _fail(self, problem: str, token: Token | None = None) -> Any:
        token = token or self._peek()
        where = f"at offset {token.offset} ({token.text!r})" if token else "at end of statement"
        raise QueryError(f"SQL syntax error {where}: {problem}")


def _decode_string(text: str) -> str:
    """Return the value of a quoted string literal (MySQL escapes and doubled quotes)."""
    quote = text[0]

    def replace(match: re.Match[str]) -> str:
        escaped = match[1]
        return quote if escaped is None else MYSQL_ESCAPES.get(escaped, escaped)

    return ESCAPE_PATTERNS[quote].sub(replace, text[1:-1])


def _unquote(token: Token) -> str:
    """Return the column name of a word or a quoted name (a doubled quote is one quote)."""
    if token.kind != "quoted":
        return token.text
    quote = token.text[0]
    return token.text[1:-1].replace(quote * 2, quote)


def _constant(condition: dict[str, Any]) -> ConstantCondition:
    """Evaluate a condition whose left side is a literal, once, MySQL-style."""
    kind, left = condition["exprType"], _literal_value(condition["leftExpr"])
    if kind in MEMBERSHIP:
        items = condition["rightExpr"]["values"]
        found = any(_compare("EQUALS", left, _literal_value(item)) for item in items)
        return ConstantCondition(found == MEMBERSHIP[kind])
    return ConstantCondition(_compare(kind, left, _literal_value(condition["rightExpr"])))


def _literal_value(literal: dict[str, Any]) -> str | Decimal:
    value = literal["value"]
    return Decimal(value) if literal["exprType"] == "NUMERIC_VALUE" else value


def _compare(kind: str, left: str | Decimal, right: str | Decimal) -> bool:
    """Compare two literals as MySQL does: strings as strings, otherwise as numbers."""
    if isinstance(left, str) and isinstance(right, str):
        return COMPARISONS[kind](left, right)
    return COMPARISONS[kind](_number(left), _number(right))


def _number(value: str | Decimal) -> Decimal:
    """Return a literal as a number: a string by its leading numeric prefix (none: 0)."""
    if isinstance(value, Decimal):
        return value
    prefix = NUMERIC_PREFIX.match(value)
    return Decimal(prefix[0].strip()) if prefix else Decimal(0)


class _SqlWhereCompiler(WhereCompiler):
    """Compiles the where expressions of SQL statements, constant conditions included."""

    def compile(self, expr: Any) -> Predicate:
        """Return the predicate of `expr`; a `ConstantCondition` keeps every row or none."""
        if isinstance(expr, ConstantCondition):
            return always if expr.value else never
        return super().compile(expr)


@dataclass(frozen=True)
class SqlResult:
    """The result of a statement: column names, their Domo types and the rows."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[Row]


def execute_sql(
    spec: DatasetSpec, rows: Sequence[Row], sql: str, user: str, quotes: str = LENIENT_QUOTES
) -> SqlResult:
    """Run `sql` over `rows` of the DataSet `spec` as `user` sees them (PDP applied).

    Args:
        spec: The DataSet.
        rows: Its rows.
        sql: The statement.
        user: The user name whose PDP policies apply.
        quotes: Quote mode: ``lenient`` or ``mysql`` (see the module docstring).

    Raises:
        QueryError: If the statement is not in the dialect or names unknown columns.
    """
    parsed = parse_sql(sql, quotes)
    query = build_query(spec, parsed.columns, limit=parsed.limit)
    query = dataclasses.replace(
        query, predicate=_SqlWhereCompiler(spec.columns).compile(parsed.where)
    )
    visible = pdp_filter(spec, user)
    if parsed.count:
        return SqlResult((COUNT_COLUMN,), (ColumnType.LONG,), [(query.count(rows, visible),)])
    types = tuple(spec.columns[position].type for position in query.columns)
    return SqlResult(query.names, types, query.run(rows, visible))
