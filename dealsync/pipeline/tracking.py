"""How a side's changes are found: from a cursor (HubSpot), or by comparing a complete scan with the
last synced snapshot (BottleCRM, which has no change feed and no edit times)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from connectors.base import (
    ChangePage,
    Connector,
    CountRule,
    Record,
    counts_records,
    deletion_log,
)
from dealsync.context import RunContext
from dealsync.ledger.inbox import HUB, InboxEntry
from dealsync.model import Side
from dealsync.pipeline.census import Census
from dealsync.snapshots import Seen, observe


@dataclass
class CursorTracker:
    """Records modified since the stored cursor (all of them on a first or full run); the census of
    counted records follows every record pulled. A scoped tracker pulls only the records its census
    counts (the pair's own): the linked ones that leave it are found by the count."""

    connector: Connector
    object_type: str
    since: int | None
    properties: list[str]
    census: Census | None = None
    scoped: bool = False
    cursor: int | None = None
    seen: int = 0
    deleted: set[str] | None = None  # from the CRM's deletion log, where it keeps one

    def __post_init__(self) -> None:
        self.cursor = self.since

    def pages(self) -> Iterator[list[Record]]:
        """Changed records, page by page. The cursor moves with them, and with time: a pull that
        started at S saw everything modified before S minus the lookback, so the next one starts
        its lookback at S, not at the last change (a quiet CRM is not re-read forever)."""
        started = int(time.time() * 1000)
        for page in self._changes():
            self.seen += len(page.records)
            self.cursor = page.cursor
            if self.census is not None:
                for record in page.records:
                    self.census.saw(record)
            yield list(page.records)
        self.cursor = max(self.cursor or 0, started)
        if self.since is not None and (log := deletion_log(self.connector)) is not None:
            self.deleted = log.deleted_since(self.object_type, self.since)

    def _changes(self) -> Iterator[ChangePage]:
        counter = counts_records(self.connector)
        if self.scoped and self.census is not None and counter is not None:
            return counter.pull_matching(
                self.object_type, self.since, self.properties, self.census.rule
            )
        return self.connector.pull_changes(self.object_type, self.since, self.properties)

    def observe(self, record: Record, forced: bool = False) -> Record | None:
        """A record the CRM reported as changed is changed."""
        return record

    def lookup(self, ids: Iterable[str]) -> dict[str, Record] | None:
        """Cursor CRMs are read by id (None: ask the CRM)."""
        return None

    @property
    def scanned(self) -> Mapping[str, Record] | None:
        """No complete scan: deletions are asked for (archived records)."""
        return None

    @property
    def snapshot(self) -> dict[str, Seen] | None:
        return None

    @property
    def changed(self) -> int:
        return self.seen

    @property
    def checks(self) -> set[str] | None:
        """Its own count finds what to check (see `census.py`)."""
        return None


@dataclass
class InboxTracker:
    """The vendor side of a pair the hub serves: what a hub read routed to the pair (changed records
    as the hub read them, and linked records its count no longer vouches for, to check by id); the
    run's commit consumes them. Its census is the hub's, which the run's own creates and deletions
    keep exact."""

    entries: list[InboxEntry]
    census: Census | None = None
    cursor: int | None = None  # the hub keeps the cursor
    seen: int = 0

    def pages(self) -> Iterator[list[Record]]:
        """The changed records routed to the pair, in one page."""
        records = [e.record for e in self.entries if e.record is not None]
        self.seen = len(records)
        if records:
            yield records

    def observe(self, record: Record, forced: bool = False) -> Record | None:
        """A routed record is a changed one."""
        return record

    def lookup(self, ids: Iterable[str]) -> dict[str, Record] | None:
        """Read by id from the CRM."""
        return None

    @property
    def scanned(self) -> Mapping[str, Record] | None:
        return None

    @property
    def scoped(self) -> bool:
        """The hub reads only marked records: a linked one to check may have left the scope."""
        return True

    @property
    def snapshot(self) -> dict[str, Seen] | None:
        return None

    @property
    def changed(self) -> int:
        return self.seen

    @property
    def checks(self) -> set[str] | None:
        """The linked records the hub's count no longer finds, or never counted."""
        return {e.record_id for e in self.entries if e.kind == "check"}

    @property
    def consumed(self) -> list[tuple[str, int]]:
        """The inbox entries this run takes (its commit removes them)."""
        return [(e.record_id, e.seq) for e in self.entries]


@dataclass
class SnapshotTracker:
    """Every record of a complete scan, compared with the content hashes of the last synced scan;
    a changed record is stamped with when a scan first saw its content (its modification time)."""

    source: Callable[[], Iterable[list[Record]]]
    previous: Mapping[str, Seen]
    full: bool = False
    cursor: int | None = None
    hashes: dict[str, Seen] = field(default_factory=dict)
    scan: dict[str, Record] = field(default_factory=dict)
    scan_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    count: int = 0

    def pages(self) -> Iterator[list[Record]]:
        """The complete scan, page by page."""
        yield from self.source()

    def observe(self, record: Record, forced: bool = False) -> Record | None:
        """The record, stamped, when it changed since the last synced scan (or on a full run)."""
        observed = observe(record, self.previous, self.scan_ms)
        self.scan[record.id] = observed.record
        self.hashes[record.id] = observed.seen
        if not (observed.changed or self.full or forced):
            return None
        self.count += 1
        return observed.record

    def lookup(self, ids: Iterable[str]) -> dict[str, Record] | None:
        """Records of the scan (a record missing from a complete scan does not exist)."""
        return {i: self.scan[i] for i in ids if i in self.scan}

    @property
    def scanned(self) -> Mapping[str, Record] | None:
        return self.scan

    @property
    def census(self) -> Census | None:
        """A complete scan needs no count."""
        return None

    @property
    def scoped(self) -> bool:
        """A complete scan sees every record."""
        return False

    @property
    def snapshot(self) -> dict[str, Seen] | None:
        return self.hashes

    @property
    def changed(self) -> int:
        return self.count

    @property
    def checks(self) -> set[str] | None:
        """A complete scan checks every link itself."""
        return None


ChangeTracker = CursorTracker | SnapshotTracker | InboxTracker


def cursor_tracker(
    ctx: RunContext,
    side: Side,
    object_type: str,
    properties: list[str],
    rule: CountRule | None,
    scoped: bool = False,
) -> CursorTracker | InboxTracker:
    """A side's changes since its stored cursor (everything on a first or `--full` run), with the
    census its deletions are found by, where the CRM can count records by the rule; `scoped` pulls
    only the records the rule matches (safe when every twin the pair creates matches it). A vendor
    side the hub serves takes its changes from the pair's inbox instead."""
    if side == "vendor" and (entries := ctx.inbox(object_type)) is not None:
        return InboxTracker(entries, _hub_census(ctx, object_type))
    since = None if ctx.full_resync else ctx.ledger.cursor(ctx.pair, side, object_type)
    connector = ctx.connectors[side]
    census = None
    if rule is not None and counts_records(connector) is not None:
        known = ctx.ledger.known_census(ctx.pair, side, object_type)
        census = Census.start(rule, known, complete=since is None)
    return CursorTracker(connector, object_type, since, properties, census, scoped)


def _hub_census(ctx: RunContext, object_type: str) -> Census | None:
    """The hub's census of an object type, which a run's creates and deletions on the vendor keep
    exact (so the next hub read's count does not fall short of them)."""
    hub = ctx.hub
    if hub is None or object_type not in hub.rules:
        return None
    known = ctx.ledger.known_census(HUB, "vendor", object_type)
    return Census.start(hub.rules[object_type], known, complete=False, owner=HUB)
