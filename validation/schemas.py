"""pandera schemas: raw records per connector and canonical records, from plain column descriptions.

This layer knows nothing of mappings: the caller says which columns a frame must have and how each is
read (a parser that raises ValueError on a value it cannot read).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

_ID = re.compile(r"^\d+$")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class RawColumn:
    """A property a raw frame must have; `parse` (if any) must read every non-empty value."""

    name: str
    kind: str = "string"  # named in the error ("not a valid <kind>")
    parse: Callable[[object], object] | None = None


@dataclass(frozen=True)
class CanonicalColumn:
    """A canonical field; `required_by` names the properties that must fill it to create a twin."""

    name: str
    is_date: bool = False
    required_by: str | None = None


def _parses(kind: str, parse: Callable[[object], object]) -> pa.Check:
    """The value is empty or readable by `parse`; each distinct value is parsed once (dates, flags
    and option values repeat across records), and the verdicts are mapped back to every row."""

    def readable(value: object) -> bool:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return True
        try:
            parse(value)
        except ValueError:
            return False
        return True

    def check(column: pd.Series) -> pd.Series:
        try:
            distinct = column.dropna().unique()
        except TypeError:  # unhashable values: judge each row
            return column.map(readable).astype(bool)
        unreadable = [value for value in distinct if not readable(value)]
        return ~column.isin(unreadable) if unreadable else pd.Series(True, index=column.index)

    return pa.Check(check, error=f"not a valid {kind}")


def _columns(columns: Sequence[RawColumn]) -> dict[str, pa.Column]:
    return {
        c.name: pa.Column(
            None, [_parses(c.kind, c.parse)] if c.parse else [], nullable=True, required=True
        )
        for c in columns
    }


def raw_hubspot_records(
    columns: Sequence[RawColumn], label: str, modified: RawColumn
) -> pa.DataFrameSchema:
    """Raw records as HubSpot returns them: a numeric id, a modification time, the given properties."""
    schema_columns: dict[str, pa.Column] = {
        "id": pa.Column(
            str, pa.Check.str_matches(_ID.pattern, error="id must be numeric"), unique=True
        ),
        modified.name: pa.Column(
            str,
            [_parses(modified.kind, modified.parse)] if modified.parse else [],
            nullable=False,
        ),
        **_columns(columns),
    }
    return pa.DataFrameSchema(
        schema_columns, name=f"raw hubspot {label}", strict=False, coerce=False
    )


def raw_bottlecrm_records(columns: Sequence[RawColumn], label: str) -> pa.DataFrameSchema:
    """Raw BottleCRM records as the connector flattens them: an id and the given properties."""
    schema_columns: dict[str, pa.Column] = {
        "id": pa.Column(str, pa.Check.str_length(min_value=1), unique=True),
        **_columns(columns),
    }
    return pa.DataFrameSchema(
        schema_columns, name=f"raw bottlecrm {label}", strict=False, coerce=False
    )


def raw_salesforce_records(columns: Sequence[RawColumn], label: str) -> pa.DataFrameSchema:
    """Raw Salesforce records as the connector reads them: an 18-character id and the given fields."""
    schema_columns: dict[str, pa.Column] = {
        "id": pa.Column(
            str,
            pa.Check.str_matches(r"^[A-Za-z0-9]{18}$", error="id must be an 18-character id"),
            unique=True,
        ),
        **_columns(columns),
    }
    return pa.DataFrameSchema(
        schema_columns, name=f"raw salesforce {label}", strict=False, coerce=False
    )


def _iso_dates(values: pd.Series) -> pd.Series:
    """Each value empty or a YYYY-MM-DD date."""
    text = values.astype("string")
    return (text.isna() | text.str.fullmatch(_ISO_DATE.pattern)).fillna(False).astype(bool)


def canonical_records(
    columns: Sequence[CanonicalColumn], label: str, noun: str
) -> pa.DataFrameSchema:
    """Canonical records: dates as YYYY-MM-DD; required fields filled where the record creates a twin
    (a `noun`, as errors name it)."""
    schema_columns: dict[str, pa.Column] = {
        "record_id": pa.Column(str, unique=True),
        "creates_twin": pa.Column(bool),
    }
    for column in columns:
        checks = []
        if column.is_date:
            checks.append(pa.Check(_iso_dates, error="date must be YYYY-MM-DD"))
        schema_columns[column.name] = pa.Column(None, checks, nullable=True)
    wide = [
        pa.Check(
            lambda df, name=column.name: ~df["creates_twin"] | df[name].notna(),
            error=f"{column.name} is empty ({column.required_by}): it is required to create the twin {noun}",
        )
        for column in columns
        if column.required_by
    ]
    return pa.DataFrameSchema(schema_columns, checks=wide, name=f"canonical {label}", strict=False)
