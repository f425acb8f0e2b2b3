"""The query planner's statistics after a bulk write: PostgreSQL plans by them, and a table that
grew by a hundred thousand rows since they were taken gets plans made for an empty one (a membership
query over the vendor hub's census scanned all of it: 2 s a query, minutes a cycle). Autovacuum
analyzes such tables in time when it runs; where it is off, or has not come round yet, the ledger
analyzes them itself, by autovacuum's own rule."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

BULK_ROWS = 1_000  # a commit writing fewer rows than this leaves the statistics alone
_STALE = sa.text(  # autovacuum's rule (threshold 50, scale 0.1), with this module's threshold
    "SELECT relname FROM pg_stat_user_tables WHERE relname IN :tables "
    "AND n_mod_since_analyze > :threshold + 0.1 * n_live_tup"
).bindparams(sa.bindparam("tables", expanding=True))


def refresh_statistics(sessions: sessionmaker[Session], tables: tuple[str, ...]) -> None:
    """ANALYZE those of `tables` that changed by more than a tenth since last analyzed
    (PostgreSQL; SQLite's planner does without)."""
    with sessions.begin() as s:
        if s.get_bind().dialect.name != "postgresql":
            return
        stale = s.scalars(_STALE, {"tables": list(tables), "threshold": BULK_ROWS}).all()
        if stale:
            s.execute(sa.text(f"ANALYZE {', '.join(stale)}"))
