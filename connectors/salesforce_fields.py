"""The custom fields a mapping needs in a Salesforce org: created through the Tooling API, and made
visible to the connection's user by a permission set (a field created through the API is hidden
from every user until one grants it), checked against `describe`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from connectors.base import PropertySpec
from connectors.errors import ConnectorError, RecordRejected
from connectors.paging import chunks
from connectors.salesforce_content import NOTE_PROPERTIES
from connectors.salesforce_http import SalesforceHttp

PERMISSION_SET = "dealsync"  # granted the mapping's fields, assigned to the connection's user
GRANTS_AT_ONCE = 200  # FieldPermissions in one collection call
Query = Callable[[str], Iterator[list[dict[str, Any]]]]
Described = Mapping[str, Mapping[str, Any]]  # describe's fields by lower-case name
# PropertySpec types as the Tooling API's CustomField metadata, and as `describe` then tells them.
FIELD_TYPES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "string": ("Text", "string", {"length": 255}),
    "textarea": ("LongTextArea", "textarea", {"length": 32768, "visibleLines": 3}),
    "number": ("Number", "double", {"precision": 18, "scale": 2}),
    "date": ("Date", "date", {}),
    "datetime": ("DateTime", "datetime", {}),
    "bool": ("Checkbox", "boolean", {"defaultValue": "false"}),
    "enumeration": ("Picklist", "picklist", {}),
    "checkbox": ("MultiselectPicklist", "multipicklist", {"visibleLines": 4}),
}


def wanted_type(spec: PropertySpec) -> tuple[str, str, dict[str, Any]]:
    """A spec's field: (Metadata API type, `describe` type, the metadata it needs)."""
    if spec.type == "enumeration":
        return FIELD_TYPES["checkbox" if spec.field_type == "checkbox" else "enumeration"]
    if spec.type == "string" and spec.field_type == "textarea":
        return FIELD_TYPES["textarea"]
    return FIELD_TYPES[spec.type]


def no_note_field(connection: str, name: str) -> str:
    """Why a note cannot have a property."""
    return (
        f"{connection}: a Salesforce note has no property {name}: ContentNote takes no custom "
        f"fields; a mapping can use {', '.join(NOTE_PROPERTIES)} "
        "(see mappings/salesforce_shared_notes.yaml)."
    )


class SalesforceFields:
    """Custom fields of an org's sObjects, as one connection sees them."""

    def __init__(self, http: SalesforceHttp, query: Query) -> None:
        self.http, self.query = http, query

    def _mismatch(self, sobject: str, spec: PropertySpec, current: Mapping[str, Any]) -> str | None:
        _, described, _ = wanted_type(spec)
        if current.get("type") == described and bool(current.get("unique")) == spec.unique:
            return None
        return (
            f"{self.http.connection}: field {sobject}.{current.get('name')} exists as type "
            f"{current.get('type')} (unique={bool(current.get('unique'))}) but the mapping needs "
            f"a {spec.type} ({described} in Salesforce, unique={spec.unique}); rename one of them "
            "or change it in Setup."
        )

    def problems(
        self, sobject: str, existing: Described, specs: Sequence[PropertySpec], used: Sequence[str]
    ) -> list[str]:
        """What stops a sync, one sentence each (read-only)."""
        found = []
        for spec in specs:
            current = existing.get(spec.name.lower())
            if current is None:
                found.append(
                    f"{self.http.connection}: custom field {sobject}.{spec.name} ("
                    f"{wanted_type(spec)[1]}{', unique external id' if spec.unique else ''}) is "
                    "missing, or hidden from the dealsync user: run `dealsync init`."
                )
            elif mismatch := self._mismatch(sobject, spec, current):
                found.append(mismatch)
            elif lacking := set(spec.options if spec.type == "enumeration" else ()) - {
                v.get("value") for v in current.get("picklistValues") or []
            }:
                found.append(
                    f"{self.http.connection}: field {sobject}.{spec.name} lacks the picklist "
                    f"values {', '.join(sorted(lacking))}: add them in Setup > Object Manager."
                )
        named = {spec.name.lower() for spec in specs}
        for name in dict.fromkeys(used):
            if name.lower() not in existing and name.lower() not in named:
                found.append(
                    f"{self.http.connection}: the mapping uses {sobject}.{name}, which this org does "
                    "not have (or the dealsync user cannot see): fix the field name in the mapping, "
                    "or create it (and give the user access to it) in Setup."
                )
        return found

    def ensure(self, sobject: str, existing: Described, specs: Sequence[PropertySpec]) -> list[str]:
        """Create the fields that are missing, then grant the user every one of them (a field the
        user cannot see yet exists already: it is granted, not created). The names created."""
        created = []
        for spec in specs:
            current = existing.get(spec.name.lower())
            if current is not None:
                if mismatch := self._mismatch(sobject, spec, current):
                    raise ConnectorError(mismatch)
                continue
            if not spec.name.endswith("__c"):
                raise ConnectorError(
                    f"{self.http.connection}: {spec.name} cannot be created: a Salesforce custom "
                    "field's name ends in __c. Fix the name in the mapping's custom_properties."
                )
            if self._create(sobject, spec):
                created.append(spec.name)
        self.grant(sobject, [spec.name for spec in specs])
        return created

    def check_types(self, sobject: str, existing: Described, specs: Sequence[PropertySpec]) -> None:
        """Refuse a field that, now visible, turns out to be of another type."""
        for spec in specs:
            current = existing.get(spec.name.lower())
            if current is not None and (mismatch := self._mismatch(sobject, spec, current)):
                raise ConnectorError(mismatch)

    def _create(self, sobject: str, spec: PropertySpec) -> bool:
        """One custom field; False when it exists already (hidden from the user)."""
        field_type, _, extra = wanted_type(spec)
        metadata: dict[str, Any] = {"label": spec.label, "type": field_type, **extra}
        if spec.unique:
            metadata.update(externalId=True, unique=True, caseSensitive=True)
        if spec.type == "enumeration":
            metadata["valueSet"] = {
                "valueSetDefinition": {"value": [{"fullName": o, "label": o} for o in spec.options]}
            }
        try:
            self.http.request(
                "POST",
                "/tooling/sobjects/CustomField/",
                json={"FullName": f"{sobject}.{spec.name}", "Metadata": metadata},
            )
        except RecordRejected as exc:
            if "DUPLICATE_DEVELOPER_NAME" in str(exc):
                return False
            raise
        return True

    def grant(self, sobject: str, names: Sequence[str]) -> None:
        """Read and edit on the fields for the connection's user, through the permission set
        `dealsync` (made, extended and assigned as needed; idempotent)."""
        permission_set = self._permission_set()
        soql = f"SELECT Field FROM FieldPermissions WHERE ParentId = '{permission_set}'"
        granted = {str(row["Field"]).lower() for rows in self.query(soql) for row in rows}
        missing = [n for n in names if f"{sobject}.{n}".lower() not in granted]
        for part in chunks(missing, GRANTS_AT_ONCE):
            records = [
                {
                    "attributes": {"type": "FieldPermissions"},
                    "ParentId": permission_set,
                    "SobjectType": sobject,
                    "Field": f"{sobject}.{name}",
                    "PermissionsRead": True,
                    "PermissionsEdit": True,
                }
                for name in part
            ]
            body = {"allOrNone": False, "records": records}
            for name, result in zip(
                part,
                self.http.request("POST", "/composite/sobjects", json=body).json(),
                strict=True,
            ):
                if not result.get("success"):
                    errors = "; ".join(str(e.get("message")) for e in result.get("errors") or [])
                    raise ConnectorError(
                        f"{self.http.connection}: could not grant {sobject}.{name} to the "
                        f"permission set {PERMISSION_SET} ({errors}); grant it in Setup."
                    )
        self._assign(permission_set)

    def _permission_set(self) -> str:
        soql = f"SELECT Id FROM PermissionSet WHERE Name = '{PERMISSION_SET}'"
        for rows in self.query(soql):
            for row in rows:
                return str(row["Id"])
        made = self.http.request(
            "POST",
            "/sobjects/PermissionSet/",
            json={"Name": PERMISSION_SET, "Label": "dealsync: the fields it syncs"},
        ).json()
        return str(made["id"])

    def _assign(self, permission_set: str) -> None:
        user = self.http.user_id
        soql = (
            "SELECT Id FROM PermissionSetAssignment WHERE "
            f"PermissionSetId = '{permission_set}' AND AssigneeId = '{user}'"
        )
        if any(rows for rows in self.query(soql)):
            return
        self.http.request(
            "POST",
            "/sobjects/PermissionSetAssignment/",
            json={"PermissionSetId": permission_set, "AssigneeId": user},
        )
