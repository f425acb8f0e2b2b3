"""Custom fields as an admin (or `dealsync init`) creates them through the Tooling API:
`POST tooling/sobjects/CustomField` with `{"FullName": "Opportunity.x__c", "Metadata": {...}}`."""

from __future__ import annotations

import re
from typing import Any

from sandbox.salesforce.records import SalesforceError
from sandbox.salesforce.schema import Field

# Metadata API field types and the `describe` type, default length of each.
FIELD_TYPES: dict[str, tuple[str, int]] = {
    "Text": ("string", 255),
    "TextArea": ("textarea", 255),
    "LongTextArea": ("textarea", 32768),
    "Email": ("email", 80),
    "Checkbox": ("boolean", 0),
    "Number": ("double", 0),
    "Currency": ("currency", 0),
    "Date": ("date", 0),
    "DateTime": ("datetime", 0),
    "Picklist": ("picklist", 255),
    "MultiselectPicklist": ("multipicklist", 4099),
}
_NAME = re.compile(r"^(?P<sobject>[A-Za-z][A-Za-z0-9_]*)\.(?P<field>[A-Za-z][A-Za-z0-9_]*__c)$")


def _invalid(message: str, fields: list[str] | None = None) -> SalesforceError:
    return SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION", message, fields or [])


def _picklist(metadata: dict[str, Any]) -> tuple[str, ...]:
    definition = (metadata.get("valueSet") or {}).get("valueSetDefinition") or {}
    values = tuple(str(v.get("fullName") or "") for v in definition.get("value") or [])
    if not values or not all(values):
        raise _invalid("Picklist fields need at least one value (valueSet.valueSetDefinition)")
    return values


def custom_field(body: dict[str, Any]) -> tuple[str, Field]:
    """The sObject a CustomField body adds to, and the field as `describe` will tell it."""
    match = _NAME.match(str(body.get("FullName") or ""))
    if match is None:
        raise _invalid(
            "FullName must be Object.Name__c (a custom field's API name ends in __c)", ["FullName"]
        )
    metadata = body.get("Metadata")
    if not isinstance(metadata, dict) or not metadata.get("label"):
        raise SalesforceError(
            400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Label]", ["Label"]
        )
    kind = str(metadata.get("type") or "")
    if kind not in FIELD_TYPES:
        raise _invalid(f"Unsupported field type: {kind!r}", ["Type"])
    described, default_length = FIELD_TYPES[kind]
    length = int(metadata.get("length") or default_length)
    if kind in ("Text", "LongTextArea") and "length" not in metadata:
        raise SalesforceError(
            400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Length]", ["Length"]
        )
    unique = bool(metadata.get("unique", False))
    if unique and kind not in ("Text", "Number", "Email"):
        raise _invalid(f"A {kind} field cannot be unique", ["Unique"])
    picklist = _picklist(metadata) if "Picklist" in kind else ()
    return match.group("sobject"), Field(
        match.group("field"),
        described,
        length,
        nillable=kind != "Checkbox",
        external_id=bool(metadata.get("externalId", False)),
        unique=unique,
        picklist=picklist,
        custom=True,
    )
