"""Step 1, pull: the records of both sides that matter to this pair, for any synced object.

Changed records come from each side's change tracker, page by page; records already linked, or that
this pair may see, are kept. Quarantined records are read again, the other side of every touched link
is read, deletions are found, and merges are followed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from connectors.base import Record, counts_records
from dealsync.mapping_changes import MappingChange, field_fingerprints
from dealsync.merge_reads import Merging
from dealsync.merges import Merge, side_id
from dealsync.model import SIDES, Link, LinkedIds, Side
from dealsync.pipeline.census import Census
from dealsync.pipeline.phase import Phase
from dealsync.pipeline.tracking import ChangeTracker, CursorTracker, InboxTracker
from dealsync.snapshots import Seen


@dataclass
class Pulled:
    """What a pull found: records of both sides, their parents, the links they touch, deletions."""

    object_type: str
    records: dict[Side, dict[str, Record]]
    parents: dict[Side, dict[str, tuple[str, ...]]]  # a note's deals (empty for deals)
    links: list[Link]
    gone: set[tuple[Side, str]]
    cursors: dict[Side, int | None]
    counts: dict[str, int] = field(default_factory=dict)
    snapshots: dict[Side, dict[str, Seen]] = field(default_factory=dict)  # complete scans
    merges: list[Merge] = field(default_factory=list)  # links that follow (or end with) a merge
    census: dict[Side, Census] = field(default_factory=dict)  # the counted records of cursor sides
    mapping_change: MappingChange | None = None  # the synced fields since the last commit
    backfilled: int = 0  # linked records read again because the mapping's fields changed
    inbox: list[tuple[str, int]] = field(default_factory=list)  # hub entries taken: (id, seq)


@dataclass
class _Reading:
    """A pull in progress."""

    phase: Phase
    merging: Merging
    records: dict[Side, dict[str, Record]] = field(
        default_factory=lambda: {"partner": {}, "vendor": {}}
    )
    parents: dict[Side, dict[str, tuple[str, ...]]] = field(
        default_factory=lambda: {"partner": {}, "vendor": {}}
    )
    links: dict[int, Link] = field(default_factory=dict)
    trackers: dict[Side, ChangeTracker] = field(default_factory=dict)

    def accept(self, side: Side, batch: list[Record], retried: bool = False) -> None:
        """Keep the records of a batch this pair may see (retried ones are judged by the planner)."""
        ctx, phase = self.phase.ctx, self.phase
        found = ctx.ledger.links_for(ctx.pair, side, [r.id for r in batch], phase.object_type)
        self.links.update({link.id: link for link in found})  # type: ignore[misc]
        linked = {side_id(link, side) for link in found}
        of = phase.parents(side, batch)
        for record in batch:
            parents = of.get(record.id, ())
            if not retried and not phase.visible(side, record, parents, record.id in linked):
                continue
            kept = self.trackers[side].observe(record, forced=retried)
            if kept is not None:
                self.records[side][kept.id] = kept
                self.parents[side][kept.id] = parents

    def read(self, side: Side, ids: list[str]) -> dict[str, Record]:
        """Records by id: from the side's complete scan, or from the CRM (following merges)."""
        found = self.trackers[side].lookup(ids)
        return self.merging.read(side, ids) if found is None else found

    def counterparts(self, gone: set[tuple[Side, str]]) -> None:
        """Read the records of touched links the run has not read yet, with their parents."""
        for side in SIDES:
            wanted = [
                side_id(link, side)
                for link in self.links.values()
                if side_id(link, side) not in self.records[side]
                and (side, side_id(link, side)) not in gone
            ]
            if wanted:
                found = self.read(side, wanted)
                self.records[side].update({i: r for i, r in found.items() if r.id == i})
                gone.update((side, i) for i in wanted if i not in found)
        self.merging.follow(self.records, self.links)
        for side in SIDES:
            missing = [r for i, r in self.records[side].items() if i not in self.parents[side]]
            if missing:
                of = self.phase.parents(side, missing)
                self.parents[side].update({r.id: of.get(r.id, ()) for r in missing})


def pull(phase: Phase) -> Pulled:
    """Changed records of both sides (by cursor, or by comparing a complete scan with the snapshot),
    quarantined ones, the other side of touched links, deletions, and merges to follow."""
    ctx = phase.ctx
    reading = _Reading(phase, Merging(ctx, phase.object_type, phase.properties))
    cursors: dict[Side, int | None] = {}
    counts: dict[str, int] = {}
    asked: dict[Side, set[str]] = {}  # read though unchanged (extra ids), or in quarantine
    versions = ctx.mapping_versions()
    for side in SIDES:
        tracker = reading.trackers[side] = phase.tracker(side)
        for page in tracker.pages():
            reading.merging.saw(side, page)
            reading.accept(side, page)
        cursors[side] = tracker.cursor
        counts[f"{side} changed"] = tracker.changed
        counts[f"{side} relevant"] = len(reading.records[side])
        extra = [i for i in phase.extra_ids(side) if i not in reading.records[side]]
        if extra:
            reading.accept(side, _unique(reading.read(side, extra).values()))
        waiting = [
            e
            for e in ctx.ledger.open_quarantine(ctx.pair, side)
            if e.object_type == phase.object_type
        ]
        retry = [
            e.record_id
            for e in waiting
            if e.due(versions.get(e.object_type)) and e.record_id not in reading.records[side]
        ]
        if retry:
            reading.accept(side, _unique(reading.read(side, retry).values()), retried=True)
        asked[side] = {*extra, *(e.record_id for e in waiting)}
    change = MappingChange.between(
        ctx.ledger.mapping_fields(ctx.pair, phase.object_type),
        field_fingerprints(phase.mapping.synced_fields()),
    )
    if not change.differs:
        _set_aside_settled(reading, asked)
    backfilled = _backfill(reading) if change.backfills else 0
    reading.merging.follow(reading.records, reading.links)
    gone = _deletions(reading)
    gone |= phase.lost(reading.records, reading.links.values())
    snapshots = {
        side: snapshot
        for side, tracker in reading.trackers.items()
        if (snapshot := tracker.snapshot) is not None
    }
    return Pulled(
        phase.object_type,
        reading.records,
        reading.parents,
        list(reading.links.values()),
        gone,
        cursors,
        counts,
        snapshots,
        reading.merging.merges,
        {
            side: census
            for side, tracker in reading.trackers.items()
            if (census := tracker.census) is not None
        },
        change,
        backfilled,
        [taken for tracker in reading.trackers.values() for taken in _consumed(tracker)],
    )


def _set_aside_settled(reading: _Reading, asked: dict[Side, set[str]]) -> None:
    """Linked records that read as their link's base agreed (a run's own writes read back, or a
    change no run acts on) while their twin did not change: nothing to plan, so their twins are
    not read (after a first sync, the run that reads its writes back reads no twin)."""
    phase = reading.phase
    for link_id, link in list(reading.links.items()):
        present = [side for side in SIDES if side_id(link, side) in reading.records[side]]
        if link.state != "active" or len(present) != 1:
            continue
        side = present[0]
        record = reading.records[side][side_id(link, side)]
        if record.id in asked[side] or record.merged_from or not phase.settled(side, record, link):
            continue
        del reading.records[side][record.id]
        reading.parents[side].pop(record.id, None)
        del reading.links[link_id]


def _consumed(tracker: ChangeTracker) -> list[tuple[str, int]]:
    """The hub's inbox entries a tracker took (its run's commit consumes them)."""
    return tracker.consumed if isinstance(tracker, InboxTracker) else []


def _backfill(reading: _Reading) -> int:
    """Fields were added to the mapping or changed: every linked record is read (100 a call) and
    planned like a changed one, so the new rules reach the records shared before them."""
    ctx, phase = reading.phase.ctx, reading.phase
    linked = ctx.ledger.linked_ids(ctx.pair, phase.object_type)
    for side in SIDES:
        wanted = [i for link in linked if (i := side_id(link, side)) not in reading.records[side]]
        if wanted:
            found = reading.read(side, wanted)
            reading.accept(side, _unique(r for i, r in found.items() if r.id == i), retried=True)
    return len(linked)


def _deletions(reading: _Reading) -> set[tuple[Side, str]]:
    """Linked records deleted on either side; a linked id that reads as another record, or shows as
    archived but reads as another record, was merged: its link follows the survivor instead."""
    ctx, merging = reading.phase.ctx, reading.merging
    gone: set[tuple[Side, str]] = set()
    reading.counterparts(gone)
    # Deletions change no modification time: on a snapshot CRM a linked record missing from the
    # complete scan is gone; a cursor CRM is asked which linked records are archived.
    linked = _LinkedIds(reading)
    for side in SIDES:
        ids = _to_check(reading, side, linked)
        deleted = merging.deleted(side, ids, reading.trackers[side].scanned)
        gone.update((side, i) for i in deleted)
        if reading.trackers[side].scoped:
            settled = deleted | set(merging.survivors[side]) | set(reading.records[side])
            _read_out_of_scope(reading, side, [i for i in ids if i not in settled])
    merging.follow(reading.records, reading.links)
    ended = [
        link.id
        for link in linked.of(gone)
        if link.id not in reading.links and any((s, side_id(link, s)) in gone for s in SIDES)
    ]
    for link in ctx.ledger.links_by_id(ended):
        reading.links.setdefault(link.id, link)  # type: ignore[arg-type]
    reading.counterparts(gone)
    return gone


def _read_out_of_scope(reading: _Reading, side: Side, ids: list[str]) -> None:
    """A scoped pull never sees a linked record a user took out of the pair's scope (unshared, or
    marked for another partner): the live ones the count no longer finds are read, so the planner
    judges them."""
    if ids:
        found = reading.read(side, ids)
        reading.accept(side, _unique(r for i, r in found.items() if r.id == i))


class _LinkedIds:
    """The pair's active links (those no merge moved in this run), loaded whole only where a side
    must check every one; otherwise asked for by record."""

    def __init__(self, reading: _Reading) -> None:
        self._reading = reading
        self._every: list[LinkedIds] | None = None

    def every(self) -> list[LinkedIds]:
        """Every link (what a snapshot CRM, `--full` or a CRM that cannot count needs)."""
        if self._every is None:
            ctx = self._reading.phase.ctx
            found = ctx.ledger.linked_ids(ctx.pair, self._reading.phase.object_type)
            self._every = self._reading.merging.unfollowed(found)
        return self._every

    def on(self, side: Side, record_ids: Iterable[str]) -> list[LinkedIds]:
        """The links of some records of a side."""
        wanted = set(record_ids)
        if self._every is not None:
            return [link for link in self._every if side_id(link, side) in wanted]
        ctx, object_type = self._reading.phase.ctx, self._reading.phase.object_type
        found = ctx.ledger.links_for(ctx.pair, side, wanted, object_type) if wanted else []
        return self._reading.merging.unfollowed(
            LinkedIds(link.id, link.partner_id, link.vendor_id) for link in found if link.id
        )

    def of(self, records: Iterable[tuple[Side, str]]) -> list[LinkedIds]:
        """The links of records of either side."""
        by_side: dict[Side, set[str]] = {side: set() for side in SIDES}
        for side, record_id in records:
            by_side[side].add(record_id)
        found = {link.id: link for side in SIDES for link in self.on(side, by_side[side])}
        return list(found.values())


def _to_check(reading: _Reading, side: Side, linked: _LinkedIds) -> list[str]:
    """The linked ids whose deletion is checked: every one on a snapshot CRM (its scan decides), on
    `--full`, or where the CRM can neither count nor log deletions; the linked ones its deletion log
    names; otherwise only those the side's count no longer finds
    and those it never counted (see `census.py`), found without loading every link; on a vendor
    side the hub serves, those its count chose."""
    tracker, phase = reading.trackers[side], reading.phase
    if (checks := tracker.checks) is not None:  # the hub's count chose them
        return sorted(i for i in checks if i not in reading.records[side])
    if isinstance(tracker, CursorTracker) and tracker.deleted is not None:
        # The log names a deletion only while it is recent: what the brake held is checked again
        # every run until someone decides (a count or a scan finds it again by itself).
        held = [
            h.link_id
            for h in phase.ctx.ledger.held_deletions(phase.ctx.pair)
            if h.object_type == phase.object_type and h.source == side
        ]
        again = {side_id(link, side) for link in phase.ctx.ledger.links_by_id(held)}
        named = {side_id(link, side) for link in linked.on(side, tracker.deleted | again)}
        return sorted(named)
    census = tracker.census
    counter = counts_records(phase.ctx.connectors[side])
    if census is None or counter is None or phase.ctx.full_resync:
        return [side_id(link, side) for link in linked.every()]
    if not census.ready:
        census.rebuild(counter, phase.object_type)  # once, for a ledger from before the census
        return [side_id(link, side) for link in linked.every()]
    missing = census.uncounted(counter, phase.object_type)
    if missing is None:
        return [side_id(link, side) for link in linked.every()]
    pulled = reading.records[side]
    missing_linked = {side_id(link, side) for link in linked.on(side, missing)}
    return sorted(i for i in census.linked_outside() | missing_linked if i not in pulled)


def _unique(records: Iterable[Record]) -> list[Record]:
    """Records once each (a merged id and its survivor answer with the same record)."""
    return list({r.id: r for r in records}.values())
