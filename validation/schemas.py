"""pandera schemas: raw HubSpot deals (per connector) and canonical deals (per mapping)."""

from __future__ import annotations

import re

import pandas as pd
import pandera.pandas as pa

from dealsync.mapping import DealMapping, MappingBase
from dealsync.model import BadValue, FieldType, Side, canonical

_ID = re.compile(r"^\d+$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parses(field_type: FieldType):
    """An element-wise check: the value is empty or readable as `field_type`."""

    def check(value: object) -> bool:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return True
        try:
            canonical(field_type, value)
        except BadValue:
            return False
        return True

    return pa.Check(check, element_wise=True, error=f"not a valid {field_type.value}")


def _property_columns(mapping: MappingBase, side: Side) -> dict[str, pa.Column]:
    """Every property the mapping reads on a side must be a column; typed ones must parse."""
    types = {rule.prop(side): rule.type for rule in mapping.synced_fields() if rule.prop(side)}
    columns = {}
    for prop in mapping.properties(side):
        field_type = types.get(prop)
        checks = [_parses(field_type)] if field_type and field_type is not FieldType.STRING else []
        columns[prop] = pa.Column(None, checks, nullable=True, required=True)
    return columns


def raw_hubspot_records(
    mapping: MappingBase, side: Side, object_type: str = "deals"
) -> pa.DataFrameSchema:
    """Raw records as HubSpot returns them: a numeric id, a modification time, the mapped properties."""
    columns: dict[str, pa.Column] = {
        "id": pa.Column(
            str, pa.Check.str_matches(_ID.pattern, error="id must be numeric"), unique=True
        ),
        "hs_lastmodifieddate": pa.Column(str, _parses(FieldType.DATETIME), nullable=False),
        **_property_columns(mapping, side),
    }
    return pa.DataFrameSchema(
        columns, name=f"raw hubspot {object_type} ({side})", strict=False, coerce=False
    )


def raw_bottlecrm_records(
    mapping: MappingBase, side: Side, object_type: str = "deals"
) -> pa.DataFrameSchema:
    """Raw BottleCRM opportunities as the connector flattens them: an id and the mapped properties."""
    columns: dict[str, pa.Column] = {
        "id": pa.Column(str, pa.Check.str_length(min_value=1), unique=True),
        **_property_columns(mapping, side),
    }
    return pa.DataFrameSchema(
        columns, name=f"raw bottlecrm {object_type} ({side})", strict=False, coerce=False
    )


RAW_SCHEMAS = {"hubspot": raw_hubspot_records, "bottlecrm": raw_bottlecrm_records}


def canonical_deals(mapping: DealMapping) -> pa.DataFrameSchema:
    """Canonical deals: each synced field in its type's canonical form; names required where they create."""
    columns: dict[str, pa.Column] = {
        "record_id": pa.Column(str, unique=True),
        "creates_twin": pa.Column(bool),
    }
    for rule in mapping.synced_fields():
        checks = []
        if rule.type is FieldType.DATE:
            checks.append(
                pa.Check(
                    lambda v: v is None or bool(_ISO_DATE.match(v)),
                    element_wise=True,
                    error="date must be YYYY-MM-DD",
                )
            )
        columns[rule.name] = pa.Column(None, checks, nullable=True)
    required = [r for r in mapping.synced_fields() if r.required_on_create]
    wide = [
        pa.Check(
            lambda df, name=rule.name: ~df["creates_twin"] | df[name].notna(),
            error=f"{rule.name} is empty ({' / '.join(sorted({rule.partner or '', rule.vendor or ''} - {''}))}): "
            "it is required to create the twin deal",
        )
        for rule in required
    ]
    return pa.DataFrameSchema(columns, checks=wide, name="canonical deals", strict=False)
