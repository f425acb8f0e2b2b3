"""Canonical values, the per-field rules a mapping turns into, and the plan of writes a run makes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal, NamedTuple, TypeVar

from dealsync.note_text import TextFormat, html_to_text, normalize_text, strip_author, text_to_html

# The fixed registry of value transforms a mapping may name (no eval, no imports).
TRANSFORMS: dict[str, Callable[[str], str]] = {
    "strip": str.strip,
    "lower": str.lower,
    "upper": str.upper,
    "collapse_whitespace": lambda text: " ".join(text.split()),
    "strip_author": strip_author,
}

T = TypeVar("T")
Side = Literal["partner", "vendor"]
SIDES: tuple[Side, Side] = ("partner", "vendor")
# A canonical value: None, a string in the type's canonical form, or a sorted tuple for multiselects.
Value = str | tuple[str, ...] | None


def other(side: Side) -> Side:
    """The other side of a pair."""
    return "vendor" if side == "partner" else "partner"


def both(partner: T, vendor: T) -> tuple[tuple[Side, T], tuple[Side, T]]:
    """(side, value) for the partner's value and the vendor's, in that order."""
    return (("partner", partner), ("vendor", vendor))


class Direction(StrEnum):
    """Which way a field flows."""

    BOTH = "both"
    PARTNER_TO_VENDOR = "partner_to_vendor"
    VENDOR_TO_PARTNER = "vendor_to_partner"
    NONE = "none"

    def flows_to(self, target: Side) -> bool:
        """Whether values of this field are ever written to `target`."""
        if self is Direction.BOTH:
            return True
        if self is Direction.NONE:
            return False
        return self.value.endswith(target)


class FieldType(StrEnum):
    """Canonical field types."""

    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    ENUM = "enum"
    MULTISELECT = "multiselect"
    BOOL = "bool"


class BadValue(ValueError):
    """A CRM value that cannot be read as its field's type."""


def canonical(field_type: FieldType, raw: Any) -> Value:
    """A CRM's string value in the canonical form of its type; raises BadValue when unparsable."""
    if raw is None:
        return None
    text = str(raw).strip()
    if text == "":
        return None
    if field_type is FieldType.NUMBER:
        try:
            number = Decimal(text)
        except InvalidOperation as exc:
            raise BadValue(f"{text!r} is not a number") from exc
        if not number.is_finite():
            raise BadValue(f"{text!r} is not a finite number")
        normalized = number.normalize()
        return (
            format(normalized, "f") if normalized == normalized.to_integral() else str(normalized)
        )
    if field_type in (FieldType.DATE, FieldType.DATETIME):
        moment = _instant(text)
        if field_type is FieldType.DATE:
            return moment.date().isoformat()
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if field_type is FieldType.MULTISELECT:
        return tuple(sorted({part.strip() for part in text.split(";") if part.strip()})) or None
    if field_type is FieldType.BOOL:
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise BadValue(f"{text!r} is not true or false")
        return lowered
    return text


def _instant(text: str) -> datetime:
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadValue(f"{text!r} is not a date") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_crm(value: Value) -> str:
    """A canonical value as the string a CRM write takes (empty string clears)."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ";".join(value)
    return value


def to_json(value: Value) -> Any:
    """A canonical value for JSON storage (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def from_json(value: Any) -> Value:
    """A canonical value read back from JSON storage."""
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class FieldRule:
    """One mapped field: where it lives on each side, how it flows, how conflicts end."""

    name: str
    type: FieldType
    partner: str | None
    vendor: str | None
    direction: Direction = Direction.BOTH
    when: Literal["always", "create_only"] = "always"
    conflict: Literal["vendor", "partner", "newest"] = "vendor"
    value_map: Mapping[str, str] = field(default_factory=dict)  # vendor value -> partner value
    transforms: tuple[str, ...] = ()
    required_on_create: bool = False
    formats: Mapping[str, TextFormat] = field(default_factory=dict)  # side -> how it holds text

    def prop(self, side: Side) -> str | None:
        """The CRM property of this field on a side."""
        return self.partner if side == "partner" else self.vendor

    def format(self, side: Side) -> TextFormat:
        """How a side holds this field's text."""
        return self.formats.get(side, "text")

    def read(self, side: Side, raw: Mapping[str, str | None]) -> Value:
        """This field's canonical value from a side's raw properties; raises BadValue."""
        prop = self.prop(side)
        text = raw.get(prop) if prop else None
        if text is None:
            return None
        return self.read_text(side, text)

    def read_text(self, side: Side, text: str) -> Value:
        """The canonical value of one raw property text of this field on a side; raises BadValue."""
        for name in self.transforms:
            text = TRANSFORMS[name](text)
        if self.formats:
            # Texts compare as plain text when the two sides hold them differently.
            text = html_to_text(text) if self.format(side) == "html" else normalize_text(text)
        if side == "partner" and self.value_map:
            text = next((v for v, p in self.value_map.items() if p == text), text)
        return canonical(self.type, text)

    def write(self, side: Side, value: Value) -> str:
        """The string to write for a canonical value on a side."""
        text = to_crm(value)
        if self.formats and self.format(side) == "html" and value is not None:
            text = text_to_html(text)
        if side == "partner" and self.value_map and isinstance(value, str):
            text = self.value_map.get(value, text)
        return text


@dataclass(frozen=True)
class SideRecord:
    """One side's current view of a deal: raw properties plus canonical field values."""

    side: Side
    id: str
    values: Mapping[str, Value]
    raw: Mapping[str, str | None]
    modified_ms: int = 0
    archived: bool = False
    field_ms: Mapping[str, int] = field(default_factory=dict)  # property -> when it last changed

    def changed_ms(self, prop: str | None) -> int:
        """When a property last changed: its own time where the CRM keeps history, else the record's."""
        return self.field_ms.get(prop or "", self.modified_ms)


@dataclass(frozen=True)
class Link:
    """A partner deal and its vendor twin, with the field values both sides last agreed on."""

    id: int | None
    partner_id: str
    vendor_id: str
    origin: Side
    base: Mapping[str, Value]
    state: Literal["active", "archived", "unlinked"] = "active"


class LinkedIds(NamedTuple):
    """A link's id and its two records' ids: what checks over every link need, without the base."""

    id: int
    partner_id: str
    vendor_id: str


@dataclass(frozen=True)
class Create:
    """Create the twin of a source record on `target`, idempotently by `key`."""

    target: Side
    source_id: str
    key: str
    properties: Mapping[str, str]
    base: Mapping[str, Value]
    owner_note: str = ""


@dataclass(frozen=True)
class FieldChange:
    """One field value written to one side."""

    field: str
    old: Value
    new: Value


@dataclass(frozen=True)
class Update:
    """Write changed properties to an existing record of a link."""

    target: Side
    record_id: str
    link_id: int | None
    properties: Mapping[str, str]
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class Delete:
    """Apply the deletion policy to a link whose record on `source` is gone."""

    source: Side
    link_id: int | None
    target_id: str
    action: Literal["archive", "unlink", "flag"]
    flag_property: str | None = None


@dataclass(frozen=True)
class Conflict:
    """Both sides changed a field to different values; the rule picked `winner`."""

    link_id: int | None
    field: str
    base: Value
    partner: Value
    vendor: Value
    rule: str
    winner: Side


@dataclass(frozen=True)
class Adopt:
    """Link a twin found by its key (a run that crashed after creating it, before committing)."""

    partner_id: str
    vendor_id: str
    origin: Side
    base: Mapping[str, Value]


class Welcome(NamedTuple):
    """A conversion's welcome note, to be the first shared note on the new partner deal."""

    vendor_deal: str
    partner_deal: str
    text: str
    timestamp: str  # epoch ms, as the notes' timestamp property takes it


@dataclass(frozen=True)
class Skip:
    """A record the plan cannot act on, with the reason (goes to quarantine)."""

    side: Side
    record_id: str
    reason: str
    security: bool = False  # a trust boundary held (a forged key, a record of another partner)


@dataclass
class Plan:
    """Everything one run intends to write: a plain value, printable by a dry run."""

    creates: list[Create] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    adopts: list[Adopt] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    new_bases: dict[int, dict[str, Value]] = field(default_factory=dict)
    held_deletes: list[Delete] = field(default_factory=list)
    brake_reason: str = ""
    notes: list[str] = field(default_factory=list)
    next_owner_turn: int = 0

    @property
    def is_empty(self) -> bool:
        """Whether the plan writes nothing to either CRM."""
        return not (self.creates or self.updates or self.deletes)
