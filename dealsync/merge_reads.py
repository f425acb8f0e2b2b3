"""Reads that follow merges: a linked id that answers as another record moves its link along.

The I/O around the pure `merges.py`: it notes the merge trail of every record a run reads, reads
linked ids so that a merged one is recognised, tells deletions from merges, and moves (or ends) the
links of merged-away records for the rest of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from connectors.base import Record
from dealsync.merges import Merge, follow_merges, side_id
from dealsync.model import SIDES, Link, LinkedIds, Side

if TYPE_CHECKING:
    from dealsync.context import RunContext


class Merging:
    """Finds the records users merged (HubSpot) while a run reads, and moves their links along."""

    def __init__(
        self,
        ctx: RunContext,
        object_type: str = "deals",
        properties: Callable[[Side], list[str]] | None = None,
    ) -> None:
        self.ctx, self.object_type = ctx, object_type
        self.properties = properties or ctx.properties
        self.survivors: dict[Side, dict[str, Record]] = {"partner": {}, "vendor": {}}
        self.merges: list[Merge] = []

    def saw(self, side: Side, found: Iterable[Record]) -> None:
        """Note the merge trail of records just read."""
        for record in found:
            for old in record.merged_from:
                self.survivors[side][old] = record

    def read(self, side: Side, ids: list[str]) -> dict[str, Record]:
        """Records by the id asked for; a merged id answers with its survivor (noted)."""
        found = self.ctx.connectors[side].read(self.object_type, ids, self.properties(side))
        self.saw(side, found.values())
        return found

    def follow(self, records: dict[Side, dict[str, Record]], links: dict[int, Link]) -> None:
        """Move (or end) the links of merged-away records, for the rest of the run."""
        done = {(m.side, m.old_id) for m in self.merges}
        for side in SIDES:
            pending = {
                old: r.id for old, r in self.survivors[side].items() if (side, old) not in done
            }
            if not pending:
                continue
            merged = self.ctx.ledger.links_for(self.ctx.pair, side, pending, self.object_type)
            if not merged:
                continue
            survivors = {pending[side_id(link, side)] for link in merged}
            taken = {
                side_id(link, side)
                for link in self.ctx.ledger.links_for(
                    self.ctx.pair, side, survivors, self.object_type
                )
            }
            for merge in follow_merges(side, pending, merged, taken):
                self.merges.append(merge)
                links.pop(merge.link.id, None)  # type: ignore[arg-type]
                if merge.follows:
                    links[merge.link.id] = merge.relinked()  # type: ignore[index]
                    records[side].setdefault(merge.new_id, self.survivors[side][merge.old_id])

    def deleted(
        self, side: Side, ids: list[str], scanned: Mapping[str, object] | None = None
    ) -> set[str]:
        """Which linked ids were deleted: missing from a complete scan (snapshot CRMs), or archived
        (cursor CRMs). An id merged away shows as archived too, but reads as its survivor: not gone."""
        if scanned is not None:
            return {i for i in ids if i not in scanned}
        if not ids:
            return set()
        connector = self.ctx.connectors[side]
        archived = connector.read(self.object_type, ids, [], archived=True)
        if not connector.capabilities.merges:
            return set(archived)
        merged = {old for old, r in self.read(side, list(archived)).items() if r.id != old}
        return set(archived) - merged

    def unfollowed(self, links: Iterable[LinkedIds]) -> list[LinkedIds]:
        """The links no merge has moved or ended in this run."""
        moved = {m.link.id for m in self.merges}
        return [link for link in links if link.id not in moved]
