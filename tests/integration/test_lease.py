"""One run of a pair at a time, also outside Prefect; a killed run's lease expires within a minute."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta

import sqlalchemy as sa

from dealsync.config import load_config
from dealsync.ledger import Ledger
from dealsync.ledger.lease import TTL_S, PairLease
from dealsync.ledger.models import Lease, utcnow
from tests.integration.test_sync import SHARED


def test_a_cli_run_while_another_holds_the_pair_ends_clearly(pair):
    pair.create("partner", dealname="Waiting", **SHARED)
    ledger = Ledger(load_config(pair.config).ledger_url)
    with PairLease(ledger, "acme"):
        result = pair.cli("run", ok=False)
    assert (
        result.exit_code == 1
        and "already being synced" in result.output
        and "did nothing" in result.output
    )
    assert pair.deals("vendor") == []
    pair.cli("run")
    assert len(pair.deals("vendor")) == 1


def test_a_lease_left_by_a_killed_run_stops_blocking_after_its_ttl(pair):
    assert TTL_S <= 60
    ledger = Ledger(load_config(pair.config).ledger_url)
    stale = PairLease(ledger, "acme")
    stale.acquire()
    stale._stop.set()  # the process "dies": no more heartbeats
    assert pair.cli("run", ok=False).exit_code == 1
    with ledger.sessions.begin() as s:
        s.execute(sa.update(Lease).values(heartbeat_at=utcnow() - timedelta(seconds=TTL_S + 1)))
    pair.cli("run")


HOLD = """
import sys
from dealsync.ledger import Ledger
from dealsync.ledger.lease import PairLease
PairLease(Ledger(sys.argv[1]), "acme").acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_run_killed_on_this_host_does_not_block_the_next_one(pair):
    url = load_config(pair.config).ledger_url
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    pair.create("partner", dealname="After a kill", **SHARED)
    assert "already being synced" in pair.cli("run", ok=False).output  # alive: it holds the pair
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    pair.cli("run")  # at once: its holder's process is gone from this host
    assert len(pair.deals("vendor")) == 1


def test_a_holder_on_another_host_keeps_the_lease_until_its_ttl(pair):
    ledger = Ledger(load_config(pair.config).ledger_url)
    with ledger.sessions.begin() as s:
        s.add(Lease(pair="acme", holder="elsewhere:4026531836:1:1:abcd1234"))
    assert "already being synced" in pair.cli("run", ok=False).output


def test_a_heartbeat_the_database_cannot_take_is_tried_again_not_given_up(tmp_path, caplog):
    """SQLite answers "database is locked" while another connection writes for longer than its busy
    timeout (a large run's commit does): the lease must keep beating once the database is free."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger(url)
    ledger.migrate()
    lease = PairLease(ledger, "acme", heartbeat_s=0.05)
    lease.acquire()
    beating = lease._thread
    assert beating is not None
    blocker = sa.create_engine(url).connect()
    blocker.exec_driver_sql("BEGIN EXCLUSIVE")
    with caplog.at_level("WARNING", logger="dealsync.ledger.lease"):
        while beating.is_alive() and not any(
            "heartbeat of acme missed" in r.getMessage() for r in caplog.records
        ):
            lease._stop.wait(0.05)
    blocker.exec_driver_sql("ROLLBACK")
    blocker.close()
    with ledger.sessions() as s:
        before = s.scalar(sa.select(Lease.heartbeat_at))
    while beating.is_alive():  # until a later beat lands (a dead thread never beats again)
        with ledger.sessions() as s:
            if s.scalar(sa.select(Lease.heartbeat_at)) > before:
                break
        lease._stop.wait(0.05)
    assert beating.is_alive()
    lease.release()
