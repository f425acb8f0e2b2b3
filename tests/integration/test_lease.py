"""One run of a pair at a time, also outside Prefect; a killed run's lease expires within a minute."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from dealsync.config import load_config
from dealsync.ledger import Ledger
from dealsync.ledger.fencing import TTL_S, LeaseLost
from dealsync.ledger.lease import PairLease, leased_pairs
from dealsync.ledger.models import Lease, LinkRow, utcnow
from tests.integration.test_run_cost import _seed_shared
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
        s.execute(sa.update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))
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
        s.add(
            Lease(
                pair="acme",
                holder="elsewhere:4026531836:1:1:abcd1234",
                expires_at=utcnow() + timedelta(seconds=TTL_S),
            )
        )
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


def test_each_acquisition_has_a_larger_number_and_a_release_keeps_it(pair):
    ledger = Ledger(load_config(pair.config).ledger_url)
    numbers = []
    for _ in range(3):
        with PairLease(ledger, "acme") as lease:
            numbers.append(lease.fence.number)
            assert leased_pairs(ledger) == {"acme"}
        assert leased_pairs(ledger) == set()
    assert numbers == sorted(set(numbers)) and len(numbers) == 3


def test_a_lease_taken_over_is_refused_at_the_next_write_and_by_the_heartbeat(pair):
    ledger = Ledger(load_config(pair.config).ledger_url)
    stale = PairLease(ledger, "acme", ttl_s=2, heartbeat_s=3600)  # paused: it beats no more
    stale.acquire()
    with ledger.sessions.begin() as s:  # its lease ran out while it was paused
        s.execute(sa.update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))
    with PairLease(ledger, "acme") as taker:
        with pytest.raises(LeaseLost, match=r"lost the lease of partner acme to .*nothing more"):
            stale.check()
        assert taker.fence.number == stale.fence.number + 1
        taker.check()  # the new holder writes on
    stale.release()  # gives back nothing it does not hold
    with ledger.sessions() as s:
        assert s.get(Lease, "acme").holder == taker.holder


PAUSED_RUN_DEALS = 250


def _vendor_creates(pair) -> int:
    counts = pair.servers["vendor"].admin("GET", "requests").json()["by_route"]
    return counts.get("POST /crm/v3/objects/deals/batch/create", 0)


def _wait_for(condition, what: str, limit_s: float = 120.0) -> None:
    """Wait for a condition (not for a time); the limit only ends a test that would hang."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


def test_a_run_paused_past_its_lease_writes_nothing_after_the_takeover(pair):
    """Run A is paused (SIGSTOP) in its first sync while its first batch of vendor creates is on
    the wire; run B takes the pair over once A's lease expires, adopts what A created and completes;
    users edit both sides; A is continued and must write nothing more, quarantine nothing, and exit
    saying it lost the pair; the edits survive and the next run carries them."""
    with pair.config.open("a") as config:
        config.write("lease_seconds: 3\n")
    ledger = Ledger(load_config(pair.config).ledger_url)
    _seed_shared(pair, PAUSED_RUN_DEALS)
    pair.servers["vendor"].admin(  # A's first create is held long enough to be paused within it
        "POST",
        "faults",
        json={"method": "POST", "path_regex": "deals/batch/create", "latency_ms": 5000, "count": 1},
    )
    pair.reset_counts()
    run_a = subprocess.Popen(
        [str(Path(sys.executable).parent / "dealsync"), "run", "--config", str(pair.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        _wait_for(lambda: _vendor_creates(pair) >= 1, "run A's first vendor create")
        run_a.send_signal(signal.SIGSTOP)
        _wait_for(lambda: len(pair.deals("vendor")) == 100, "A's held create to land")
        _wait_for(lambda: "acme" not in leased_pairs(ledger), "A's lease to expire")

        pair.cli("run")  # B: adopts A's 100 creates, creates the rest
        assert len(pair.deals("vendor")) == PAUSED_RUN_DEALS
        partner_deal = pair.deals("partner")[0]["id"]
        twin = _twin_of(pair, partner_deal)
        pair.edit("partner", partner_deal, dealsync_pain="Edited after the takeover")
        pair.edit("vendor", twin, amount="4242")
        pair.reset_counts()

        run_a.send_signal(signal.SIGCONT)
        output, _ = run_a.communicate(timeout=120)
    finally:
        if run_a.poll() is None:
            run_a.send_signal(signal.SIGCONT)
            run_a.kill()
    assert run_a.returncode == 1, output
    flat = " ".join(output.split())
    assert "lost the lease of partner acme to" in flat and "nothing more was written" in flat
    assert pair.writes("vendor") == 0 and pair.writes("partner") == 0  # not one write after B
    assert "security" not in flat
    assert "0 open" in pair.cli("quarantine", "list").output

    keys = [d["dealsync_key"] for d in pair.deals("vendor", "dealsync_key")]
    assert len(keys) == len(set(keys)) == PAUSED_RUN_DEALS  # nothing duplicated, nothing lost
    assert (
        pair.deal("partner", partner_deal, "dealsync_pain")["dealsync_pain"]
        == "Edited after the takeover"
    )
    assert pair.deal("vendor", twin, "amount")["amount"] == "4242"
    pair.cli("run")  # the edits made after B travel on, A's stale plan nowhere
    assert (
        pair.deal("vendor", twin, "dealsync_pain")["dealsync_pain"] == "Edited after the takeover"
    )
    assert (
        pair.deal("partner", partner_deal, "dealsync_vendor_amount")["dealsync_vendor_amount"]
        == "4242"
    )


def _twin_of(pair, partner_deal: str) -> str:
    ledger = Ledger(load_config(pair.config).ledger_url)
    with ledger.sessions() as s:
        return s.scalar(
            sa.select(LinkRow.vendor_id).where(
                LinkRow.pair == "acme", LinkRow.partner_id == partner_deal
            )
        )
