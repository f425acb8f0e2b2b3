"""The SOQL the sandbox understands: what the connector and ordinary clients send.

    SELECT f1, f2 | COUNT() FROM T [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
        [LIMIT n] [OFFSET n]

Conditions: comparisons (= != <> < <= > >=), LIKE, IN / NOT IN (...), INCLUDES / EXCLUDES (...) on
multi-select picklists, AND / OR / NOT and parentheses; values: 'strings', numbers, true/false, null,
dates (2026-12-04) and datetimes (2026-12-04T21:40:00Z, +0000 offsets, milliseconds)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.salesforce.records import SalesforceError

Row = dict[str, Any]
Predicate = Callable[[Row], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:\\.|[^'\\])*')"
    r"|(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))"
    r"|(?P<date>\d{4}-\d{2}-\d{2})"
    r"|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<op><=|>=|!=|<>|=|<|>)"
    r"|(?P<punct>[(),])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


def _malformed(message: str) -> SalesforceError:
    return SalesforceError(400, "MALFORMED_QUERY", message)


def moment(text: str) -> datetime.datetime:
    """A Salesforce or SOQL datetime as an aware datetime."""
    text = text.replace("Z", "+00:00")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    return datetime.datetime.fromisoformat(text).astimezone(datetime.UTC)


@dataclass(frozen=True)
class Literal:
    """A value written in a query, typed."""

    kind: str  # string, number, boolean, null, date, datetime
    value: Any


def _tokens(text: str) -> list[tuple[str, str]]:
    found, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _malformed(f"unexpected token at '{text[position : position + 20]}'")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


@dataclass
class Query:
    """A parsed SELECT."""

    sobject: str
    fields: list[str]  # empty: COUNT()
    where: Predicate
    order: list[tuple[str, bool, bool]]  # field (lower case), descending, nulls last
    limit: int | None
    offset: int

    @property
    def counts(self) -> bool:
        """SELECT COUNT(): a size, no records."""
        return not self.fields


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self, *words: str) -> bool:
        if self.at >= len(self.tokens):
            return False
        kind, value = self.tokens[self.at]
        return not words or (kind == "word" and value.upper() in words) or value in words

    def take(self, *words: str) -> str:
        if not self.peek(*words):
            got = self.tokens[self.at][1] if self.at < len(self.tokens) else "the end"
            raise _malformed(f"expecting {' or '.join(words) or 'more'}, found {got}")
        self.at += 1
        return self.tokens[self.at - 1][1]

    def query(self) -> Query:
        self.take("SELECT")
        fields: list[str] = []
        if self.peek("COUNT"):
            self.take("COUNT"), self.take("("), self.take(")")
        else:
            fields.append(self.take())
            while self.peek(","):
                self.take(",")
                fields.append(self.take())
        self.take("FROM")
        sobject = self.take()
        where: Predicate = lambda _row: True  # noqa: E731
        if self.peek("WHERE"):
            self.take("WHERE")
            where = self.disjunction()
        order: list[tuple[str, bool, bool]] = []
        if self.peek("ORDER"):
            self.take("ORDER"), self.take("BY")
            while True:
                name = self.take().lower()
                descending = self.peek("DESC")
                if self.peek("ASC", "DESC"):
                    self.take("ASC", "DESC")
                nulls_last = descending
                if self.peek("NULLS"):
                    self.take("NULLS")
                    nulls_last = self.take("FIRST", "LAST").upper() == "LAST"
                order.append((name, descending, nulls_last))
                if not self.peek(","):
                    break
                self.take(",")
        limit, offset = None, 0
        if self.peek("LIMIT"):
            self.take("LIMIT")
            limit = int(self.take())
        if self.peek("OFFSET"):
            self.take("OFFSET")
            offset = int(self.take())
        if self.at != len(self.tokens):
            raise _malformed(f"unexpected token: {self.tokens[self.at][1]}")
        return Query(sobject, fields, where, order, limit, offset)

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek("OR"):
            self.take("OR")
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.peek("AND"):
            self.take("AND")
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def negation(self) -> Predicate:
        if self.peek("NOT"):
            self.take("NOT")
            inner = self.negation()
            return lambda row: not inner(row)
        if self.peek("("):
            self.take("(")
            inner = self.disjunction()
            self.take(")")
            return inner
        return self.comparison()

    def literal(self) -> Literal:
        kind, text = self.tokens[self.at] if self.at < len(self.tokens) else ("", "")
        self.at += 1
        if kind == "string":
            return Literal("string", re.sub(r"\\(.)", r"\1", text[1:-1]))
        if kind == "number":
            return Literal("number", float(text))
        if kind == "date":
            return Literal("date", datetime.date.fromisoformat(text))
        if kind == "datetime":
            return Literal("datetime", moment(text))
        if kind == "word" and text.upper() in ("TRUE", "FALSE"):
            return Literal("boolean", text.upper() == "TRUE")
        if kind == "word" and text.upper() == "NULL":
            return Literal("null", None)
        raise _malformed(f"expecting a value, found {text or 'the end'}")

    def values(self) -> list[Literal]:
        self.take("(")
        found = [self.literal()]
        while self.peek(","):
            self.take(",")
            found.append(self.literal())
        self.take(")")
        return found

    def comparison(self) -> Predicate:
        name = self.take().lower()  # rows are matched by lower-case names: SOQL ignores case
        if self.peek("NOT"):
            self.take("NOT")
            self.take("IN")
            excluded = self.values()
            return lambda row: not any(_equal(row.get(name), v) for v in excluded)
        if self.peek("IN"):
            self.take("IN")
            listed = self.values()
            return lambda row: any(_equal(row.get(name), v) for v in listed)
        if self.peek("INCLUDES", "EXCLUDES"):
            includes = self.take("INCLUDES", "EXCLUDES").upper() == "INCLUDES"
            wanted = [str(v.value) for v in self.values()]
            return lambda row: _picks(row.get(name), wanted) == includes
        if self.peek("LIKE"):
            self.take("LIKE")
            pattern = self.literal()
            regex = re.compile(
                "".join(
                    ".*" if c == "%" else "." if c == "_" else re.escape(c)
                    for c in str(pattern.value)
                ),
                re.IGNORECASE | re.DOTALL,
            )
            return lambda row: (
                row.get(name) is not None and bool(regex.fullmatch(str(row.get(name))))
            )
        op = self.take("=", "!=", "<>", "<", "<=", ">", ">=")
        value = self.literal()
        return lambda row: _compare(row.get(name), op, value)


def _typed(stored: Any, like: Literal) -> Any:
    """A stored value in the literal's type, for comparing (None when it cannot be)."""
    if stored is None:
        return None
    try:
        if like.kind == "datetime":
            return moment(str(stored))
        if like.kind == "date":
            return datetime.date.fromisoformat(str(stored)[:10])
        if like.kind == "number":
            return float(stored)
        if like.kind == "string":
            return str(stored)
    except ValueError:
        return None
    return stored


def _equal(stored: Any, literal: Literal) -> bool:
    if literal.kind == "null":
        return stored is None
    if literal.kind == "string" and stored is not None:
        return str(stored).lower() == str(literal.value).lower()  # SOQL compares case-insensitively
    return _typed(stored, literal) == literal.value


def _compare(stored: Any, op: str, literal: Literal) -> bool:
    if op == "=":
        return _equal(stored, literal)
    if op in ("!=", "<>"):
        return not _equal(stored, literal)
    value = _typed(stored, literal)
    if value is None or literal.value is None:
        return False
    if op == "<":
        return value < literal.value
    if op == "<=":
        return value <= literal.value
    if op == ">":
        return value > literal.value
    return value >= literal.value


def _picks(stored: Any, wanted: list[str]) -> bool:
    """Whether a multi-select value has any of `wanted` (each may be 'a;b': all of them)."""
    chosen = {v.lower() for v in str(stored or "").split(";") if v}
    return any({w.lower() for w in option.split(";")} <= chosen for option in wanted)


def parse(text: str) -> Query:
    """A SOQL SELECT parsed, or MALFORMED_QUERY."""
    if not text.strip():
        raise _malformed("empty query")
    return _Parser(text).query()


def run(query: Query, rows: list[Row]) -> list[Row]:
    """The rows (keyed by lower-case field names) a query selects, ordered, offset and limited."""
    chosen = [row for row in rows if query.where(row)]
    for name, descending, nulls_last in reversed(query.order):
        present = [r for r in chosen if r.get(name) is not None]
        missing = [r for r in chosen if r.get(name) is None]
        present.sort(key=lambda r: _sort_key(r.get(name)), reverse=descending)
        chosen = present + missing if nulls_last else missing + present
    chosen = chosen[query.offset :]
    return chosen if query.limit is None else chosen[: query.limit]


def _sort_key(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return (1, moment(value))
        except ValueError:
            return (2, value.lower())
    return (0, value)
