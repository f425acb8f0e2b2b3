"""Built-in object types, properties and association types of the HubSpot-compatible sandbox."""

from __future__ import annotations

from dataclasses import dataclass, field

OBJECT_TYPE_IDS: dict[str, str] = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "notes": "0-46",
}
_ALIASES = {
    **{name: name for name in OBJECT_TYPE_IDS},
    **{type_id: name for name, type_id in OBJECT_TYPE_IDS.items()},
    "contact": "contacts",
    "company": "companies",
    "deal": "deals",
    "note": "notes",
}

# (from, to) -> default HUBSPOT_DEFINED association type id.
DEFAULT_ASSOCIATION_TYPES: dict[tuple[str, str], int] = {
    ("notes", "deals"): 214,
    ("deals", "notes"): 213,
    ("notes", "contacts"): 202,
    ("contacts", "notes"): 201,
    ("notes", "companies"): 190,
    ("companies", "notes"): 189,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
}
# Every type id pairs with its inverse so that an association is visible from both ends.
INVERSE_ASSOCIATION_TYPES: dict[int, int] = {}
for (_from, _to), _type_id in DEFAULT_ASSOCIATION_TYPES.items():
    INVERSE_ASSOCIATION_TYPES[_type_id] = DEFAULT_ASSOCIATION_TYPES[(_to, _from)]

READ_ONLY_PROPERTIES = frozenset(
    {"hs_object_id", "createdate", "hs_lastmodifieddate", "hs_merged_object_ids"}
)
# What a list or read returns when the caller names no properties.
DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage"),
    "notes": ("hs_timestamp", "hs_note_body"),
    "companies": ("name", "domain"),
    "contacts": ("email", "firstname", "lastname"),
}
ALWAYS_RETURNED = ("hs_object_id", "createdate", "hs_lastmodifieddate")

DEAL_STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
)


@dataclass(frozen=True)
class PropertyDef:
    """One property definition as the properties API shows it."""

    name: str
    type: str  # string | number | date | datetime | enumeration | bool
    field_type: str = "text"
    label: str = ""
    group_name: str = "dealinformation"
    description: str = ""
    options: tuple[str, ...] = ()
    has_unique_value: bool = False
    read_only: bool = False
    custom: bool = False
    extra_options: tuple[dict, ...] = field(default=(), compare=False)

    @property
    def multi(self) -> bool:
        """Whether the property holds several `;`-joined options (a multi-select)."""
        return self.type == "enumeration" and self.field_type == "checkbox"


def _p(name: str, type_: str, field_type: str = "text", **kw) -> PropertyDef:
    return PropertyDef(name=name, type=type_, field_type=field_type, label=name, **kw)


_COMMON = (
    _p("hs_object_id", "number", "number", read_only=True),
    _p("createdate", "datetime", "date", read_only=True),
    _p("hs_lastmodifieddate", "datetime", "date", read_only=True),
    _p("hs_merged_object_ids", "enumeration", "checkbox", read_only=True),
    # Owner ids are checked against the owners table, not a fixed option list.
    _p("hubspot_owner_id", "enumeration", "select"),
)

BUILTIN_PROPERTIES: dict[str, tuple[PropertyDef, ...]] = {
    "deals": (
        *_COMMON,
        _p("dealname", "string"),
        _p("amount", "number", "number"),
        _p("closedate", "datetime", "date"),
        _p("pipeline", "enumeration", "select", options=("default",)),
        _p("dealstage", "enumeration", "select", options=DEAL_STAGES),
        _p("dealtype", "enumeration", "select", options=("newbusiness", "existingbusiness")),
        _p("description", "string", "textarea"),
    ),
    "notes": (
        *_COMMON,
        _p("hs_timestamp", "datetime", "date", group_name="engagement"),
        _p("hs_note_body", "string", "html", group_name="engagement"),
        _p("hs_attachment_ids", "string", group_name="engagement"),
    ),
    "companies": (
        *_COMMON,
        _p("name", "string", group_name="companyinformation"),
        _p("domain", "string", group_name="companyinformation"),
        _p("country", "string", group_name="companyinformation"),
    ),
    "contacts": (
        *_COMMON,
        _p("email", "string", group_name="contactinformation"),
        _p("firstname", "string", group_name="contactinformation"),
        _p("lastname", "string", group_name="contactinformation"),
        _p("company", "string", group_name="contactinformation"),
    ),
}


def canonical_object_type(name: str) -> str | None:
    """Map a path segment (`deals`, `0-3`, `deal`) to the canonical object type, or None."""
    return _ALIASES.get(name.lower())
