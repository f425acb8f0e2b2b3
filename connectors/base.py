"""The connector interface every CRM module implements, and the values it speaks in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Literal, Protocol, runtime_checkable

from connectors.errors import ConnectorError


@dataclass(frozen=True)
class Record:
    """One CRM record as its CRM holds it: string property values, timestamps in ISO-8601."""

    id: str
    properties: Mapping[str, str | None]
    created_at: str
    updated_at: str
    archived: bool = False
    archived_at: str | None = None
    associations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    merged_from: tuple[str, ...] = ()  # ids of records a user merged into this one (HubSpot)

    @property
    def modified_ms(self) -> int:
        """When the record last changed, in epoch ms, as its connector knows it (0 when unknown)."""
        if not self.updated_at:
            return 0
        return int(
            datetime.fromisoformat(self.updated_at.replace("Z", "+00:00")).timestamp() * 1000
        )


def content_hash(record: Record) -> str:
    """A stable digest of a record's properties (what snapshot change detection compares)."""
    return hashlib.sha256(json.dumps(dict(record.properties), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ChangePage:
    """A page of changed records and the cursor that is safe to store once the page is committed."""

    records: tuple[Record, ...]
    cursor: int | None


@dataclass(frozen=True)
class WriteInput:
    """One record to write. `ref` is the caller's name for it; `id` is set for updates."""

    ref: str
    properties: Mapping[str, str | None]
    id: str | None = None
    associations: Sequence[
        tuple[str, str, int]
    ] = ()  # (to object type, to id, association type id)


@dataclass(frozen=True)
class WriteOutcome:
    """What happened to one WriteInput: the written record, or the error that kept it out."""

    ref: str
    record: Record | None = None
    error: ConnectorError | None = None
    created: bool = False

    @property
    def ok(self) -> bool:
        """Whether the CRM confirmed the write."""
        return self.error is None


@dataclass(frozen=True)
class Owner:
    """A CRM user who can own records."""

    id: str
    email: str
    first_name: str = ""
    last_name: str = ""
    archived: bool = False


@dataclass(frozen=True)
class FileInfo:
    """A stored file's metadata."""

    id: str
    name: str
    size: int


@dataclass(frozen=True)
class PropertySpec:
    """A custom property a mapping needs on a portal."""

    name: str
    label: str
    type: Literal["string", "number", "date", "datetime", "enumeration", "bool"] = "string"
    field_type: str = "text"
    options: tuple[str, ...] = ()
    unique: bool = False
    group: str = "dealinformation"


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do, so the engine can take the right path for each CRM."""

    change_detection: Literal["cursor", "snapshot"]
    idempotent_create: Literal["upsert", "lookup"]
    max_batch: int
    files_on: Literal["notes", "deals"]
    note_authors: bool = True  # whether a note's author can be set when creating it
    property_history: bool = False  # whether the CRM tells when each property last changed
    cursor_step_ms: int = 1  # the precision of the CRM's modification times (Salesforce: seconds)
    merges: bool = True  # whether users can merge records (Salesforce: not opportunities or notes)


class Connector(Protocol):
    """The operations the sync engine needs from a CRM."""

    kind: str
    capabilities: Capabilities
    notices: list[str]  # what the run report should say of how the connector read (a fallback)

    @property
    def calls(self) -> int:
        """API calls made so far."""
        ...

    def guard_writes(self, guard: Callable[[], None] | None) -> None:
        """Call `guard` before every call that writes (it raises to stop the write)."""
        ...

    def pull_changes(
        self, object_type: str, since_ms: int | None, properties: Sequence[str]
    ) -> Iterator[ChangePage]:
        """Records changed since the cursor (all records when None), page by page."""
        ...

    def list_archived(self, object_type: str, properties: Sequence[str]) -> Iterator[list[Record]]:
        """Archived (deleted) records, page by page."""
        ...

    def read(
        self,
        object_type: str,
        ids: Iterable[str],
        properties: Sequence[str],
        id_property: str | None = None,
        archived: bool = False,
    ) -> dict[str, Record]:
        """Records by the id (or unique property value) asked for, active or archived; missing ones
        are absent. An id merged into another record answers with that record (its `id` differs)."""
        ...

    def property_times(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """When each property of each record last changed (epoch ms), where the CRM keeps history
        (`capabilities.property_history`); an empty answer elsewhere."""
        ...

    def create(self, object_type: str, inputs: Sequence[WriteInput]) -> list[WriteOutcome]:
        """Create records, one outcome per input, in input order."""
        ...

    def upsert(
        self, object_type: str, id_property: str, inputs: Sequence[WriteInput]
    ) -> list[WriteOutcome]:
        """Create or update records keyed by a unique property (`ref` is the key value)."""
        ...

    def update(self, object_type: str, inputs: Sequence[WriteInput]) -> list[WriteOutcome]:
        """Update records by id."""
        ...

    def archive(self, object_type: str, ids: Sequence[str]) -> list[WriteOutcome]:
        """Archive (delete) records by id."""
        ...

    def associations(
        self, from_type: str, to_type: str, ids: Iterable[str]
    ) -> dict[str, tuple[str, ...]]:
        """Associated record ids per record id."""
        ...

    def associate(
        self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]], type_id: int
    ) -> None:
        """Associate records (from id, to id), idempotently."""
        ...

    def owners(self) -> list[Owner]:
        """Every active owner."""
        ...

    def download_file(self, file_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """A file's bytes, streamed in chunks."""
        ...

    def delete_file(self, file_id: str) -> None:
        """Delete a file."""
        ...

    def ensure_properties(self, object_type: str, specs: Sequence[PropertySpec]) -> list[str]:
        """Create the custom properties that are missing; returns the names created."""
        ...

    def property_problems(
        self, object_type: str, specs: Sequence[PropertySpec], used: Sequence[str]
    ) -> list[str]:
        """What stops a sync, read-only: custom properties missing or of another type, and
        properties the mapping uses (`used`) that the CRM does not have; one sentence each."""
        ...


@dataclass(frozen=True)
class PropertyMatch:
    """One condition a count rule can ask the CRM: a property equal to a value, holding it among its
    `;`-joined values, or set at all. Compared as a CRM's search compares: trimmed, case-insensitive."""

    property: str
    operator: Literal["eq", "contains", "present"] = "eq"
    value: str = ""

    def matches(self, properties: Mapping[str, str | None]) -> bool:
        """Whether a record's properties satisfy the condition."""
        held = (properties.get(self.property) or "").strip().lower()
        if self.operator == "present":
            return bool(held)
        if self.operator == "contains":
            return self.value.lower() in {part.strip() for part in held.split(";")}
        return held == self.value.lower()


@dataclass(frozen=True)
class CountRule:
    """The records a side counts: those satisfying any of the alternatives."""

    alternatives: tuple[PropertyMatch, ...]

    def matches(self, properties: Mapping[str, str | None]) -> bool:
        """Whether a record is one the rule counts."""
        return any(m.matches(properties) for m in self.alternatives)


@runtime_checkable
class CountsRecords(Protocol):
    """A CRM that counts the records matching a rule without reading them (HubSpot search `total`),
    lists their ids within a range of numeric record ids, and pulls only the changes matching it."""

    def pull_matching(
        self,
        object_type: str,
        since_ms: int | None,
        properties: Sequence[str],
        rule: CountRule | None,
    ) -> Iterator[ChangePage]:
        """Records changed since the cursor that match the rule (all changes when None)."""
        ...

    def count(
        self, object_type: str, rule: CountRule, low: int | None = None, high: int | None = None
    ) -> int:
        """How many live records match the rule (ids within [low, high] when given)."""
        ...

    def matching_ids(
        self, object_type: str, rule: CountRule, low: int | None = None, high: int | None = None
    ) -> list[str]:
        """The ids of the live records matching the rule (within [low, high] when given)."""
        ...


def counts_records(connector: Connector) -> CountsRecords | None:
    """The connector's counting, where its CRM can count records by a rule (None elsewhere)."""
    return connector if isinstance(connector, CountsRecords) else None


@runtime_checkable
class LogsDeletions(Protocol):
    """A CRM that keeps a log of deleted records (Salesforce's `deleted/`), so a run on a cursor
    finds deletions without counting or reading every linked record."""

    def deleted_since(self, object_type: str, since_ms: int) -> set[str] | None:
        """The ids deleted since then (less the connector's lookback); None when the log does not
        reach back that far."""
        ...


def deletion_log(connector: Connector) -> LogsDeletions | None:
    """The connector's deletion log, where its CRM keeps one (None elsewhere)."""
    return connector if isinstance(connector, LogsDeletions) else None


@runtime_checkable
class FilesOnNotes(Protocol):
    """A CRM whose files hang on notes (HubSpot): stored files that notes list by id."""

    def upload_file(self, name: str, content: bytes | BinaryIO, folder: str) -> FileInfo:
        """Store a file and return its metadata."""
        ...

    def file_info(self, file_id: str) -> FileInfo | None:
        """A file's metadata, or None when it does not exist."""
        ...


@runtime_checkable
class FilesOnDeals(Protocol):
    """A CRM whose files belong to the deal (BottleCRM attachments)."""

    def deal_attachments(self, deal_ids: Iterable[str]) -> dict[str, tuple[FileInfo, ...]]:
        """The attachments of each deal."""
        ...

    def attach(self, deal_id: str, name: str, content: bytes | BinaryIO) -> FileInfo:
        """Attach a file to a deal."""
        ...


@runtime_checkable
class NotesInDeals(Protocol):
    """A CRM that lists notes (comments) only inside each deal (BottleCRM): read them deal by deal."""

    def deal_notes(self, deal_ids: Iterable[str]) -> dict[str, list[Record]]:
        """The notes of each deal that exists."""
        ...


def notes_in_deals(connector: Connector) -> NotesInDeals:
    """The connector's deal-by-deal note reads, where its CRM lists notes only inside deals."""
    if not isinstance(connector, NotesInDeals):
        raise TypeError(f"{connector.kind} lists notes by themselves, not inside deals")
    return connector


@runtime_checkable
class TracksFileChanges(Protocol):
    """A CRM with files on deals that can tell which deals' files changed since a time (Salesforce:
    documents modified since, and its delete log), so a run reads only those deals' files."""

    def deals_with_changed_files(self, since_ms: int, known: Mapping[str, str]) -> set[str] | None:
        """The deals whose files may have changed since then (less the lookback); `known` maps the
        files already synced to their deals (a deleted file names no deal any more). None when the
        CRM cannot tell (read every deal's files)."""
        ...


def file_changes(connector: Connector) -> TracksFileChanges | None:
    """The connector's file change tracking, where its CRM has it (None elsewhere)."""
    return connector if isinstance(connector, TracksFileChanges) else None


def files_on_notes(connector: Connector) -> FilesOnNotes:
    """The connector's file operations, where its CRM keeps files on notes (its capabilities say)."""
    if connector.capabilities.files_on != "notes" or not isinstance(connector, FilesOnNotes):
        raise TypeError(f"{connector.kind} does not keep files on notes")
    return connector


def files_on_deals(connector: Connector) -> FilesOnDeals:
    """The connector's attachment operations, where its CRM keeps files on deals."""
    if connector.capabilities.files_on != "deals" or not isinstance(connector, FilesOnDeals):
        raise TypeError(f"{connector.kind} does not keep files on deals")
    return connector
