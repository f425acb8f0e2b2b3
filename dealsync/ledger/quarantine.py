"""The ledger's quarantine: records kept out of syncs, with their reasons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dealsync.ledger.models import (
    QuarantineRow,
    utcnow,
)
from dealsync.ledger.store import LedgerBase


@dataclass(frozen=True)
class QuarantineEntry:
    """A quarantined record as reports show it."""

    side: str
    object_type: str
    record_id: str
    stage: str
    reasons: list[str]
    attempts: int
    retriable: bool
    first_seen: Any
    last_seen: Any
    pair: str = ""
    mapping_version: str | None = None

    @property
    def waits_for(self) -> str:
        """What takes it out of quarantine: the next run, or a change only a user can make."""
        if self.retriable:
            return "the next run"
        return "a change: of the record, the mapping, or `dealsync quarantine retry`"

    def due(self, mapping_version: str | None) -> bool:
        """Whether a run should read it again: a retriable failure, or one judged by another
        version of the mapping (`mapping_version`, the current one; None: retry everything)."""
        return self.retriable or mapping_version is None or self.mapping_version != mapping_version


class QuarantineMixin(LedgerBase):
    """Quarantine: put in, retried, resolved, listed."""

    def quarantine(
        self,
        run_id: int | None,
        pair: str,
        side: str,
        record_id: str,
        stage: str,
        reasons: Sequence[str],
        payload: dict[str, Any],
        retriable: bool = True,
        object_type: str = "deals",
        mapping_version: str | None = None,
    ) -> None:
        """Put (or keep) a record in quarantine with its newest reasons; a failure only a change
        can fix remembers the version of the mapping that judged it (`mapping_version`)."""
        with self.sessions.begin() as s:
            row = s.scalars(
                sa.select(QuarantineRow).where(
                    QuarantineRow.pair == pair,
                    QuarantineRow.side == side,
                    QuarantineRow.object_type == object_type,
                    QuarantineRow.record_id == record_id,
                )
            ).first()
            if row is None:
                s.add(
                    QuarantineRow(
                        pair=pair,
                        side=side,
                        object_type=object_type,
                        record_id=record_id,
                        stage=stage,
                        reasons=list(reasons),
                        payload=payload,
                        retriable=retriable,
                        mapping_version=mapping_version,
                        attempts=1,
                        last_run_id=run_id,
                    )
                )
                return
            row.attempts = 1 if row.resolved_at else row.attempts + 1
            row.stage, row.reasons, row.payload, row.retriable = (
                stage,
                list(reasons),
                payload,
                retriable,
            )
            row.mapping_version = mapping_version
            row.last_seen, row.resolved_at, row.last_run_id = utcnow(), None, run_id

    def resolve_quarantine(
        self, pair: str, side: str, record_ids: Iterable[str], object_type: str = "deals"
    ) -> int:
        """Mark quarantined records as fixed; returns how many left quarantine."""
        ids = list(set(record_ids))
        if not ids:
            return 0
        with self.sessions.begin() as s:
            result = s.execute(
                sa.update(QuarantineRow)
                .where(
                    QuarantineRow.pair == pair,
                    QuarantineRow.side == side,
                    QuarantineRow.object_type == object_type,
                    QuarantineRow.record_id.in_(ids),
                    QuarantineRow.resolved_at.is_(None),
                )
                .values(resolved_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def open_quarantine(
        self, pair: str | None = None, side: str | None = None
    ) -> list[QuarantineEntry]:
        """Records still in quarantine."""
        query = (
            sa.select(QuarantineRow)
            .where(QuarantineRow.resolved_at.is_(None))
            .order_by(QuarantineRow.id)
        )
        if pair:
            query = query.where(QuarantineRow.pair == pair)
        if side:
            query = query.where(QuarantineRow.side == side)
        with self.sessions() as s:
            return [
                QuarantineEntry(
                    r.side,
                    r.object_type,
                    r.record_id,
                    r.stage,
                    list(r.reasons),
                    r.attempts,
                    r.retriable,
                    r.first_seen,
                    r.last_seen,
                    r.pair,
                    r.mapping_version,
                )
                for r in s.scalars(query)
            ]

    def due_quarantine(
        self, pair: str, versions: Mapping[str, str], side: str | None = None
    ) -> list[QuarantineEntry]:
        """The pair's quarantined records a run reads again: retriable failures, and failures
        judged by another version of their object's mapping (`versions`, by object type)."""
        return [e for e in self.open_quarantine(pair, side) if e.due(versions.get(e.object_type))]

    def retry_waiting(self, pair: str | None = None) -> int:
        """Let the next run retry the records that wait for a change (a person asked for it)."""
        query = sa.update(QuarantineRow).where(
            QuarantineRow.resolved_at.is_(None), QuarantineRow.retriable.is_(False)
        )
        if pair:
            query = query.where(QuarantineRow.pair == pair)
        with self.sessions.begin() as s:
            result = s.execute(query.values(retriable=True))
            return int(getattr(result, "rowcount", 0) or 0)

    def quarantine_pairs(self) -> dict[str, int]:
        """Open quarantine entries per pair."""
        with self.sessions() as s:
            rows = s.execute(
                sa.select(QuarantineRow.pair, sa.func.count())
                .where(QuarantineRow.resolved_at.is_(None))
                .group_by(QuarantineRow.pair)
            )
            return dict(rows.all())
