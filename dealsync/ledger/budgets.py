"""A CRM portal's API budget kept in the ledger, so every worker on every machine draws from one.

A token bucket in one row: `next_free_s` is when the portal's next permit is free, on the database's
clock. Taking permits is one UPDATE that books them and answers when they may be used; nobody polls,
so many waiting runs cost the database one statement each per call, and the bucket refills exactly
(unlike a limit that decays by whole slots since its last change, which stops refilling when
contended).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from dealsync.ledger.models import RateBudgetRow
from dealsync.ledger.store import LedgerBase

_UNIX_EPOCH_JULIAN_DAY = 2440587.5


class BudgetsMixin(LedgerBase):
    """Permits from a portal's budget, shared through the ledger."""

    def reserve(self, key: str, permits: int, per_second: float, burst: float) -> float:
        """Book `permits` of the budget `key` (refilled at `per_second`, holding at most `burst`
        unused) and return how many seconds to wait before using them."""
        for _ in range(3):
            with self.sessions.begin() as s:
                now = _now(s.get_bind().dialect.name)
                row = RateBudgetRow.next_free_s
                booked = s.execute(
                    sa.update(RateBudgetRow)
                    .where(RateBudgetRow.key == key)
                    .values(next_free_s=sa.case((row > now, row), else_=now) + permits / per_second)
                    .returning(RateBudgetRow.next_free_s, now)
                ).first()
            if booked is not None:
                # Generic cell rate: these permits start where the bookings before them end; up to
                # `burst` of them may start early, as a bucket that was full would allow.
                next_free, at = (float(v) for v in booked)
                start = next_free - permits / per_second
                return max(start - at - (burst - permits) / per_second, 0.0)
            try:
                with self.sessions.begin() as s:
                    s.add(RateBudgetRow(key=key, next_free_s=0.0))
            except IntegrityError:
                pass  # another worker made it first
        raise RuntimeError(f"the rate budget {key} could not be booked in the ledger")


def _now(dialect: str) -> ColumnElement[float]:
    """The database's clock, in epoch seconds (one clock for every worker)."""
    if dialect == "sqlite":
        return (sa.func.julianday("now") - _UNIX_EPOCH_JULIAN_DAY) * 86400.0
    return sa.cast(sa.extract("epoch", sa.func.now()), sa.Float)
