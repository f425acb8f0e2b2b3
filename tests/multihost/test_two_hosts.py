"""Workers on two hosts over one ledger: a cycle spreads over both within one vendor budget; a host
cut off mid-cycle loses its pairs to the other and, back again, writes nothing more."""

from __future__ import annotations

import time

import pytest

from tests.multihost.conftest import DEALS, PARTNERS, Cluster
from tests.multihost.cycles import (
    batches_of,
    call,
    converged,
    cycle,
    deals,
    finish_cycle,
    held_by,
    last_holders,
    pair_slots_free,
    seed,
    start_cycle,
    states,
    writes_from,
)
from tests.multihost.hosts import namespaces_unavailable, wait_for

UNAVAILABLE = namespaces_unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")
CUT_DEALS = 10  # registrations per partner made before the cut


def test_a_cycle_spreads_over_both_hosts_within_one_vendor_budget(cluster: Cluster):
    seed(cluster, DEALS, "Shared {i}")
    vendor = cluster.sandbox.tokens[0]
    cluster.sandbox.admin("DELETE", "requests", token=vendor)
    runs = states(cycle(cluster))
    assert len(runs) == PARTNERS and set(runs.values()) == {"Completed"}, runs
    assert cluster.sandbox.admin("GET", "requests", token=vendor).json()["rate_limited"] == 0
    vendor_twins, twice, linked, partner_deals = converged(cluster)  # other tests' deals too
    assert vendor_twins == linked == partner_deals and twice == 0  # nothing lost, nothing twice
    assert {"host-a", "host-b"} <= set(last_holders(cluster).values())  # both hosts ran pairs


def test_a_host_cut_off_past_its_lease_loses_its_pairs_and_writes_nothing_more(
    cluster: Cluster, record_property
):
    host_a, _host_b = cluster.hosts
    vendor = cluster.sandbox.tokens[0]
    seed(cluster, CUT_DEALS, "Before the cut {i}")
    # Vendor creates answer slowly: a run is mid-write most of the time it holds its pair.
    cluster.sandbox.admin(
        "POST",
        "faults",
        token=vendor,
        json={"method": "POST", "path_regex": "batch/create", "status": None, "latency_ms": 1500},
    )
    fan_out = start_cycle(cluster)
    wait_for(lambda: held_by(cluster, host_a), "a run on host-a holding a pair", limit_s=300)
    host_a.cut()
    cut_at = time.monotonic()
    stale = held_by(cluster, host_a)  # host-a can no longer release them
    assert stale, "host-a's run ended between the look and the cut; nothing was cut mid-run"
    cluster.sandbox.admin("DELETE", "faults", token=vendor)

    # The other host finishes its batches; host-a's pair slots in Prefect run out (60 s).
    wait_for(lambda: pair_slots_free(cluster), "host-a's pair slots released", limit_s=300)
    taken_over = cycle(cluster)
    assert stale <= set(taken_over) and {states(taken_over)[p] for p in stale} == {"Completed"}
    assert {last_holders(cluster)[p] for p in stale} == {"host-b"}
    converged_s = time.monotonic() - cut_at
    vendor_twins, twice, linked, partner_deals = converged(cluster)
    assert vendor_twins == linked == partner_deals and twice == 0

    # Users edit the taken-over pairs' deals on the vendor side while host-a is still away.
    edited = {}
    for pair in sorted(stale):
        twin = next(
            d
            for d in deals(cluster, vendor, "dealsync_key")
            if (d.get("dealsync_key") or "").startswith(f"{pair}:")
        )
        call(
            cluster,
            vendor,
            "PATCH",
            f"/crm/v3/objects/deals/{twin['id']}",
            json={"properties": {"closedate": "2027-05-01"}},
        )
        edited[pair] = twin["dealsync_key"]
    writes_before = writes_from(cluster, host_a)
    host_a.restore()
    cut_runs = batches_of(cluster, fan_out)
    runs = finish_cycle(cluster, fan_out)
    for pair in stale:  # each stale run stopped, and says why
        run = runs[pair]
        message = run.state.message or ""
        assert run.state.is_failed(), (pair, run.state.name, message)
        lost = f"lost the lease of partner {pair} to host-b" in message  # at its next write
        broken = "OperationalError" in message  # or its ledger connection broke while cut off
        assert (lost and "nothing more was written" in message) or broken, message
    assert writes_from(cluster, host_a) == writes_before  # not one write after the takeover

    # The next cycle carries the users' edits on; nothing lost, nothing twice.
    after = cycle(cluster)
    assert set(states(after).values()) <= {"Completed"}, states(after)
    for pair, key in edited.items():
        n = int(pair[1:])
        partner_deal = next(
            d
            for d in deals(cluster, cluster.partner_token(n), "closedate", "dealsync_key")
            if key.endswith(f":{d['id']}")
        )
        assert (partner_deal.get("closedate") or "").startswith("2027-05-01"), (pair, partner_deal)
    assert converged(cluster) == (partner_deals, 0, partner_deals, partner_deals)
    record_property("cut_to_converged_s", round(converged_s, 1))
    print(
        f"host cut: {len(stale)} pairs taken over, converged {converged_s:.1f} s after the cut; batches {len(cut_runs)}"
    )
