"""The Salesforce sandbox's records: ids, timestamps, field checks, deletes kept for the `deleted/`
feed, and Salesforce's error answers."""

from __future__ import annotations

import base64
import datetime
import itertools
from dataclasses import dataclass, field
from typing import Any

from sandbox.salesforce.schema import SOBJECTS, Field, SObject

ID_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class SalesforceError(Exception):
    """An answer Salesforce gives as `[{"message", "errorCode", "fields"}]` with a status."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or []

    def body(self) -> list[dict[str, Any]]:
        """The JSON body of the answer."""
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character id: the 15-character id and its case-safe suffix."""
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
        if not number:
            break
    return _long_id(f"{prefix}5g0{digits.rjust(9, '0')}")


def stamp(moment: datetime.datetime) -> str:
    """A datetime as Salesforce keeps it, to the second: 2026-12-04T21:40:00.000+0000."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _checked(sobject: SObject, name: str, value: Any) -> tuple[str, Any]:
    """A field's value as stored, or the error Salesforce answers for it."""
    spec = sobject.field(name)
    if spec is None:
        raise SalesforceError(
            400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject.name}"
        )
    if value is None:
        return spec.name, None
    if spec.type == "boolean" and not isinstance(value, bool):
        raise SalesforceError(
            400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from {value!r}"
        )
    if spec.type in ("currency", "percent", "double") and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise SalesforceError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of double from {value!r}"
            ) from None
    if spec.type == "base64":
        try:
            base64.b64decode(str(value), validate=True)
        except ValueError:
            raise SalesforceError(
                400, "JSON_PARSER_ERROR", f"{spec.name}: not valid base64"
            ) from None
    if spec.type == "date":
        try:
            datetime.date.fromisoformat(str(value))
        except ValueError:
            raise SalesforceError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of date from {value!r}"
            ) from None
    if spec.type in ("string", "textarea", "email", "picklist") and len(str(value)) > spec.length:
        raise SalesforceError(
            400,
            "STRING_TOO_LONG",
            f"{spec.name}: data value too large: {str(value)[:40]} (max length={spec.length})",
            [spec.name],
        )
    return spec.name, value


@dataclass
class Org:
    """One org's records, by sObject type and id (deleted ones kept, as the recycle bin does)."""

    user_id: str = ""
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    bodies: dict[tuple[str, str], bytes] = field(default_factory=dict)  # base64 fields, by id
    numbers: itertools.count = field(default_factory=lambda: itertools.count(1))
    clock: Any = field(default=lambda: datetime.datetime.now(datetime.UTC))
    schema: dict[str, SObject] = field(default_factory=lambda: dict(SOBJECTS))
    custom_fields: set[tuple[str, str]] = field(default_factory=set)  # (sobject, field), lower

    def __post_init__(self) -> None:
        self.started = self.clock()
        if not self.user_id:
            self.user_id = self.create(
                "User",
                {
                    "Username": "admin@sandbox.test",
                    "Email": "admin@sandbox.test",
                    "LastName": "Admin",
                    "IsActive": True,
                },
            )

    def sobject(self, name: str) -> SObject:
        """An sObject type by name as the session's user sees it (field-level security), or
        NOT_FOUND."""
        found = self.schema.get(name.lower())
        if found is None:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        custom = {f for s, f in self.custom_fields if s == found.name.lower()}
        if not custom:
            return found
        granted = self._granted(found.name)
        hidden = {f for f in custom if f not in granted}
        read_only = {f for f in custom if f in granted and not granted[f]}
        return found.as_seen(hidden, read_only)

    def _granted(self, type_name: str) -> dict[str, bool]:
        """The fields of a type the user's permission sets grant: name -> whether they may edit."""
        assigned = {
            a["PermissionSetId"]
            for a in self.all_raw("PermissionSetAssignment")
            if a["AssigneeId"] == self.user_id
        }
        granted: dict[str, bool] = {}
        for grant in self.all_raw("FieldPermissions"):
            sobject, _, name = str(grant["Field"]).partition(".")
            mine = grant["ParentId"] in assigned and sobject.lower() == type_name.lower()
            if mine and (grant["PermissionsRead"] or grant["PermissionsEdit"]):
                edit = bool(grant["PermissionsEdit"])
                granted[name.lower()] = granted.get(name.lower(), False) or edit
        return granted

    def all_raw(self, type_name: str) -> list[dict[str, Any]]:
        """Every live record of a type, read by the org itself (not through a user's view)."""
        return [r for r in self.records.get(type_name, {}).values() if not r["IsDeleted"]]

    def check_grant(self, type_name: str, values: dict[str, Any]) -> None:
        """What Salesforce refuses of a new permission record: a grant of a field that is not a
        custom field, a second grant or assignment of the same thing."""
        if type_name == "FieldPermissions":
            sobject, _, name = str(values.get("Field") or "").partition(".")
            if (sobject.lower(), name.lower()) not in self.custom_fields:
                raise SalesforceError(
                    400,
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"Field Name: bad value for restricted picklist field: {values.get('Field')}",
                    ["Field"],
                )
            twins = [
                g
                for g in self.all_raw("FieldPermissions")
                if g["ParentId"] == values.get("ParentId")
                and str(g["Field"]).lower() == str(values.get("Field")).lower()
            ]
        elif type_name == "PermissionSetAssignment":
            twins = [
                a
                for a in self.all_raw("PermissionSetAssignment")
                if a["PermissionSetId"] == values.get("PermissionSetId")
                and a["AssigneeId"] == values.get("AssigneeId")
            ]
        else:
            return
        if twins:
            raise SalesforceError(
                400,
                "DUPLICATE_VALUE",
                f"duplicate value found: duplicates value on record with id: {twins[0]['Id']}",
            )

    def add_field(self, type_name: str, added: Field) -> None:
        """A custom field an admin created, hidden from users until a permission set grants it;
        the records there have it empty (false: a checkbox)."""
        sobject = self.schema.get(type_name.lower())
        if sobject is None:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        if sobject.field(added.name) is not None:
            raise SalesforceError(
                400,
                "DUPLICATE_DEVELOPER_NAME",
                f"There is already a field named {added.name} on {sobject.name}.",
                ["FullName"],
            )
        self.schema[sobject.name.lower()] = sobject.with_field(added)
        self.custom_fields.add((sobject.name.lower(), added.name.lower()))
        empty = False if added.type == "boolean" else None
        for record in self.records.get(sobject.name, {}).values():
            record[added.name] = empty

    def _values(self, sobject: SObject, values: dict[str, Any], creating: bool) -> dict[str, Any]:
        checked: dict[str, Any] = {}
        for name, value in values.items():
            if name == "attributes":
                continue
            spec_name, stored = _checked(sobject, name, value)
            spec = sobject.field(spec_name)
            assert spec is not None
            if not (spec.createable if creating else spec.updateable):
                raise SalesforceError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {spec.name}. Please check the security "
                    "settings of this field and verify that it is read/write for your profile.",
                    [spec.name],
                )
            checked[spec.name] = stored
        return checked

    def _unique(self, sobject: SObject, values: dict[str, Any], own_id: str | None) -> None:
        for spec in sobject.fields:
            value = values.get(spec.name)
            if not spec.unique or value is None:
                continue
            for record in self.records.get(sobject.name, {}).values():
                if (
                    record["Id"] != own_id
                    and not record["IsDeleted"]
                    and record.get(spec.name) == value
                ):
                    raise SalesforceError(
                        400,
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {spec.name} duplicates value on record with id: "
                        f"{record['Id']}",
                        [spec.name],
                    )

    def create(self, type_name: str, values: dict[str, Any], record_id: str | None = None) -> str:
        """A new record's id (given one: a ContentNote takes its document's), or the error
        Salesforce answers."""
        sobject = self.sobject(type_name)
        checked = self._values(sobject, values, creating=True)
        self.check_grant(sobject.name, checked)
        missing = [n for n in sobject.required() if checked.get(n) in (None, "")]
        if missing:
            raise SalesforceError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: {missing}", missing
            )
        self._unique(sobject, checked, None)
        now = stamp(self.clock())
        record_id = record_id or salesforce_id(sobject.prefix, next(self.numbers))
        every = self.schema[sobject.name.lower()].fields  # hidden ones too: empty, not absent
        record: dict[str, Any] = {spec.name: None for spec in every}
        record.update(
            {
                "Id": record_id,
                "IsDeleted": False,
                "CreatedDate": now,
                "LastModifiedDate": now,
                "SystemModstamp": now,
            }
        )
        for spec in every:
            if spec.type == "boolean" and record[spec.name] is None:
                record[spec.name] = False
        if sobject.field("OwnerId") is not None:
            record["OwnerId"] = self.user_id
        if sobject.field("ShareType") is not None:
            record["ShareType"] = "V"
        record.update(checked)
        self._derive(sobject, record)
        self.records.setdefault(sobject.name, {})[record_id] = record
        return record_id

    def create_system(self, type_name: str, values: dict[str, Any]) -> str:
        """A record Salesforce makes itself (fields a client may not set): its id."""
        sobject = self.sobject(type_name)
        record_id = self.create(type_name, {})
        self.records[sobject.name][record_id].update(values)
        return record_id

    def _derive(self, sobject: SObject, record: dict[str, Any]) -> None:
        if sobject.name == "Opportunity":
            record["IsClosed"] = str(record.get("StageName", "")).startswith("Closed")
            record["IsWon"] = record.get("StageName") == "Closed Won"

    def get(self, type_name: str, record_id: str) -> dict[str, Any]:
        """A live record, or NOT_FOUND (deleted ones too)."""
        sobject = self.sobject(type_name)
        record = self.records.get(sobject.name, {}).get(_long_id(record_id))
        if record is None or record["IsDeleted"]:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        return record

    def update(self, type_name: str, record_id: str, values: dict[str, Any]) -> None:
        """Change a live record's fields."""
        sobject = self.sobject(type_name)
        record = self._live(sobject, record_id)
        checked = self._values(sobject, values, creating=False)
        for name in sobject.required():
            if name in checked and checked[name] in (None, ""):
                raise SalesforceError(
                    400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", [name]
                )
        self._unique(sobject, checked, record["Id"])
        record.update(checked)
        self._derive(sobject, record)
        record["LastModifiedDate"] = record["SystemModstamp"] = stamp(self.clock())

    def delete(self, type_name: str, record_id: str) -> None:
        """Move a live record to the recycle bin."""
        sobject = self.sobject(type_name)
        record = self._live(sobject, record_id)
        record["IsDeleted"] = True
        record["SystemModstamp"] = stamp(self.clock())

    def _live(self, sobject: SObject, record_id: str) -> dict[str, Any]:
        record = self.records.get(sobject.name, {}).get(_long_id(record_id))
        if record is None:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        if record["IsDeleted"]:
            raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return record

    def all(self, type_name: str, deleted: bool = False) -> list[dict[str, Any]]:
        """Every record of a type, oldest first (deleted ones too, with `deleted`)."""
        sobject = self.sobject(type_name)
        return [
            r for r in self.records.get(sobject.name, {}).values() if deleted or not r["IsDeleted"]
        ]

    def by_external_id(self, type_name: str, field_name: str, value: str) -> list[dict[str, Any]]:
        """The live records whose external id field has `value`, or NOT_FOUND for a field that
        is not an external id."""
        sobject = self.sobject(type_name)
        spec = sobject.field(field_name)
        if spec is None or not (spec.external_id or spec.name == "Id"):
            raise SalesforceError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name}",
            )
        return [
            r
            for r in self.records.get(sobject.name, {}).values()
            if not r["IsDeleted"] and r.get(spec.name) == value
        ]


def _long_id(record_id: str) -> str:
    """The 18-character form of an id given in 15 characters (its case-safe suffix added)."""
    if len(record_id) != 15:
        return record_id
    suffix = ""
    for chunk in range(3):
        part = record_id[chunk * 5 : chunk * 5 + 5]
        suffix += ID_SUFFIX_CHARS[sum(1 << i for i, c in enumerate(part) if c.isupper())]
    return record_id + suffix
