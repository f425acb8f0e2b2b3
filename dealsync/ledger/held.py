"""Deletions the brake held, kept so that a person's approval applies exactly what was shown."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from dealsync.ledger.models import HeldDeletionRow, utcnow
from dealsync.ledger.store import LedgerBase
from dealsync.model import Delete

Decision = Literal["approved", "rejected"]


@dataclass(frozen=True)
class HeldDeletion:
    """One held deletion as people see it."""

    pair: str
    object_type: str
    link_id: int
    source: str
    target_id: str
    action: str
    state: str
    held_at: datetime
    decided_at: datetime | None
    decided_by: str | None


class HeldMixin(LedgerBase):
    """What the brake holds, and what people decided about it."""

    def hold_deletions(self, pair: str, object_type: str, held: Sequence[Delete]) -> None:
        """The run's held deletions become the pair's held set: new ones wait for a decision,
        decisions on ones held again stand, ones no longer proposed are forgotten."""
        wanted = {d.link_id: d for d in held if d.link_id is not None}
        with self.sessions.begin() as s:
            rows = {
                row.link_id: row
                for row in s.scalars(
                    sa.select(HeldDeletionRow).where(
                        HeldDeletionRow.pair == pair, HeldDeletionRow.object_type == object_type
                    )
                )
            }
            for link_id, row in rows.items():
                if link_id not in wanted:
                    s.delete(row)
            s.add_all(
                HeldDeletionRow(
                    pair=pair,
                    object_type=object_type,
                    link_id=link_id,
                    source=d.source,
                    target_id=d.target_id,
                    action=d.action,
                    state="held",
                )
                for link_id, d in wanted.items()
                if link_id not in rows
            )

    def approved_deletions(self, pair: str, object_type: str) -> frozenset[int]:
        """The links whose held deletion a person approved."""
        with self.sessions() as s:
            return frozenset(
                s.scalars(
                    sa.select(HeldDeletionRow.link_id).where(
                        HeldDeletionRow.pair == pair,
                        HeldDeletionRow.object_type == object_type,
                        HeldDeletionRow.state == "approved",
                    )
                )
            )

    def held_deletions(self, pair: str | None = None) -> list[HeldDeletion]:
        """Every held deletion (of one pair), oldest first."""
        query = sa.select(HeldDeletionRow).order_by(
            HeldDeletionRow.pair, HeldDeletionRow.held_at, HeldDeletionRow.link_id
        )
        if pair:
            query = query.where(HeldDeletionRow.pair == pair)
        with self.sessions() as s:
            return [
                HeldDeletion(
                    r.pair,
                    r.object_type,
                    r.link_id,
                    r.source,
                    r.target_id,
                    r.action,
                    r.state,
                    r.held_at,
                    r.decided_at,
                    r.decided_by,
                )
                for r in s.scalars(query)
            ]

    def decide_deletions(
        self,
        pair: str,
        decision: Decision,
        by: str,
        link_ids: Iterable[int] | None = None,
        object_type: str | None = None,
    ) -> int:
        """Approve or reject the pair's undecided held deletions (or these ones); a rejected one
        may be approved later. Returns how many were decided."""
        undecided = ("held", "rejected") if decision == "approved" else ("held",)
        query = sa.update(HeldDeletionRow).where(
            HeldDeletionRow.pair == pair, HeldDeletionRow.state.in_(undecided)
        )
        if link_ids is not None:
            query = query.where(HeldDeletionRow.link_id.in_(list(link_ids)))
        if object_type is not None:
            query = query.where(HeldDeletionRow.object_type == object_type)
        with self.sessions.begin() as s:
            result = s.execute(query.values(state=decision, decided_at=utcnow(), decided_by=by))
            return int(result.rowcount)  # type: ignore[attr-defined]
