"""A per-pair lease in the ledger: one run of a pair at a time, from Prefect and from the CLI alike."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dealsync.ledger.fencing import TTL_S, Fence, LeaseLost, aware, hold
from dealsync.ledger.models import Lease, utcnow
from dealsync.ledger.repo import Ledger

log = logging.getLogger(__name__)


class PairBusy(RuntimeError):
    """Another run holds the pair's lease."""


def _start_time(pid: int) -> str | None:
    """When a process started (Linux /proc), to tell a PID from a later process reusing it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


def holder_name() -> str:
    """Who holds a lease: host, PID namespace, PID, process start time, and a unique suffix."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{_pid_namespace()}:{pid}:{_start_time(pid) or '-'}:{uuid.uuid4().hex[:8]}"


def holder_is_gone(holder: str) -> bool:
    """Whether a holder is a process of this host (and PID namespace) that no longer runs.

    Only a certain answer counts: a holder on another host, in another container, or in a format
    this cannot read is never declared gone (its lease then expires after its TTL)."""
    parts = holder.split(":")
    if len(parts) != 5 or parts[0] != socket.gethostname() or parts[1] != _pid_namespace():
        return False
    if parts[1] == "-" or not parts[2].isdigit():
        return False
    pid, started = int(parts[2]), parts[3]
    if pid == os.getpid():
        return False  # this very process (another thread holds it)
    now = _start_time(pid)
    if now is not None:
        return started != "-" and now != started  # the PID now belongs to a later process
    if Path("/proc/self").exists():
        return True  # Linux without /proc/<pid>: no such process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def leased_pairs(ledger: Ledger) -> set[str]:
    """The pairs a run holds now (a lease that has not expired)."""
    with ledger.sessions() as s:
        rows = s.execute(sa.select(Lease.pair, Lease.expires_at)).all()
    now = utcnow()
    return {pair for pair, expires in rows if aware(expires) > now}


class PairLease:
    """Hold a pair's lease for the length of a `with` block, renewing it in the background.

    A run that is killed stops renewing: after `ttl_s` seconds the next run takes the lease over; at
    once when the holder was a process of this host that no longer exists. A run that is only
    paused finds out at its next write: `check()` raises LeaseLost once another run took the pair.
    """

    def __init__(
        self, ledger: Ledger, pair: str, ttl_s: float = TTL_S, heartbeat_s: float | None = None
    ) -> None:
        self.ledger, self.pair = ledger, pair
        self.ttl = timedelta(seconds=ttl_s)
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else ttl_s / 4
        self.holder = holder_name()
        self.fence = Fence(pair, self.holder, 0, ttl_s)
        self.lost: LeaseLost | None = None  # set once a heartbeat finds the pair taken over
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lease, or raise PairBusy naming who holds it."""
        now = utcnow()
        with self.ledger.sessions() as s:
            current = s.scalar(sa.select(Lease.holder).where(Lease.pair == self.pair))
            dead = [current] if current and holder_is_gone(current) else []
            result = s.execute(
                sa.update(Lease)
                .where(
                    Lease.pair == self.pair,
                    sa.or_(
                        Lease.expires_at < now,
                        Lease.holder == self.holder,
                        Lease.holder.in_(dead),
                    ),
                )
                .values(
                    holder=self.holder,
                    fence=Lease.fence + 1,
                    acquired_at=now,
                    heartbeat_at=now,
                    expires_at=now + self.ttl,
                )
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                try:
                    s.add(
                        Lease(
                            pair=self.pair,
                            holder=self.holder,
                            fence=1,
                            acquired_at=now,
                            heartbeat_at=now,
                            expires_at=now + self.ttl,
                        )
                    )
                    s.flush()
                except IntegrityError:
                    s.rollback()
                    raise self._busy(s, now) from None
            number = s.scalar(sa.select(Lease.fence).where(Lease.pair == self.pair))
            s.commit()
        self.fence = Fence(self.pair, self.holder, int(number or 0), self.fence.ttl_s)
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.pair}", daemon=True)
        self._thread.start()

    def _busy(self, s: Session, now: datetime) -> PairBusy:
        lease = s.get(Lease, self.pair)
        since = aware(lease.acquired_at).strftime("%H:%M:%S UTC") if lease else "?"
        expires = aware(lease.expires_at) if lease else now
        free_in = max(0, int((expires - now).total_seconds()))
        return PairBusy(
            f"partner {self.pair} is already being synced (by {lease.holder if lease else '?'}, since "
            f"{since}); this run did nothing. If that run was killed, its lease expires in {free_in} s."
        )

    def check(self) -> None:
        """Renew the lease, or raise LeaseLost when another run took the pair over: called before
        every write, so a run that was paused past its lease writes nothing more."""
        if self.lost is not None:
            raise self.lost
        try:
            with self.ledger.sessions.begin() as s:
                hold(s, self.fence)
        except LeaseLost as lost:
            self.lost = lost
            raise

    def _renew(self) -> None:
        """Renew the lease until released or lost. A beat the database cannot take now (SQLite is
        busy with this run's own long commit, PostgreSQL restarting) is tried again at the next one:
        the thread must outlive it, or the lease would expire under a live run."""
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.check()
            except LeaseLost as lost:
                log.error("%s", lost)
                return
            except sa.exc.DBAPIError as exc:
                log.warning("lease heartbeat of %s missed, retrying: %s", self.pair, exc.orig)

    def release(self) -> None:
        """Give the lease back (it expires now; the row keeps its number for the next holder)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.ledger.sessions.begin() as s:
            s.execute(
                sa.update(Lease)
                .where(
                    Lease.pair == self.pair,
                    Lease.holder == self.holder,
                    Lease.fence == self.fence.number,
                )
                .values(expires_at=utcnow())
                .execution_options(synchronize_session=False)
            )

    def __enter__(self) -> PairLease:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
