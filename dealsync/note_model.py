"""The values of the notes plan: a side's note, the writes the notes planner decides, its input."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dealsync.claims import Intent
from dealsync.mapping import NotesMapping
from dealsync.model import (
    Adopt,
    Conflict,
    Delete,
    FieldChange,
    Link,
    Side,
    SideRecord,
    Skip,
    Value,
    Welcome,
)

FILES = "files"


@dataclass(frozen=True)
class NoteRecord:
    """One side's note: canonical values plus what notes need beyond fields."""

    record: SideRecord
    deal_ids: tuple[str, ...]
    files: tuple[str, ...]  # sha256 of the attached files that could be read
    author_email: str | None = None
    author_name: str = ""

    @property
    def id(self) -> str:
        return self.record.id


@dataclass(frozen=True)
class NoteCreate:
    """Create the twin of a note on `target`, on the twin deal, idempotently by `key`."""

    target: Side
    source_id: str
    key: str
    deal_id: str
    properties: Mapping[str, str]
    base: Mapping[str, Value]
    files: tuple[str, ...]
    reply_to_source: str | None = None
    welcome: bool = False  # a conversion's welcome note: dealsync's own, it has no twin to link


@dataclass(frozen=True)
class NoteUpdate:
    """Change a linked note: properties, and/or the full set of files it should hold."""

    target: Side
    record_id: str
    link_id: int | None
    properties: Mapping[str, str]
    files: tuple[str, ...] | None
    changed: tuple[str, ...]

    @property
    def changes(self) -> tuple[FieldChange, ...]:
        """What changed, for the audit (notes record the field names)."""
        return tuple(FieldChange(name, None, None) for name in self.changed)


NoteDelete = Delete  # the deletion policy applied to a note link whose note on `source` is gone


@dataclass
class NotePlan:
    """Everything the notes phase of a run intends to write."""

    creates: list[NoteCreate] = field(default_factory=list)
    updates: list[NoteUpdate] = field(default_factory=list)
    deletes: list[NoteDelete] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    adopts: list[Adopt] = field(default_factory=list)
    found: dict[str, str] = field(
        default_factory=dict
    )  # interrupted create's key -> the note it made
    skips: list[Skip] = field(default_factory=list)
    new_bases: dict[int, dict[str, Value]] = field(default_factory=dict)
    removed_files: list[tuple[Side, str]] = field(
        default_factory=list
    )  # (side, sha256) dropped from a note

    @property
    def is_empty(self) -> bool:
        """Whether the plan writes nothing."""
        return not (self.creates or self.updates or self.deletes)


@dataclass(frozen=True)
class NotePlanInput:
    """What the notes phase knows: note links, both sides' notes, the pair's deal links, owners."""

    pair: str
    mapping: NotesMapping
    links: tuple[Link, ...]
    notes: Mapping[Side, Mapping[str, NoteRecord]]
    deal_twins: Mapping[Side, Mapping[str, str]]  # deal id on a side -> its twin's id
    owners: Mapping[Side, Mapping[str, str]] = field(default_factory=dict)  # email -> owner id
    gone: frozenset[tuple[Side, str]] = frozenset()
    welcome: tuple[Welcome, ...] = ()  # of the conversions created in this run
    sync_files: bool = True  # False: leave every note's file list as it is
    # The ledger's word on keys (see claims.py): note create intents by key, notes it already knows.
    intents: Mapping[str, Intent] = field(default_factory=dict)
    known: frozenset[tuple[Side, str]] = frozenset()
