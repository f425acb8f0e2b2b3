"""Workers on two hosts over one ledger: a cycle spreads over both, the vendor's budget holds."""

from __future__ import annotations

import time

import pytest
import requests
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterParentTaskRunId,
)
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from dealsync.ledger.models import Lease, LinkRow
from tests.multihost.conftest import DEALS, PARTNERS, Cluster
from tests.multihost.hosts import namespaces_unavailable, wait_for

UNAVAILABLE = namespaces_unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")


def _cycle(cluster: Cluster, batches: int = 4) -> dict[str, str]:
    """One sync-all-partners run and the batches it started, to their end: each partner run's
    state by name."""
    with (
        temporary_settings(updates={PREFECT_API_URL: cluster.prefect.api_url}),
        get_client(sync_client=True) as client,
    ):
        fan_out = run_deployment(
            "sync-all-partners/sync-all-partners",
            parameters={"batches": batches},
            timeout=900,
            poll_interval=1,
        )
        assert fan_out.state.is_completed(), fan_out.state
        started = {
            t.id
            for t in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[fan_out.id]))
            )
        }
        batch_runs: list = []

        def batches_done() -> bool:
            nonlocal batch_runs
            batch_runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_task_run_id=FlowRunFilterParentTaskRunId(any_=list(started))
                )
            )
            return len(batch_runs) == len(started) and all(r.state.is_final() for r in batch_runs)

        wait_for(batches_done, "the cycle's batches to end", limit_s=900)
        members = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[b.id for b in batch_runs])
            ),
            limit=200,
        )
    return {r.name: r.state.name for r in members}


def _seed(cluster: Cluster) -> None:
    day_ago = int(time.time() * 1000) - 86_400_000
    for n in range(1, PARTNERS + 1):
        cluster.sandbox.admin(
            "POST",
            "seed",
            token=cluster.partner_token(n),
            json={
                "objectType": "deals",
                "count": DEALS,
                "properties": {"dealname": "Shared {i}", "dealsync_shared": "true"},
                "timestamp": day_ago,
                "timestampStep": 1,
            },
        )


def _vendor_keys(cluster: Cluster) -> list[str]:
    keys, after = [], None
    while True:
        params = {"limit": 100, "properties": "dealsync_key"}
        if after:
            params["after"] = after
        body = requests.get(
            f"http://127.0.0.1:{cluster.sandbox.port}/crm/v3/objects/deals",
            params=params,
            headers={"Authorization": f"Bearer {cluster.sandbox.tokens[0]}"},
            timeout=30,
        ).json()
        keys += [r["properties"].get("dealsync_key") for r in body["results"]]
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return keys


def test_a_cycle_spreads_over_both_hosts_within_one_vendor_budget(cluster: Cluster):
    _seed(cluster)
    vendor = cluster.sandbox.tokens[0]
    cluster.sandbox.admin("DELETE", "requests", token=vendor)
    runs = _cycle(cluster)
    assert len(runs) == PARTNERS and set(runs.values()) == {"Completed"}, runs
    assert cluster.sandbox.admin("GET", "requests", token=vendor).json()["rate_limited"] == 0
    keys = _vendor_keys(cluster)
    assert len(keys) == len(set(keys)) == PARTNERS * DEALS  # nothing lost, nothing twice
    with cluster.ledger.sessions() as s:
        links = s.scalar(sa.select(sa.func.count()).select_from(LinkRow))
        holders = {h.split(":")[0] for h in s.scalars(sa.select(Lease.holder))}
    assert links == PARTNERS * DEALS
    assert {"host-a", "host-b"} <= holders  # the last run of each pair: both hosts ran pairs
