"""The vendor hub's side of the ledger: what a hub read routed to each pair (an inbox per pair that
the pair's run consumes in its commit), and when the hub was last read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connectors.base import Record
from dealsync.ledger.census import HUB, CensusChange, save_census
from dealsync.ledger.fencing import Fence, hold
from dealsync.ledger.models import Cursor, HubStateRow, InboxRow
from dealsync.ledger.statistics import BULK_ROWS, refresh_statistics
from dealsync.ledger.store import LedgerBase

__all__ = ["HUB", "HubCommit", "InboxEntry", "InboxMixin", "consume_inbox"]


@dataclass(frozen=True)
class InboxEntry:
    """One record routed to a pair: changed (as the hub read it), or to check by id."""

    record_id: str
    kind: str  # changed | check
    record: Record | None
    parents: tuple[str, ...]
    seq: int  # the hub read that routed it (a later read replaces the entry)


@dataclass(frozen=True)
class HubCommit:
    """What one hub read writes for one object type, in the same transaction as its cursor."""

    object_type: str
    routed: Sequence[tuple[str, str, str, Record | None, tuple[str, ...]]]  # pair, id, kind, ...
    cursor: int | None
    census: CensusChange | None


def record_json(record: Record) -> dict[str, Any]:
    """A record as the inbox keeps it."""
    return {
        "properties": dict(record.properties),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "archived": record.archived,
        "merged_from": list(record.merged_from),
    }


def record_from_json(record_id: str, data: dict[str, Any]) -> Record:
    """A record from the inbox."""
    return Record(
        record_id,
        data.get("properties") or {},
        data.get("created_at") or "",
        data.get("updated_at") or "",
        bool(data.get("archived")),
        merged_from=tuple(data.get("merged_from") or ()),
    )


class InboxMixin(LedgerBase):
    """Hub reads: their routing to pairs' inboxes, their cursors and census, when they ran."""

    def hub_read_number(self) -> int:
        """How many hub reads committed (the next one's entries carry this number plus one)."""
        with self.sessions() as s:
            row = s.get(HubStateRow, HUB)
            return row.reads if row else 0

    def hub_read_after(self, started_ms: int) -> bool:
        """Whether a hub read that started at or after `started_ms` has committed."""
        with self.sessions() as s:
            row = s.get(HubStateRow, HUB)
            return row is not None and row.last_started_ms >= started_ms

    def commit_hub(
        self, started_ms: int, objects: Iterable[HubCommit], fence: Fence | None = None
    ) -> int:
        """Route a hub read's records to the pairs' inboxes, and advance its cursors and census,
        in one transaction (with the hub's lease proven held); returns the read's number."""
        objects = list(objects)
        with self.sessions.begin() as s:
            if fence is not None:
                hold(s, fence)
            state = s.get(HubStateRow, HUB)
            if state is None:
                state = HubStateRow(key=HUB, reads=0, last_started_ms=0)
                s.add(state)
            state.reads += 1
            state.last_started_ms = max(state.last_started_ms, started_ms)
            for done in objects:
                _route(s, done, state.reads)
                if done.cursor is not None:
                    cursor = s.get(Cursor, (HUB, "vendor", done.object_type))
                    if cursor is None:
                        s.add(
                            Cursor(
                                pair=HUB,
                                side="vendor",
                                object_type=done.object_type,
                                value=done.cursor,
                            )
                        )
                    elif done.cursor > cursor.value:
                        cursor.value = done.cursor
                s.flush()
                if done.census is not None:
                    save_census(s, HUB, "vendor", done.object_type, done.census)
            reads = state.reads
        written = sum(
            len(d.routed) + (len(d.census.added) + len(d.census.removed) if d.census else 0)
            for d in objects
        )
        if written > BULK_ROWS:
            refresh_statistics(self.sessions, ("census", "inbox"))
        return reads

    def inbox(self, pair: str, object_type: str) -> list[InboxEntry]:
        """What the hub routed to a pair and its runs have not consumed yet."""
        with self.sessions() as s:
            rows = s.scalars(
                sa.select(InboxRow)
                .where(InboxRow.pair == pair, InboxRow.object_type == object_type)
                .order_by(InboxRow.record_id)
            )
            return [
                InboxEntry(
                    r.record_id,
                    r.kind,
                    record_from_json(r.record_id, r.payload) if r.kind == "changed" else None,
                    tuple(r.parents or ()),
                    r.seq,
                )
                for r in rows
            ]

    def inbox_sizes(self) -> dict[str, int]:
        """How many entries wait in each pair's inbox (pairs with none are left out)."""
        with self.sessions() as s:
            rows = s.execute(sa.select(InboxRow.pair, sa.func.count()).group_by(InboxRow.pair))
            return {pair: int(n) for pair, n in rows}


def consume_inbox(
    s: Session, pair: str, object_type: str, consumed: Iterable[tuple[str, int]]
) -> None:
    """Take entries a run read out of the pair's inbox (in its commit); an entry a later hub read
    replaced stays for the next run."""
    taken = [{"taken_id": record_id, "taken_seq": seq} for record_id, seq in consumed]
    if not taken:
        return
    s.connection().execute(
        sa.delete(InboxRow).where(
            InboxRow.pair == pair,
            InboxRow.object_type == object_type,
            InboxRow.record_id == sa.bindparam("taken_id"),
            InboxRow.seq == sa.bindparam("taken_seq"),
        ),
        taken,
    )


def _route(s: Session, done: HubCommit, seq: int) -> None:
    """Put routed records in the pairs' inboxes; a record routed again replaces its entry."""
    for pair, record_id, kind, record, parents in done.routed:
        key = (pair, done.object_type, record_id)
        row = s.get(InboxRow, key)
        payload = record_json(record) if record is not None else {}
        if row is None:
            s.add(
                InboxRow(
                    pair=pair,
                    object_type=done.object_type,
                    record_id=record_id,
                    kind=kind,
                    payload=payload,
                    parents=list(parents),
                    seq=seq,
                )
            )
        else:
            row.kind, row.payload, row.parents, row.seq = kind, payload, list(parents), seq
