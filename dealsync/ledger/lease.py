"""A per-pair lease in the ledger: one run of a pair at a time, from Prefect and from the CLI alike."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dealsync.ledger.models import Lease, utcnow
from dealsync.ledger.repo import Ledger

TTL_S = 60.0
HEARTBEAT_S = 15.0


class PairBusy(RuntimeError):
    """Another run holds the pair's lease."""


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; the ledger stores UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


class PairLease:
    """Hold a pair's lease for the length of a `with` block, renewing it in the background.

    A run that is killed stops renewing: after `ttl_s` seconds the next run takes the lease over.
    """

    def __init__(
        self, ledger: Ledger, pair: str, ttl_s: float = TTL_S, heartbeat_s: float = HEARTBEAT_S
    ) -> None:
        self.ledger, self.pair = ledger, pair
        self.ttl = timedelta(seconds=ttl_s)
        self.heartbeat_s = heartbeat_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lease, or raise PairBusy naming who holds it."""
        now = utcnow()
        with self.ledger.sessions() as s:
            taken = s.execute(
                sa.update(Lease)
                .where(
                    Lease.pair == self.pair,
                    sa.or_(Lease.heartbeat_at < now - self.ttl, Lease.holder == self.holder),
                )
                .values(holder=self.holder, acquired_at=now, heartbeat_at=now)
            ).rowcount
            if not taken:
                try:
                    s.add(
                        Lease(pair=self.pair, holder=self.holder, acquired_at=now, heartbeat_at=now)
                    )
                    s.flush()
                except IntegrityError:
                    s.rollback()
                    current = s.get(Lease, self.pair)
                    since = _aware(current.acquired_at).strftime("%H:%M:%S UTC") if current else "?"
                    seen = _aware(current.heartbeat_at) if current else now
                    free_in = max(0, int((seen + self.ttl - now).total_seconds()))
                    raise PairBusy(
                        f"partner {self.pair} is already being synced (by {current.holder if current else '?'}, since "
                        f"{since}); this run did nothing. If that run was killed, its lease expires in {free_in} s."
                    ) from None
            s.commit()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.pair}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self.ledger.sessions.begin() as s:
                s.execute(
                    sa.update(Lease)
                    .where(Lease.pair == self.pair, Lease.holder == self.holder)
                    .values(heartbeat_at=utcnow())
                )

    def release(self) -> None:
        """Give the lease back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.ledger.sessions.begin() as s:
            s.execute(sa.delete(Lease).where(Lease.pair == self.pair, Lease.holder == self.holder))

    def __enter__(self) -> PairLease:
        self.acquire()
        return self

    def __exit__(self, *_exc) -> None:
        self.release()
