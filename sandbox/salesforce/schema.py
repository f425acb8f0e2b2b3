"""The sObjects the Salesforce sandbox knows: their fields as `describe` tells them, and id prefixes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

STAGES = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")


@dataclass(frozen=True)
class Field:
    """One field of an sObject, as `describe` reports it."""

    name: str
    type: str  # id, string, textarea, boolean, date, datetime, currency, percent, picklist, ...
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    picklist: tuple[str, ...] = ()
    custom: bool = False
    defaulted: bool = False  # set on create when not given (the owner: the session's user)

    def describe(self) -> dict[str, object]:
        """The field in a `describe` answer."""
        return {
            "name": self.name,
            "label": self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "length": self.length,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "unique": self.unique,
            "custom": self.custom,
            "defaultedOnCreate": self.defaulted,
            "picklistValues": [
                {"value": v, "label": v, "active": True, "defaultValue": False}
                for v in self.picklist
            ],
        }


def _system() -> list[Field]:
    return [
        Field("Id", "id", 18, nillable=False, createable=False, updateable=False),
        Field("IsDeleted", "boolean", nillable=False, createable=False, updateable=False),
        Field("CreatedDate", "datetime", nillable=False, createable=False, updateable=False),
        Field("LastModifiedDate", "datetime", nillable=False, createable=False, updateable=False),
        Field("SystemModstamp", "datetime", nillable=False, createable=False, updateable=False),
    ]


@dataclass(frozen=True)
class SObject:
    """An sObject type: its name, id prefix, fields, and whether records of it can be merged."""

    name: str
    prefix: str
    fields: tuple[Field, ...]
    mergeable: bool = False
    by_name: dict[str, Field] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.by_name.update({f.name.lower(): f for f in self.fields})

    def field(self, name: str) -> Field | None:
        """A field by name (Salesforce's names are case-insensitive)."""
        return self.by_name.get(name.lower())

    def required(self) -> list[str]:
        """The fields a create must set."""
        return [
            f.name
            for f in self.fields
            if f.createable and not f.nillable and not f.defaulted and f.type != "boolean"
        ]

    def with_field(self, added: Field) -> SObject:
        """This type with one more field (a custom field an admin created)."""
        return SObject(self.name, self.prefix, (*self.fields, added), self.mergeable)

    def as_seen(self, hidden: set[str], read_only: set[str]) -> SObject:
        """This type as a user sees it: without the fields hidden from them (lower-case names),
        those they may only read neither createable nor updateable."""
        fields = tuple(
            replace(f, createable=False, updateable=False) if f.name.lower() in read_only else f
            for f in self.fields
            if f.name.lower() not in hidden
        )
        return SObject(self.name, self.prefix, fields, self.mergeable)

    def describe(self, base: str) -> dict[str, object]:
        """The `sobjects/{T}/describe` answer."""
        return {
            "name": self.name,
            "label": self.name,
            "keyPrefix": self.prefix,
            "custom": False,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "mergeable": self.mergeable,
            "fields": [f.describe() for f in self.fields],
            "urls": {
                "sobject": f"{base}/sobjects/{self.name}",
                "describe": f"{base}/sobjects/{self.name}/describe",
                "rowTemplate": f"{base}/sobjects/{self.name}/{{ID}}",
            },
        }


OPPORTUNITY = SObject(
    "Opportunity",
    "006",
    (
        *_system(),
        Field("Name", "string", 120, nillable=False),
        Field("StageName", "picklist", 255, nillable=False, picklist=STAGES),
        Field("CloseDate", "date", nillable=False),
        Field("Amount", "currency"),
        Field("Probability", "percent"),
        Field("Description", "textarea", 32000),
        Field("OwnerId", "reference", 18, nillable=False, defaulted=True),
        Field("IsClosed", "boolean", nillable=False, createable=False, updateable=False),
        Field("IsWon", "boolean", nillable=False, createable=False, updateable=False),
    ),
)
USER = SObject(
    "User",
    "005",
    (
        *_system(),
        Field("Username", "string", 80, nillable=False),
        Field("Email", "email", 128, nillable=False),
        Field("FirstName", "string", 40),
        Field("LastName", "string", 80, nillable=False),
        Field("IsActive", "boolean", nillable=False),
    ),
)
PRIVACY = ("N", "P")  # SharingPrivacy: visible to anyone with record access, or private
CONTENT_DOCUMENT = SObject(
    "ContentDocument",
    "069",
    (
        *_system(),
        Field("Title", "string", 255, nillable=False, createable=False),
        Field("FileType", "string", 20, createable=False, updateable=False),
        Field("FileExtension", "string", 40, createable=False, updateable=False),
        Field("LatestPublishedVersionId", "reference", 18, createable=False, updateable=False),
        Field("SharingPrivacy", "picklist", 1, createable=False, picklist=PRIVACY),
        Field("ContentSize", "int", createable=False, updateable=False),
        Field("OwnerId", "reference", 18, nillable=False, defaulted=True),
    ),
)
CONTENT_VERSION = SObject(
    "ContentVersion",
    "068",
    (
        *_system(),
        Field("Title", "string", 255),
        Field("PathOnClient", "string", 500, nillable=False, updateable=False),
        Field("VersionData", "base64", nillable=False, updateable=False),
        Field("ContentDocumentId", "reference", 18, updateable=False),
        Field("FirstPublishLocationId", "reference", 18, updateable=False),
        Field("SharingPrivacy", "picklist", 1, picklist=PRIVACY),
        Field("ContentSize", "int", createable=False, updateable=False),
        Field("FileExtension", "string", 40, createable=False, updateable=False),
        Field("IsLatest", "boolean", createable=False, updateable=False),
        Field("OwnerId", "reference", 18, nillable=False, defaulted=True),
    ),
)
CONTENT_NOTE = SObject(
    "ContentNote",
    "069",  # a note is a ContentDocument: the same id
    (
        *_system(),
        Field("Title", "string", 255, nillable=False),
        Field("Content", "base64"),
        Field("TextPreview", "string", 255, createable=False, updateable=False),
        Field("SharingPrivacy", "picklist", 1, picklist=PRIVACY),
        Field("FileType", "string", 20, createable=False, updateable=False),
        Field("OwnerId", "reference", 18, nillable=False, defaulted=True),
    ),
)
CONTENT_DOCUMENT_LINK = SObject(
    "ContentDocumentLink",
    "06A",
    (
        *_system(),
        Field("ContentDocumentId", "reference", 18, nillable=False, updateable=False),
        Field("LinkedEntityId", "reference", 18, nillable=False, updateable=False),
        Field("ShareType", "picklist", 1, nillable=False, defaulted=True, picklist=("V", "C", "I")),
        Field("Visibility", "picklist", 40, picklist=("AllUsers", "InternalUsers", "SharedUsers")),
    ),
)
# Field-level security: a custom field is hidden from a user until a permission set assigned to them
# grants it (`FieldPermissions`), as in an org where a field is created through the API.
PERMISSION_SET = SObject(
    "PermissionSet",
    "0PS",
    (*_system(), Field("Name", "string", 80, nillable=False), Field("Label", "string", 80)),
)
FIELD_PERMISSIONS = SObject(
    "FieldPermissions",
    "01k",
    (
        *_system(),
        Field("ParentId", "reference", 18, nillable=False, updateable=False),
        Field("SobjectType", "string", 80, nillable=False, updateable=False),
        Field("Field", "string", 255, nillable=False, updateable=False),
        Field("PermissionsRead", "boolean", nillable=False),
        Field("PermissionsEdit", "boolean", nillable=False),
    ),
)
PERMISSION_SET_ASSIGNMENT = SObject(
    "PermissionSetAssignment",
    "0Pa",
    (
        *_system(),
        Field("PermissionSetId", "reference", 18, nillable=False, updateable=False),
        Field("AssigneeId", "reference", 18, nillable=False, updateable=False),
    ),
)
SOBJECTS = {
    s.name.lower(): s
    for s in (
        OPPORTUNITY,
        USER,
        CONTENT_DOCUMENT,  # before ContentNote: an 069 id names a ContentDocument
        CONTENT_NOTE,
        CONTENT_VERSION,
        CONTENT_DOCUMENT_LINK,
        PERMISSION_SET,
        FIELD_PERMISSIONS,
        PERMISSION_SET_ASSIGNMENT,
    )
}
