"""The ledger's create intents: recorded before a create is sent (keys are claims)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from dealsync.claims import Intent
from dealsync.ledger.models import (
    CreateIntent,
)
from dealsync.ledger.store import LedgerBase


class IntentsMixin(LedgerBase):
    """Create intents: pending until the CRM's answer is committed, then done or failed."""

    def record_intents(
        self, run_id: int, pair: str, object_type: str, intents: Iterable[tuple[str, str, str]]
    ) -> None:
        """Record (key, target side, source id) before the creates are sent.

        An intent an earlier run left pending stays as it is (its create may have happened); one
        that failed or completed before is pending again, for this run."""
        wanted = {key: (target, source_id) for key, target, source_id in intents}
        if not wanted:
            return
        with self.sessions.begin() as s:
            existing = {
                row.key: row
                for row in s.scalars(
                    sa.select(CreateIntent).where(
                        CreateIntent.pair == pair,
                        CreateIntent.object_type == object_type,
                        CreateIntent.key.in_(list(wanted)),
                    )
                )
            }
            for key, (target, source_id) in wanted.items():
                row = existing.get(key)
                if row is None:
                    s.add(
                        CreateIntent(
                            pair=pair,
                            object_type=object_type,
                            key=key,
                            target_side=target,
                            source_id=source_id,
                            run_id=run_id,
                        )
                    )
                elif row.state != "pending":
                    row.state, row.run_id, row.target_id = "pending", run_id, None
                    row.target_side, row.source_id = target, source_id

    def earlier_intents(
        self, pair: str, object_type: str, keys: Iterable[str], run_id: int
    ) -> set[str]:
        """Keys whose create an earlier run announced and never confirmed (it may have happened)."""
        wanted = list(set(keys))
        if not wanted:
            return set()
        with self.sessions() as s:
            return set(
                s.scalars(
                    sa.select(CreateIntent.key).where(
                        CreateIntent.pair == pair,
                        CreateIntent.object_type == object_type,
                        CreateIntent.key.in_(wanted),
                        CreateIntent.state == "pending",
                        CreateIntent.run_id != run_id,
                    )
                )
            )

    def has_pending_intents(self, pair: str) -> bool:
        """Whether a run announced a create it never confirmed (the next run must settle it)."""
        with self.sessions() as s:
            first = s.scalars(
                sa.select(CreateIntent.key)
                .where(CreateIntent.pair == pair, CreateIntent.state == "pending")
                .limit(1)
            ).first()
            return first is not None

    def intents(
        self, pair: str, object_types: Iterable[str], keys: Iterable[str]
    ) -> dict[str, Intent]:
        """This pair's create intents of these object types carrying these keys, by key."""
        wanted = list({k for k in keys if k})
        found: dict[str, Intent] = {}
        with self.sessions() as s:
            for start in range(0, len(wanted), 500):
                rows = s.scalars(
                    sa.select(CreateIntent).where(
                        CreateIntent.pair == pair,
                        CreateIntent.object_type.in_(list(object_types)),
                        CreateIntent.key.in_(wanted[start : start + 500]),
                    )
                )
                found.update(
                    {
                        r.key: Intent(r.key, r.target_side, r.source_id, r.state, r.target_id)  # type: ignore[arg-type]
                        for r in rows
                    }
                )
        return found

    def welcome_notes(self, pair: str, side: str) -> set[str]:
        """Ids of the welcome notes dealsync wrote on a side (they are never copied back)."""
        with self.sessions() as s:
            return set(
                s.scalars(
                    sa.select(CreateIntent.target_id).where(
                        CreateIntent.pair == pair,
                        CreateIntent.target_side == side,
                        CreateIntent.state == "done",
                        CreateIntent.key.like("%:welcome"),
                    )
                )
            )
