"""The query planner's statistics after a bulk write: PostgreSQL plans by them, and a table that
grew by a hundred thousand rows since they were taken gets plans made for an empty one (a membership
query over the vendor hub's census scanned all of it: 2 s a query, minutes a cycle). Autovacuum
analyzes such tables in time when it runs; where it is off, or has not come round yet, the ledger
analyzes them itself."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

BULK_ROWS = 1_000  # rows a commit writes past which it refreshes the statistics of what it wrote


def refresh_statistics(sessions: sessionmaker[Session], tables: tuple[str, ...]) -> None:
    """ANALYZE `tables` (PostgreSQL; SQLite's planner does without)."""
    with sessions.begin() as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(sa.text(f"ANALYZE {', '.join(tables)}"))
