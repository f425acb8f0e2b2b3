"""Load and check mapping files (mappings/*.yaml) and turn them into typed rules."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from connectors.base import PropertyMatch, PropertySpec
from dealsync.field_readers import FieldReader
from dealsync.mapping_check import (
    MappingError,
    MappingProblem,
    check_mapping,
    line_of,
    per_side,
)
from dealsync.model import (
    SIDES,
    BadValue,
    Direction,
    FieldRule,
    FieldType,
    Side,
    SideRecord,
    Value,
)

DEFAULT_MAPPING = "mappings/shared_deal.yaml"
DEFAULT_NOTES_MAPPING = "mappings/shared_notes.yaml"


class FieldErrors(ValueError):
    """Field values of one record that cannot be read as their mapped types."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class ShareRule:
    """Shared when `property` equals `equals`, or when its `;`-joined values contain `contains`.

    `{partner}` in either stands for the partner id.
    """

    property: str
    equals: str | None = None
    contains: str | None = None

    def matches(self, raw: Mapping[str, str | None], partner_id: str) -> bool:
        """Whether a record's raw properties satisfy the rule for this partner."""
        value = (raw.get(self.property) or "").strip().lower()
        if self.contains is not None:
            wanted = self.contains.replace("{partner}", partner_id).lower()
            return wanted in {part.strip() for part in value.split(";")}
        return value == (self.equals or "").replace("{partner}", partner_id).lower()

    def count_match(self, partner_id: str) -> PropertyMatch:
        """The rule as a condition a CRM's search can count."""
        if self.contains is not None:
            return PropertyMatch(
                self.property, "contains", self.contains.replace("{partner}", partner_id)
            )
        return PropertyMatch(
            self.property, "eq", (self.equals or "").replace("{partner}", partner_id)
        )


@dataclass(frozen=True)
class DeletionPolicy:
    """What deleting a linked record on one side does on the other."""

    action: Literal["archive", "unlink", "flag"] = "archive"
    flag_property: str | None = None


@dataclass(frozen=True, kw_only=True)
class MappingBase:
    """What deal and note mappings share: fields, key, deletion policy, custom properties."""

    path: str
    version: str  # a digest of what the file says (comments and layout aside)
    key_properties: Mapping[Side, str | None]
    fields: tuple[FieldRule, ...]
    deletion: Mapping[str, DeletionPolicy] = field(default_factory=dict)
    max_deletions: int = 20
    max_deletion_fraction: float = 0.10
    custom_properties: Mapping[Side, tuple[PropertySpec, ...]] = field(default_factory=dict)
    owner_properties: Mapping[Side, str] = field(
        default_factory=lambda: {"partner": "hubspot_owner_id", "vendor": "hubspot_owner_id"}
    )

    def key(self, side: Side) -> str:
        """The property that holds the idempotency key on a side ('' where the CRM has none)."""
        return self.key_properties[side] or ""

    def properties(self, side: Side) -> list[str]:
        """Every property the engine reads on a side."""
        raise NotImplementedError

    def owner(self, side: Side) -> str:
        """The record owner property on a side."""
        return self.owner_properties[side]

    def synced_fields(self) -> tuple[FieldRule, ...]:
        """Fields that flow in at least one direction."""
        return self._synced

    @cached_property
    def _synced(self) -> tuple[FieldRule, ...]:
        return tuple(f for f in self.fields if f.direction is not Direction.NONE)

    @cached_property
    def _readers(self) -> dict[Side, tuple[FieldReader, ...]]:
        return {
            side: tuple(FieldReader(rule, side) for rule in self.synced_fields()) for side in SIDES
        }

    def policy(self, source: Side) -> DeletionPolicy:
        """The deletion policy for records deleted on `source`."""
        return self.deletion.get(
            f"{source}_to_{'vendor' if source == 'partner' else 'partner'}", DeletionPolicy()
        )

    def side_record(
        self,
        side: Side,
        record_id: str,
        raw: Mapping[str, str | None],
        modified_ms: int = 0,
        archived: bool = False,
    ) -> SideRecord:
        """A side's record in canonical form; raises FieldErrors naming every unreadable field."""
        values: dict[str, Value] = {}
        errors: list[str] = []
        for reader in self._readers[side]:
            try:
                values[reader.name] = reader.read(raw)
            except BadValue as exc:
                errors.append(f"{reader.prop} ({reader.name}): {exc}")
        if errors:
            raise FieldErrors(errors)
        return SideRecord(side, record_id, values, dict(raw), modified_ms, archived)


@dataclass(frozen=True, kw_only=True)
class NotesMapping(MappingBase):
    """A checked notes mapping: which notes are shared, comments, attachments, authors.

    Per-side properties may be None where a CRM has no such thing (BottleCRM comments hold no key,
    no reply-to and no files: creates are found again through the ledger's intents).
    """

    share_rules: Mapping[Side, ShareRule]
    reply_to_properties: Mapping[Side, str | None] = field(
        default_factory=lambda: {"partner": "dealsync_reply_to", "vendor": "dealsync_reply_to"}
    )
    attachments_properties: Mapping[Side, str | None] = field(
        default_factory=lambda: {"partner": "hs_attachment_ids", "vendor": "hs_attachment_ids"}
    )

    def share(self, side: Side) -> ShareRule:
        """What marks a note shared on a side."""
        return self.share_rules[side]

    def reply_to(self, side: Side) -> str | None:
        """The property naming the note a comment answers on a side, if that CRM has one."""
        return self.reply_to_properties[side]

    def attachments(self, side: Side) -> str | None:
        """The property listing a note's file ids on a side, if files live on notes there."""
        return self.attachments_properties[side]

    def properties(self, side: Side) -> list[str]:
        """Every note property the engine reads on a side."""
        names = [
            self.key(side),
            self.share(side).property,
            self.reply_to(side),
            self.attachments(side),
        ]
        names += [self.owner(side), *(f.prop(side) for f in self.synced_fields())]
        return list(dict.fromkeys(n for n in names if n))


@dataclass(frozen=True, kw_only=True)
class DealMapping(MappingBase):
    """A checked deal mapping, ready for the engine."""

    registration: ShareRule
    conversion: ShareRule
    partner_owner_email: str | None = None
    welcome_note: str | None = None
    on_create: Mapping[Side, Mapping[str, str]] = field(default_factory=dict)

    def properties(self, side: Side) -> list[str]:
        """Every property the engine reads on a side."""
        names: list[str | None] = [self.key(side)]
        names += [f.prop(side) for f in self.synced_fields()]
        rule = self.registration if side == "partner" else self.conversion
        names.append(rule.property)
        if side == "vendor":
            names += [p for p in (self.partner_owner_email, self.welcome_note) if p]
        return list(dict.fromkeys(n for n in names if n))

    def on_create_values(self, side: Side, partner_id: str) -> dict[str, str]:
        """Fixed values set on records created on `side`."""
        return {
            k: v.replace("{partner}", partner_id) for k, v in self.on_create.get(side, {}).items()
        }


def check_notes_fit(mapping: NotesMapping, side: Side, kind: str, files_on: str) -> None:
    """Refuse a notes mapping that asks a CRM for files on notes where it keeps them on deals."""
    if files_on == "deals" and mapping.attachments(side):
        text = Path(mapping.path).read_text()
        line = line_of(yaml.compose(text), ["attachments_property"])
        raise MappingError(
            [
                MappingProblem(
                    mapping.path,
                    line,
                    f"the {side} CRM ({kind}) keeps files on deals, not on notes: set "
                    f"attachments_property to {{{side}: null, ...}} as mappings/bottlecrm_shared_notes.yaml does",
                )
            ]
        )


def _common(data: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Constructor arguments every mapping kind shares."""
    defaults = data.get("defaults", {})
    fields = tuple(
        FieldRule(
            name=spec["name"],
            type=FieldType(spec["type"]),
            partner=spec.get("partner"),
            vendor=spec.get("vendor"),
            direction=Direction(spec.get("direction", defaults.get("direction", "both"))),
            when=spec.get("when", defaults.get("when", "always")),
            conflict=spec.get("conflict", defaults.get("conflict", "vendor")),
            value_map=dict(spec.get("value_map", {})),
            transforms=tuple(spec.get("transforms", [])),
            required_on_create=bool(spec.get("required_on_create", False)),
            formats=dict(spec.get("format", {})),
        )
        for spec in data["fields"]
    )
    deletion = data.get("deletion", {})
    brake = deletion.get("brake", {})
    return {
        "path": str(path),
        "version": mapping_version(data),
        "key_properties": per_side(data["key_property"]),
        "fields": fields,
        "owner_properties": per_side(data.get("owner_property", "hubspot_owner_id")),
        "deletion": {k: DeletionPolicy(**v) for k, v in deletion.items() if k != "brake"},
        "max_deletions": int(brake.get("max_deletions", 20)),
        "max_deletion_fraction": float(brake.get("max_fraction", 0.10)),
        "custom_properties": {
            side: tuple(
                PropertySpec(
                    name=p["name"],
                    label=p.get("label", p["name"]),
                    type=p["type"],
                    field_type=p.get("field_type", "text"),
                    options=tuple(p.get("options", [])),
                    unique=bool(p.get("unique", False)),
                )
                for p in specs
            )
            for side, specs in data.get("custom_properties", {}).items()
        },
    }


def mapping_version(data: dict[str, Any]) -> str:
    """A digest of a mapping's content: it changes with what the file says, not with its layout."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _checked(path: str | Path, kind: str) -> dict[str, Any]:
    data, problems = check_mapping(path)
    if problems:
        raise MappingError(problems)
    if data.get("object") != kind:
        raise MappingError(
            [
                MappingProblem(
                    str(path),
                    1,
                    f"this is a mapping of {data.get('object')}, but {kind} are needed here",
                )
            ]
        )
    return data


def file_digest(path: str | Path) -> str:
    """A digest of a file's bytes ("" when it cannot be read): what a loaded mapping is kept by."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def load_mapping(path: str | Path) -> DealMapping:
    """A checked deal mapping; raises MappingError listing every problem with its line. Loaded once
    per process while the file stays unchanged (a thousand partners share a few mappings)."""
    return _load_deals(str(path), file_digest(path))


def load_notes_mapping(path: str | Path) -> NotesMapping:
    """A checked notes mapping; raises MappingError listing every problem with its line. Loaded
    once per process while the file stays unchanged."""
    return _load_notes(str(path), file_digest(path))


@lru_cache(maxsize=64)
def _load_deals(path: str, _stamp: str) -> DealMapping:
    data = _checked(path, "deals")
    conversion = data.get("conversion", {})
    return DealMapping(
        **_common(data, path),
        registration=ShareRule(**data["share"]["registration"]),
        conversion=ShareRule(**data["share"]["conversion"]),
        partner_owner_email=conversion.get("partner_owner_email"),
        welcome_note=conversion.get("welcome_note"),
        on_create={side: dict(values) for side, values in data.get("on_create", {}).items()},
    )


@lru_cache(maxsize=64)
def _load_notes(path: str, _stamp: str) -> NotesMapping:
    data = _checked(path, "notes")
    return NotesMapping(
        **_common(data, path),
        share_rules={side: ShareRule(**rule) for side, rule in per_side(data["share"]).items()},
        reply_to_properties=per_side(data.get("reply_to_property", "dealsync_reply_to")),
        attachments_properties=per_side(data.get("attachments_property", "hs_attachment_ids")),
    )
