"""What notes bring to the shared steps: how their changes are found, their deals, what may cross."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from connectors.base import CountRule, PropertyMatch, Record, notes_in_deals
from dealsync.context import RunContext
from dealsync.mapping import NotesMapping
from dealsync.merges import side_id
from dealsync.model import SIDES, Link, Side, Welcome
from dealsync.pipeline.tracking import (
    ChangeTracker,
    InboxTracker,
    SnapshotTracker,
    cursor_tracker,
)
from dealsync.plan import parse_key

NOTES = "notes"


@dataclass
class NotePhase:
    """Notes, for the shared steps; `new_deals` are the deal links made earlier in this run."""

    ctx: RunContext
    new_deals: Sequence[Link] = ()
    welcome: Sequence[Welcome] = ()
    object_type: str = NOTES
    noun: str = "note"
    _scanned_parents: dict[Side, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def mapping(self) -> NotesMapping:
        return self.ctx.notes

    @cached_property
    def deal_twins(self) -> dict[Side, dict[str, str]]:
        """Each shared deal's twin, by side (the deals notes may live on), read when first needed."""
        links = self.ctx.ledger.linked_ids(self.ctx.pair)
        return {
            "partner": {lk.partner_id: lk.vendor_id for lk in links},
            "vendor": {lk.vendor_id: lk.partner_id for lk in links},
        }

    def properties(self, side: Side) -> list[str]:
        return self.mapping.properties(side)

    def tracker(self, side: Side) -> ChangeTracker:
        ctx, connector = self.ctx, self.ctx.connectors[side]
        if connector.capabilities.change_detection == "snapshot":
            previous = ctx.ledger.snapshot(ctx.pair, side, NOTES)
            return SnapshotTracker(lambda: self._scan(side), previous, ctx.full_resync)
        # Notes and comments this pair creates are marked shared or answer a note: always counted.
        rule = self.count_rule(side)
        tracker = cursor_tracker(ctx, side, NOTES, self.properties(side), rule, scoped=True)
        if isinstance(tracker, InboxTracker):  # the hub read each note's deals with it
            self._scanned_parents[side] = {
                e.record_id: e.parents for e in tracker.entries if e.record is not None
            }
        return tracker

    def count_rule(self, side: Side) -> CountRule:
        """The notes a side counts: those marked shared, and comments (which answer a note)."""
        alternatives = [self.mapping.share(side).count_match(self.ctx.pair)]
        if reply_to := self.mapping.reply_to(side):
            alternatives.append(PropertyMatch(reply_to, "present"))
        return CountRule(tuple(alternatives))

    def _scan(self, side: Side) -> Iterator[list[Record]]:
        """A CRM with no change feed: every note on the pair's shared deals, read deal by deal."""
        by_deal = notes_in_deals(self.ctx.connectors[side]).deal_notes(list(self.deal_twins[side]))
        parents: dict[str, tuple[str, ...]] = {}
        notes: dict[str, Record] = {}
        for deal, records in by_deal.items():
            for record in records:
                parents[record.id] = (*parents.get(record.id, ()), deal)
                notes[record.id] = record
        self._scanned_parents[side] = parents
        yield list(notes.values())

    def extra_ids(self, side: Side) -> list[str]:
        """Notes already on a deal when it became shared in this run are not "changed": read them."""
        deals = [side_id(link, side) for link in self.new_deals]
        if not deals:
            return []
        found = self.ctx.connectors[side].associations("deals", NOTES, deals)
        return list(dict.fromkeys(n for ids in found.values() for n in ids))

    def parents(self, side: Side, records: Sequence[Record]) -> dict[str, tuple[str, ...]]:
        """The deals each note is on."""
        known = self._scanned_parents.get(side, {})
        result = {r.id: known[r.id] for r in records if r.id in known}
        missing = [r.id for r in records if r.id not in known]
        if missing:
            result.update(self.ctx.connectors[side].associations(NOTES, "deals", missing))
        return result

    def visible(self, side: Side, record: Record, parents: tuple[str, ...], linked: bool) -> bool:
        """Linked notes, notes whose key claims this pair (the planner judges it), and notes on shared
        deals that are marked shared or answer a note; a welcome note never crosses back."""
        mapping = self.mapping
        if linked:
            return True
        if record.id in self._own(side):
            return False
        key_prop = mapping.key(side)
        key = (record.properties.get(key_prop) or "").strip() if key_prop else ""
        on_shared_deal = any(d in self.deal_twins[side] for d in parents)
        if key:
            return on_shared_deal or parse_key(self.ctx.pair, key) is not None
        if not on_shared_deal:
            return False
        share = mapping.share(side)
        if (record.properties.get(share.property) or "").strip():
            return share.matches(record.properties, self.ctx.pair)
        reply_to = mapping.reply_to(side)
        return bool(reply_to and (record.properties.get(reply_to) or "").strip())

    def _own(self, side: Side) -> Collection[str]:
        """Welcome notes dealsync wrote where notes hold no key (known by their intents)."""
        if self.mapping.key(side):
            return ()
        return self.ctx.ledger.welcome_notes(self.ctx.pair, side)

    def lost(
        self, records: Mapping[Side, Mapping[str, Record]], links: Iterable[Link]
    ) -> set[tuple[Side, str]]:
        """Linked notes now marked private: for the other side they are gone (the deletion policy
        applies), so nothing written after the change ever crosses."""
        private: set[tuple[Side, str]] = set()
        for link in links:
            for side in SIDES:
                record = records[side].get(side_id(link, side))
                rule = self.mapping.share(side)
                flag = (record.properties.get(rule.property) or "").strip() if record else ""
                if record and flag and not rule.matches(record.properties, self.ctx.pair):
                    private.add((side, record.id))
        return private

    def settled(self, side: Side, record: Record, link: Link) -> bool:
        """Notes are always planned (their text, files and replies have no base to compare)."""
        return False
