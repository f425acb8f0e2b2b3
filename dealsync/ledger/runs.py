"""The ledger's runs, and the reports made of them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dealsync.ledger.models import (
    ConflictRow,
    Run,
    utcnow,
)
from dealsync.ledger.store import LedgerBase


class RunsMixin(LedgerBase):
    """Runs: started, finished, and what they found."""

    def start_run(self, pair: str, dry_run: bool, full_resync: bool) -> int:
        """Record that a run started; returns its id."""
        with self.sessions.begin() as s:
            run = Run(pair=pair, dry_run=dry_run, full_resync=full_resync, summary={})
            s.add(run)
            s.flush()
            return run.id

    def finish_run(
        self, run_id: int, status: str, summary: dict[str, Any], error: str | None = None
    ) -> None:
        """Record how a run ended."""
        with self.sessions.begin() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise LookupError(f"the ledger has no run {run_id}")
            run.status, run.summary, run.error, run.finished_at = status, summary, error, utcnow()

    def last_run(self, pair: str) -> Run | None:
        """The newest run of a pair."""
        with self.sessions() as s:
            return s.scalars(
                sa.select(Run).where(Run.pair == pair).order_by(Run.id.desc()).limit(1)
            ).first()

    def conflicts(self, pair: str | None = None, limit: int = 50) -> list[ConflictRow]:
        """The newest conflicts."""
        query = sa.select(ConflictRow).order_by(ConflictRow.id.desc()).limit(limit)
        if pair:
            query = query.where(ConflictRow.pair == pair)
        with self.sessions() as s:
            return list(s.scalars(query))

    def count(self, model: Any, pair: str) -> int:
        """Rows of a per-pair table."""
        with self.sessions() as s:
            query = sa.select(sa.func.count()).select_from(model).where(model.pair == pair)
            return int(s.scalar(query) or 0)
