"""The values the notes phase passes between its steps."""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.base import Record, WriteOutcome
from dealsync.merges import Merge
from dealsync.model import Link, Side
from dealsync.outcomes import Quarantined
from dealsync.snapshots import Seen


@dataclass
class StashedFile:
    """A file read from one side: where it came from and a local copy for uploading elsewhere."""

    side: Side
    file_id: str
    name: str
    size: int
    path: str


@dataclass
class NotesPulled:
    """Notes of both sides that belong to this pair's shared deals, with their deals and files."""

    records: dict[Side, dict[str, Record]]
    deals: dict[Side, dict[str, tuple[str, ...]]]
    links: list[Link]
    gone: set[tuple[Side, str]]
    cursors: dict[Side, int | None]
    deal_twins: dict[Side, dict[str, str]]
    files: dict[Side, dict[str, str]] = field(default_factory=dict)  # side -> file id -> sha256
    stash: dict[str, StashedFile] = field(default_factory=dict)  # sha256 -> a readable copy
    quarantined: list[Quarantined] = field(default_factory=list)
    welcome: list[tuple[str, str, str, str]] = field(default_factory=list)
    # Complete scans (snapshot CRMs): note id -> content hash and when it was first seen.
    snapshots: dict[Side, dict[str, Seen]] = field(default_factory=dict)
    merges: list[Merge] = field(default_factory=list)  # links that follow (or end with) a merge


@dataclass
class NotesOutcome:
    """What the CRMs confirmed in the notes phase."""

    creates: dict[str, WriteOutcome]
    updates: dict[tuple[Side, str], WriteOutcome]
    deletes: dict[tuple[Side, str], WriteOutcome]
    failures: list[Quarantined]
    files_copied: int = 0
    files_deleted: int = 0
