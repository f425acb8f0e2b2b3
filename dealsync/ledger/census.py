"""The ledger's census of counted records (per pair, side, object) and its cache of owners."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.base import Owner
from dealsync.ledger.models import CensusRow, Cursor, LinkRow, OwnerCacheRow
from dealsync.ledger.store import LedgerBase

HUB = "*"  # the ledger's name for the vendor hub, read once for every pair (no partner id is it)


@dataclass(frozen=True)
class LedgerCensus:
    """A side's census as the ledger holds it, asked piece by piece: a quiet run counts it and asks
    about the few records it touched, and loads it whole only to find which records went missing."""

    ledger: LedgerBase
    pair: str
    side: str
    object_type: str

    def _where(self) -> tuple[sa.ColumnElement[bool], ...]:
        return (
            CensusRow.pair == self.pair,
            CensusRow.side == self.side,
            CensusRow.object_type == self.object_type,
        )

    def size(self) -> int:
        """How many records the census holds."""
        with self.ledger.sessions() as s:
            found = s.scalar(
                sa.select(sa.func.count()).select_from(CensusRow).where(*self._where())
            )
            return int(found or 0)

    def members(self, record_ids: Iterable[str]) -> set[str]:
        """Which of `record_ids` the census holds."""
        ids, found = sorted(set(record_ids)), set()
        with self.ledger.sessions() as s:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                found |= set(
                    s.scalars(
                        sa.select(CensusRow.record_id).where(
                            *self._where(), CensusRow.record_id.in_(chunk)
                        )
                    )
                )
        return found

    def ids(self) -> set[str]:
        """Every record the census holds."""
        with self.ledger.sessions() as s:
            return set(s.scalars(sa.select(CensusRow.record_id).where(*self._where())))

    def linked_outside(self) -> list[str]:
        """The side's records of active links that the census does not hold (the count cannot vouch
        for them: unshared since, or never counted)."""
        record = LinkRow.partner_id if self.side == "partner" else LinkRow.vendor_id
        # The hub's census counts the vendor records of every pair's links.
        of_pair = () if self.pair == HUB else (LinkRow.pair == self.pair,)
        linked = sa.select(record).where(
            *of_pair, LinkRow.object_type == self.object_type, LinkRow.state == "active"
        )
        # A set difference, not NOT EXISTS: with statistics a bulk commit has made stale, the
        # planner ran NOT EXISTS as a nested loop (7 minutes at 100,000 links, not 0.1 s).
        counted = sa.select(CensusRow.record_id).where(*self._where())
        with self.ledger.sessions() as s:
            return list(s.scalars(sa.except_(linked, counted)))


class CensusMixin(LedgerBase):
    """What a side's count should find, and the owners last read."""

    def known_census(self, pair: str, side: str, object_type: str) -> LedgerCensus | None:
        """The census of what the side's count rule matched when last known; None until a complete
        pull built it."""
        with self.sessions() as s:
            cursor = s.get(Cursor, (pair, side, object_type))
            if cursor is None or not cursor.census_ready:
                return None
        return LedgerCensus(self, pair, side, object_type)

    def owners_read(self, pair: str, side: str, newer_than_ms: int) -> list[Owner] | None:
        """A side's owners as last read, when read after `newer_than_ms`."""
        with self.sessions() as s:
            row = s.get(OwnerCacheRow, (pair, side))
            if row is None or row.read_at_ms <= newer_than_ms:
                return None
            return [Owner(**o) for o in row.owners]

    def keep_owners(self, pair: str, side: str, owners: list[Owner], read_at_ms: int) -> None:
        """Remember a side's owners as read now (another run keeping them at the same moment
        leaves its copy, as fresh as this one)."""
        try:
            with self.sessions.begin() as s:
                row = s.get(OwnerCacheRow, (pair, side))
                if row is None:
                    row = OwnerCacheRow(pair=pair, side=side)
                    s.add(row)
                row.read_at_ms = read_at_ms
                row.owners = [asdict(o) for o in owners]
        except IntegrityError:
            pass


@dataclass(frozen=True)
class CensusChange:
    """A run's changes to a side's census; `rebuilt` replaces it whole (a complete pull saw every record)."""

    added: frozenset[str]
    removed: frozenset[str]
    rebuilt: bool = False
    owner: str = ""  # whose census it is: a pair's, or the hub's (empty: the committing run's pair)


def save_census(s: Session, pair: str, side: str, object_type: str, change: CensusChange) -> None:
    """Apply a run's census changes in the commit's transaction, and mark the census ready."""
    where = (CensusRow.pair == pair, CensusRow.side == side, CensusRow.object_type == object_type)
    if change.rebuilt:
        s.execute(sa.delete(CensusRow).where(*where))
    gone = sorted(change.removed)
    for start in range(0, len(gone), 500):
        chunk = gone[start : start + 500]
        s.execute(sa.delete(CensusRow).where(*where, CensusRow.record_id.in_(chunk)))
    added = [
        {"pair": pair, "side": side, "object_type": object_type, "record_id": rid}
        for rid in sorted(change.added)
    ]
    if added:  # a record another run (or the hub) added meanwhile is kept once
        s.execute(_insert_new(s, CensusRow), added)
    cursor = s.get(Cursor, (pair, side, object_type))
    if cursor is not None and change.rebuilt:
        cursor.census_ready = True


def _insert_new(s: Session, table: type[CensusRow]) -> sa.Insert:
    """An INSERT that leaves rows whose key exists alone (SQLite and PostgreSQL alike)."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    return sa.insert(table)
