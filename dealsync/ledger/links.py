"""The ledger's links, cursors and per-pair state; what the ledger knows of a record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import sqlalchemy as sa

from dealsync.ledger.models import (
    CreateIntent,
    Cursor,
    DealFileRow,
    LinkRow,
    PairState,
)
from dealsync.ledger.store import LedgerBase, to_link
from dealsync.model import Link, LinkedIds, Side

# Which creates make records of an object type (a vendor file note is a note made by the files phase).
MADE_AS = {"deals": ("deals",), "notes": ("notes", "files")}


class LinksMixin(LedgerBase):
    """Links, cursors, owner turns; the records a pair knows or another pair links."""

    def links_for(
        self, pair: str, side: str, record_ids: Iterable[str], object_type: str = "deals"
    ) -> list[Link]:
        """Active links whose record on `side` is one of `record_ids`."""
        ids = list(set(record_ids))
        column = LinkRow.partner_id if side == "partner" else LinkRow.vendor_id
        found: list[Link] = []
        with self.sessions() as s:
            for start in range(0, len(ids), 500):
                rows = s.scalars(
                    sa.select(LinkRow).where(
                        LinkRow.pair == pair,
                        LinkRow.object_type == object_type,
                        LinkRow.state == "active",
                        column.in_(ids[start : start + 500]),
                    )
                )
                found += [to_link(r) for r in rows]
        return found

    def pairs_linking(
        self,
        side: str,
        record_ids: Iterable[str],
        pairs: Iterable[str],
        object_type: str = "deals",
    ) -> dict[str, set[str]]:
        """Which of `pairs` actively link each of `record_ids` on `side` (unlinked ids left out)."""
        ids, among = list(set(record_ids)), list(set(pairs))
        column = LinkRow.partner_id if side == "partner" else LinkRow.vendor_id
        found: dict[str, set[str]] = {}
        with self.sessions() as s:
            for start in range(0, len(ids), 500):
                rows = s.execute(
                    sa.select(column, LinkRow.pair).where(
                        LinkRow.pair.in_(among),
                        LinkRow.object_type == object_type,
                        LinkRow.state == "active",
                        column.in_(ids[start : start + 500]),
                    )
                )
                for record_id, pair in rows:
                    found.setdefault(record_id, set()).add(pair)
        return found

    def vendor_links(
        self, object_type: str, vendor_ids: Iterable[str]
    ) -> dict[str, tuple[str, Link]]:
        """The active link (and its pair) of each vendor record that has one, whatever the pair (a
        vendor record is linked by one pair at a time)."""
        ids = sorted(set(vendor_ids))
        found: dict[str, tuple[str, Link]] = {}
        with self.sessions() as s:
            for start in range(0, len(ids), 500):
                rows = s.scalars(
                    sa.select(LinkRow).where(
                        LinkRow.object_type == object_type,
                        LinkRow.state == "active",
                        LinkRow.vendor_id.in_(ids[start : start + 500]),
                    )
                )
                found.update((r.vendor_id, (r.pair, to_link(r))) for r in rows)
        return found

    def active_links(self, pair: str, object_type: str = "deals") -> list[Link]:
        """Every active link of a pair."""
        with self.sessions() as s:
            rows = s.scalars(
                sa.select(LinkRow).where(
                    LinkRow.pair == pair,
                    LinkRow.object_type == object_type,
                    LinkRow.state == "active",
                )
            )
            return [to_link(r) for r in rows]

    def linked_ids(self, pair: str, object_type: str = "deals") -> list[LinkedIds]:
        """The ids of every active link of a pair and its two records (no bases: cheap at any size)."""
        with self.sessions() as s:
            rows = s.execute(
                sa.select(LinkRow.id, LinkRow.partner_id, LinkRow.vendor_id).where(
                    LinkRow.pair == pair,
                    LinkRow.object_type == object_type,
                    LinkRow.state == "active",
                )
            )
            return [LinkedIds(i, p, v) for i, p, v in rows.all()]

    def linked_since(self, pair: str, since_ms: int, object_type: str = "deals") -> set[int]:
        """The active links of a pair made at or after a time (epoch ms)."""
        moment = datetime.fromtimestamp(since_ms / 1000, UTC)
        with self.sessions() as s:
            rows = s.scalars(
                sa.select(LinkRow.id).where(
                    LinkRow.pair == pair,
                    LinkRow.object_type == object_type,
                    LinkRow.state == "active",
                    LinkRow.created_at >= moment,
                )
            )
            return set(rows.all())

    def links_by_id(self, link_ids: Iterable[int]) -> list[Link]:
        """Links by their ids."""
        ids = list(set(link_ids))
        found: list[Link] = []
        with self.sessions() as s:
            for start in range(0, len(ids), 500):
                rows = s.scalars(sa.select(LinkRow).where(LinkRow.id.in_(ids[start : start + 500])))
                found += [to_link(r) for r in rows]
        return found

    def count_active_excluding(
        self, pair: str, field: str, values: Iterable[str], object_type: str = "deals"
    ) -> int:
        """Active links whose base value of `field` is none of `values` (counted by the database)."""
        value = LinkRow.base[field].as_string()
        with self.sessions() as s:
            found = s.scalar(
                sa.select(sa.func.count())
                .select_from(LinkRow)
                .where(
                    LinkRow.pair == pair,
                    LinkRow.object_type == object_type,
                    LinkRow.state == "active",
                    sa.or_(value.is_(None), value.not_in(list(values))),
                )
            )
            return int(found or 0)

    def count_links(self, pair: str, state: str = "active", object_type: str = "deals") -> int:
        """How many links of a pair are in a state."""
        with self.sessions() as s:
            found = s.scalar(
                sa.select(sa.func.count())
                .select_from(LinkRow)
                .where(
                    LinkRow.pair == pair, LinkRow.object_type == object_type, LinkRow.state == state
                )
            )
            return int(found or 0)

    def cursor(self, pair: str, side: str, object_type: str = "deals") -> int | None:
        """The stored cursor, or None before the first completed run."""
        with self.sessions() as s:
            row = s.get(Cursor, (pair, side, object_type))
            return row.value if row else None

    def advance_cursors(self, pair: str, cursors: Mapping[tuple[str, str], int]) -> None:
        """Move a pair's cursors forward (by side and object type) where they are behind: what
        a run that found nothing to do commits (never backwards: a run may have gone further)."""
        if not cursors:
            return
        with self.sessions.begin() as s:
            for (side, object_type), value in cursors.items():
                row = s.get(Cursor, (pair, side, object_type))
                if row is not None and value > row.value:
                    row.value = value

    def owner_turn(self, pair: str) -> int:
        """The round-robin position of owner assignment."""
        with self.sessions() as s:
            row = s.get(PairState, pair)
            return row.owner_turn if row else 0

    def known_records(
        self, pair: str, object_type: str, ids: Mapping[Side, Iterable[str]]
    ) -> set[tuple[Side, str]]:
        """The (side, id) of these records that this pair's ledger knows: linked now or before, or
        made by one of its creates (a welcome note, a file note). What it knows, a key cannot claim."""
        known: set[tuple[Side, str]] = set()
        with self.sessions() as s:
            for side, record_ids in ids.items():
                wanted = list(set(record_ids))
                column = LinkRow.partner_id if side == "partner" else LinkRow.vendor_id
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    linked = s.scalars(
                        sa.select(column).where(
                            LinkRow.pair == pair,
                            LinkRow.object_type == object_type,
                            LinkRow.state != "disputed",
                            column.in_(chunk),
                        )
                    )
                    made = s.scalars(
                        sa.select(CreateIntent.target_id).where(
                            CreateIntent.pair == pair,
                            CreateIntent.object_type.in_(MADE_AS[object_type]),
                            CreateIntent.target_side == side,
                            CreateIntent.state == "done",
                            CreateIntent.target_id.in_(chunk),
                        )
                    )
                    known.update((side, i) for i in [*linked, *made] if i)
                    if object_type == "notes" and side == "vendor":
                        carriers = s.scalars(
                            sa.select(DealFileRow.vendor_note_id).where(
                                DealFileRow.pair == pair, DealFileRow.vendor_note_id.in_(chunk)
                            )
                        )
                        known.update((side, i) for i in carriers)
        return known

    def linked_elsewhere(
        self, pair: str, object_type: str, vendor_ids: Iterable[str]
    ) -> dict[str, str]:
        """Vendor records (of these ids) actively linked to a pair other than `pair`: id -> that pair."""
        ids = list(set(vendor_ids))
        found: dict[str, str] = {}
        with self.sessions() as s:
            for start in range(0, len(ids), 500):
                rows = s.execute(
                    sa.select(LinkRow.vendor_id, LinkRow.pair).where(
                        LinkRow.object_type == object_type,
                        LinkRow.pair != pair,
                        LinkRow.state == "active",
                        LinkRow.vendor_id.in_(ids[start : start + 500]),
                    )
                )
                found.update(dict(rows.all()))
        return found
