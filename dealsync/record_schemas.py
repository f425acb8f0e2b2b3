"""The pandera schemas a mapping implies: raw records per CRM kind, and canonical deals."""

from __future__ import annotations

from functools import partial

import pandera.pandas as pa

from dealsync.mapping import DealMapping, MappingBase
from dealsync.model import FieldType, Side, canonical
from validation.schemas import (
    CanonicalColumn,
    RawColumn,
    canonical_records,
    raw_bottlecrm_records,
    raw_hubspot_records,
    raw_salesforce_records,
)

HUBSPOT_MODIFIED = RawColumn(
    "hs_lastmodifieddate", "datetime", partial(canonical, FieldType.DATETIME)
)


def raw_columns(mapping: MappingBase, side: Side) -> list[RawColumn]:
    """Every property the mapping reads on a side; typed ones must parse as their type."""
    types = {rule.prop(side): rule.type for rule in mapping.synced_fields() if rule.prop(side)}
    columns = []
    for prop in mapping.properties(side):
        kind = types.get(prop)
        if kind is None or kind is FieldType.STRING:
            columns.append(RawColumn(prop))
        else:
            columns.append(RawColumn(prop, kind.value, partial(canonical, kind)))
    return columns


def raw_schema(
    crm_kind: str, mapping: MappingBase, side: Side, object_type: str
) -> pa.DataFrameSchema:
    """The schema of raw records of `object_type` as a CRM of this kind returns them."""
    label = f"{object_type} ({side})"
    if crm_kind == "hubspot":
        return raw_hubspot_records(raw_columns(mapping, side), label, HUBSPOT_MODIFIED)
    if crm_kind == "salesforce":
        return raw_salesforce_records(raw_columns(mapping, side), label)
    return raw_bottlecrm_records(raw_columns(mapping, side), label)


def canonical_deals(mapping: DealMapping) -> pa.DataFrameSchema:
    """Canonical deals: dates as YYYY-MM-DD; names required where they create a twin."""
    return canonical_records(
        [
            CanonicalColumn(
                rule.name,
                rule.type is FieldType.DATE,
                " / ".join(sorted({rule.partner or "", rule.vendor or ""} - {""}))
                if rule.required_on_create
                else None,
            )
            for rule in mapping.synced_fields()
        ],
        "deals",
        "deal",
    )
