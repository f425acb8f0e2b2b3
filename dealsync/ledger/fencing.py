"""Fencing: a lease's number, which a run's writes prove they still hold (see lease.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dealsync.ledger.models import Lease, utcnow

TTL_S = 60.0


def aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; the ledger stores UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


@dataclass(frozen=True)
class Fence:
    """Who holds a pair and by which acquisition (and how long a renewal lasts): what a write
    checks it still holds."""

    pair: str
    holder: str
    number: int
    ttl_s: float = TTL_S


class LeaseLost(RuntimeError):
    """The run no longer holds its pair (another took it over): it must write nothing more."""


def hold(s: Session, fence: Fence) -> None:
    """Prove, inside a transaction, that `fence` still holds its pair, and renew the lease; the
    row stays locked until the transaction ends, so no one takes the pair over before it commits.
    Raises LeaseLost naming who holds the pair now."""
    now = utcnow()
    result = s.execute(
        sa.update(Lease)
        .where(Lease.pair == fence.pair, Lease.holder == fence.holder, Lease.fence == fence.number)
        .values(heartbeat_at=now, expires_at=now + timedelta(seconds=fence.ttl_s))
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) == 1:
        return
    lease = s.get(Lease, fence.pair)
    taker = f"{lease.holder} (lease {lease.fence})" if lease else "nobody (the lease is gone)"
    when = aware(lease.acquired_at).strftime("%Y-%m-%d %H:%M:%S UTC") if lease else "?"
    raise LeaseLost(
        f"lost the lease of partner {fence.pair} to {taker} at {when}; nothing more was written. "
        f"This run (lease {fence.number}) was paused or cut off from the ledger for longer than "
        "the lease lasts; the run that took the pair over carries on."
    )
