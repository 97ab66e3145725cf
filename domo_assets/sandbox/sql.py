"""The tiny SQL dialect of the query endpoints, translated to Domo where expressions.

Grammar (keywords case-insensitive, the table is always called ``table``)::

    SELECT (COUNT(*) | * | column [, column]...) FROM table [WHERE condition] [LIMIT n] [;]
    condition := term [OR term]...      term := factor [AND factor]...
    factor    := ( condition ) | column op literal | column [NOT] IN ( literal [, literal]... )
    op        := = | != | <> | < | <= | > | >=
    column    := "Quoted Name" | `Quoted Name` | bare_identifier
    literal   := 'string' ('' escapes a quote) | number
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .datasets import ColumnType, DatasetSpec, Row
from .query import QueryError, build_query, pdp_filter

TABLE_NAME = "table"
COUNT_COLUMN = "COUNT(*)"
TOKEN_PATTERN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<quoted>"(?:[^"]|"")*"|`[^`]*`)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<symbol><=|>=|<>|!=|=|<|>|\(|\)|,|\*|;)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
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


@dataclass(frozen=True)
class Token:
    """A lexical token: kind (a `TOKEN_PATTERN` group name), text and offset."""

    kind: str
    text: str
    offset: int


@dataclass(frozen=True)
class SqlQuery:
    """A parsed statement.

    Attributes:
        count: True for ``SELECT COUNT(*)``.
        columns: Selected column names (empty for ``*`` or a count).
        where: The condition as a Domo where expression, or None.
        limit: The LIMIT, or None.
    """

    count: bool
    columns: tuple[str, ...]
    where: dict[str, Any] | None
    limit: int | None


def tokenize(sql: str) -> list[Token]:
    """Split `sql` into tokens.

    Raises:
        QueryError: On a character that starts no token.
    """
    tokens, position, end = [], 0, len(sql.rstrip())
    while position < end:
        match = TOKEN_PATTERN.match(sql, position)
        if match is None or match.lastgroup is None:
            raise QueryError(f"SQL syntax error at offset {position}: {sql[position:][:20]!r}")
        tokens.append(Token(match.lastgroup, match.group(match.lastgroup), match.start(0)))
        position = match.end()
    return tokens


def parse_sql(sql: str) -> SqlQuery:
    """Parse a statement of the dialect above.

    Raises:
        QueryError: If `sql` is not in the dialect.
    """
    return _Parser(tokenize(sql)).statement()


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

    def _condition(self) -> dict[str, Any]:
        return self._chain("OR", self._term)

    def _term(self) -> dict[str, Any]:
        return self._chain("AND", self._factor)

    def _chain(self, keyword: str, operand: Any) -> dict[str, Any]:
        expressions = [operand()]
        while self._accept_keyword(keyword):
            expressions.append(operand())
        if len(expressions) == 1:
            return expressions[0]
        return {"exprType": keyword, "expressions": expressions}

    def _factor(self) -> dict[str, Any]:
        if self._accept_symbol("("):
            condition = self._condition()
            self._symbol(")")
            return condition
        column = {"column": self._identifier(), "exprType": "COLUMN"}
        negated = self._accept_keyword("NOT")
        if negated or self._accept_keyword("IN"):
            if negated:
                self._keyword("IN")
            return {
                "exprType": "NOT_IN" if negated else "IN",
                "leftExpr": column,
                "rightExpr": {"values": self._literal_list()},
            }
        token = self._next("a comparison operator")
        if token.text not in OPERATORS:
            self._fail("expected a comparison operator", token)
        return {"exprType": OPERATORS[token.text], "leftExpr": column, "rightExpr": self._literal()}

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
            return {"value": token.text[1:-1].replace("''", "'"), "exprType": "STRING_VALUE"}
        if token.kind == "number":
            return {"value": token.text, "exprType": "NUMERIC_VALUE"}
        return self._fail("expected a 'string' or a number", token)

    def _identifier(self) -> str:
        token = self._next("a column name")
        if token.kind == "quoted" or (token.kind == "word" and token.text.upper() not in KEYWORDS):
            return _unquote(token)
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


def _unquote(token: Token) -> str:
    if token.kind != "quoted":
        return token.text
    inner = token.text[1:-1]
    return inner.replace('""', '"') if token.text[0] == '"' else inner


@dataclass(frozen=True)
class SqlResult:
    """The result of a statement: column names, their Domo types and the rows."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[Row]


def execute_sql(spec: DatasetSpec, rows: Sequence[Row], sql: str, user: str) -> SqlResult:
    """Run `sql` over `rows` of the DataSet `spec` as `user` sees them (PDP applied).

    Raises:
        QueryError: If the statement is not in the dialect or names unknown columns.
    """
    parsed = parse_sql(sql)
    query = build_query(spec, parsed.columns, where=parsed.where, limit=parsed.limit)
    visible = pdp_filter(spec, user)
    if parsed.count:
        return SqlResult((COUNT_COLUMN,), (ColumnType.LONG,), [(query.count(rows, visible),)])
    types = tuple(spec.columns[position].type for position in query.columns)
    return SqlResult(query.names, types, query.run(rows, visible))
