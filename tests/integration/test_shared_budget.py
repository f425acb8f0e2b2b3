"""The vendor portal's budget is shared through the ledger by every worker process: together they
never exceed it, whichever ledger database holds it."""

from __future__ import annotations

import multiprocessing

import pytest

from dealsync.ledger import Ledger
from sandbox.server import SandboxProcess
from sandbox.traffic import Limits

CALLS = 60


def _worker(base_url: str, token: str, ledger_url: str, start: multiprocessing.Event) -> None:
    """A worker process: its own connector and limiter, the vendor budget from the ledger."""
    import os

    from connectors.http import HttpClient
    from dealsync.config import CrmConfig
    from flows.rate_budget import shared_budget

    os.environ["SHARED_BUDGET_TOKEN"] = token
    crm = CrmConfig("hubspot", base_url, "env:SHARED_BUDGET_TOKEN", "test.token")
    client = HttpClient(base_url, token, "worker")
    with shared_budget(crm, ledger_url, per_window=CALLS, window_s=1.0) as budget:
        start.wait()
        for _ in range(CALLS):
            client.request("GET", "/crm/v3/objects/deals", params={"limit": 1})
    assert budget.taken == CALLS


def _run_workers(portal: SandboxProcess, ledger_url: str, workers: int) -> dict:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Event()
    processes = [
        spawn.Process(target=_worker, args=(portal.base_url, portal.token, ledger_url, start))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join()
        assert process.exitcode == 0
    return portal.admin("GET", "requests").json()


@pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)
def test_worker_processes_together_stay_inside_the_portals_budget(ledger_url):
    """Three processes each ask a whole window's budget at once: without the shared budget their own
    limiters would send three times what the portal allows."""
    Ledger.open(ledger_url).close()
    limits = Limits(per_interval=CALLS, interval_ms=1_000, search_lag_ms=0)
    with SandboxProcess(limits=limits) as portal:
        counts = _run_workers(portal, ledger_url, workers=3)
    assert counts["by_route"]["GET /crm/v3/objects/deals"] == 3 * CALLS, counts
    assert counts["rate_limited"] == 0, counts


@pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)
def test_a_booking_waits_for_the_refill_once_the_burst_is_spent(ledger_url):
    ledger = Ledger.open(ledger_url)
    try:
        slow = 0.01  # a permit every 100 s
        waits = [ledger.reserve("portal-x", 1, slow, burst=2) for _ in range(4)]
        assert waits[:2] == [0.0, 0.0]  # the burst of an idle bucket
        assert 50 < waits[2] < 101 and 150 < waits[3] < 201  # then one permit per 100 s, booked
        assert ledger.reserve("portal-y", 1, slow, burst=2) == 0.0  # each portal its own bucket
    finally:
        ledger.close()
