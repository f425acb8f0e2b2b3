"""Translate a CRM search request (filter groups, one sort) into SQL over the objects table."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from sandbox.errors import bad_request
from sandbox.schema import PropertyDef
from sandbox.values import InvalidValue, instant_ms_or_none, parse_instant_ms

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
MAX_LIMIT = 200
MAX_RESULTS = 10_000
OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)
_TOKEN_SPLIT = re.compile(r"[^\w@.*-]+")


def _tokens(text: str | None) -> list[str]:
    return [t for t in _TOKEN_SPLIT.split((text or "").lower()) if t]


def _contains_token(text: str | None, token: str | None) -> int:
    """1 when a token of `text` matches `token` (with `*` as a wildcard), else 0."""
    if text is None or not token:
        return 0
    pattern = re.compile("^" + ".*".join(re.escape(p) for p in token.lower().split("*")) + "$")
    return int(any(pattern.match(t) for t in _tokens(text)))


def _has_option(text: str | None, options_json: str) -> int:
    """1 when the `;`-joined `text` holds any of the JSON-listed options (case-insensitive)."""
    if not text:
        return 0
    held = {part.lower() for part in text.split(";")}
    return int(any(str(o).lower() in held for o in json.loads(options_json)))


def _query_match(props_json: str, query: str) -> int:
    """1 when every word of a free-text query prefixes some word of the record's values."""
    words = set()
    for value in json.loads(props_json).values():
        words.update(_tokens(value))
    return int(all(any(w.startswith(q) for w in words) for q in _tokens(query)))


def register_functions(dbapi_conn: sqlite3.Connection) -> None:
    """Make the helper functions above callable from SQL."""
    dbapi_conn.create_function("hs_ms", 1, instant_ms_or_none, deterministic=True)
    dbapi_conn.create_function("hs_contains_token", 2, _contains_token, deterministic=True)
    dbapi_conn.create_function("hs_has_option", 2, _has_option, deterministic=True)
    dbapi_conn.create_function("hs_query", 2, _query_match, deterministic=True)


class SearchCompiler:
    """Builds WHERE and ORDER BY clauses for one object type's properties."""

    def __init__(self, objects: sa.Table, props: Mapping[str, PropertyDef]) -> None:
        self.objects = objects
        self.props = props

    def _prop(self, name: Any) -> PropertyDef:
        if not isinstance(name, str) or name not in self.props:
            raise bad_request(
                f"There was a problem with the request: Property {name!r} does not exist.",
                propertyName=name,
            )
        return self.props[name]

    def _column(self, prop: PropertyDef) -> ColumnElement:
        """The typed SQL expression of a property, comparable to parsed filter values."""
        c = self.objects.c
        if prop.name == "hs_object_id":
            return c.id
        if prop.name == "hs_lastmodifieddate":
            return c.updated_ms
        if prop.name == "createdate":
            return c.created_ms
        raw = sa.func.json_extract(c.props, f'$."{prop.name}"')
        if prop.type == "number":
            return sa.cast(raw, sa.Float)
        if prop.type in ("date", "datetime"):
            return sa.func.hs_ms(raw)
        return raw

    def _raw(self, prop: PropertyDef) -> ColumnElement:
        if prop.name in ("hs_object_id", "hs_lastmodifieddate", "createdate"):
            return self._column(prop)
        return sa.func.json_extract(self.objects.c.props, f'$."{prop.name}"')

    @staticmethod
    def _value(prop: PropertyDef, value: Any) -> Any:
        if value is None:
            raise bad_request(
                f"A filter on {prop.name} is missing its value.", propertyName=prop.name
            )
        try:
            if prop.type == "number" or prop.name == "hs_object_id":
                return float(str(value).strip())
            if prop.type in ("date", "datetime"):
                return parse_instant_ms(value)
        except (ValueError, InvalidValue) as exc:
            raise bad_request(
                f"{value!r} is not a valid value for {prop.name} ({prop.type}).",
                propertyName=prop.name,
            ) from exc
        return str(value).lower() if prop.type == "bool" else str(value)

    def _is_text(self, prop: PropertyDef) -> bool:
        return prop.type not in ("number", "date", "datetime") and prop.name != "hs_object_id"

    def filter_clause(self, spec: Mapping[str, Any]) -> ColumnElement:
        """One filter as a SQL condition."""
        if not isinstance(spec, Mapping):
            raise bad_request("Each filter must be an object.")
        prop = self._prop(spec.get("propertyName"))
        operator = spec.get("operator", "EQ")
        if operator not in OPERATORS:
            raise bad_request(
                f"Unknown filter operator {operator!r}; use one of {', '.join(sorted(OPERATORS))}.",
                operator=operator,
            )
        raw = self._raw(prop)
        if operator == "HAS_PROPERTY":
            return sa.and_(raw.is_not(None), raw != "")
        if operator == "NOT_HAS_PROPERTY":
            return sa.or_(raw.is_(None), raw == "")
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            matched = sa.func.hs_contains_token(raw, str(spec.get("value", ""))) == 1
            return matched if operator == "CONTAINS_TOKEN" else sa.not_(matched)
        column = self._column(prop)
        text = self._is_text(prop)
        if operator in ("IN", "NOT_IN"):
            values = spec.get("values")
            if not isinstance(values, list) or not values:
                raise bad_request(f"{operator} on {prop.name} needs a non-empty `values` list.")
            if prop.multi:
                hit = sa.func.hs_has_option(raw, json.dumps([str(v) for v in values])) == 1
            elif text:
                hit = sa.func.lower(column).in_([str(v).lower() for v in values])
            else:
                hit = column.in_([self._value(prop, v) for v in values])
            return hit if operator == "IN" else sa.or_(raw.is_(None), sa.not_(hit))
        value = self._value(prop, spec.get("value"))
        if operator == "BETWEEN":
            high = self._value(prop, spec.get("highValue"))
            return column.between(value, high)
        if prop.multi and operator in ("EQ", "NEQ"):
            hit = sa.func.hs_has_option(raw, json.dumps([value])) == 1
            return hit if operator == "EQ" else sa.or_(raw.is_(None), sa.not_(hit))
        if text and operator in ("EQ", "NEQ"):
            column, value = sa.func.lower(column), value.lower()
        comparisons = {
            "EQ": column == value,
            "NEQ": sa.or_(raw.is_(None), column != value),
            "LT": column < value,
            "LTE": column <= value,
            "GT": column > value,
            "GTE": column >= value,
        }
        return comparisons[operator]

    def where(self, groups: Any) -> ColumnElement | None:
        """Filter groups OR-ed, filters inside a group AND-ed, with HubSpot's limits."""
        if not groups:
            return None
        if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
            raise bad_request(f"A search may have at most {MAX_GROUPS} filterGroups.")
        total = 0
        clauses = []
        for group in groups:
            filters = group.get("filters", []) if isinstance(group, Mapping) else None
            if not isinstance(filters, list):
                raise bad_request("Each filterGroup needs a `filters` list.")
            if len(filters) > MAX_FILTERS_PER_GROUP:
                raise bad_request(
                    f"A filterGroup may have at most {MAX_FILTERS_PER_GROUP} filters."
                )
            total += len(filters)
            clauses.append(sa.and_(sa.true(), *(self.filter_clause(f) for f in filters)))
        if total > MAX_FILTERS:
            raise bad_request(f"A search may have at most {MAX_FILTERS} filters in all.")
        return sa.or_(*clauses)

    def order_by(self, sorts: Any) -> list[ColumnElement]:
        """ORDER BY for at most one sort rule, ties broken by id."""
        if not sorts:
            return [self.objects.c.id]
        if not isinstance(sorts, list) or len(sorts) > 1:
            raise bad_request("A search accepts at most one sort rule.")
        (rule,) = sorts
        if isinstance(rule, str):
            name, descending = rule.lstrip("-"), rule.startswith("-")
        elif isinstance(rule, Mapping):
            name = rule.get("propertyName")
            descending = str(rule.get("direction", "ASCENDING")).upper() == "DESCENDING"
        else:
            raise bad_request("A sort rule is a property name or {propertyName, direction}.")
        column = self._column(self._prop(name))
        if self._is_text(self._prop(name)):
            column = sa.func.lower(column)
        primary = column.desc() if descending else column.asc()
        return [primary, self.objects.c.id]
