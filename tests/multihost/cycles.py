"""What the two-host tests do to the cluster and read back: cycles through Prefect, the ledger's
leases, the vendor's keys, writes by host, edits made by users."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
import sqlalchemy as sa
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterParentTaskRunId,
)
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from dealsync.ledger.models import Lease, LinkRow
from tests.multihost.conftest import PARTNERS, Cluster
from tests.multihost.hosts import Host, wait_for


@contextmanager
def prefect(cluster: Cluster) -> Iterator[SyncPrefectClient]:
    """A client of the cluster's Prefect server."""
    with (
        temporary_settings(updates={PREFECT_API_URL: cluster.prefect.api_url}),
        get_client(sync_client=True) as client,
    ):
        yield client


def start_cycle(cluster: Cluster, batches: int = 4) -> Any:
    """Start sync-all-partners; return its flow run once it has started its batches."""
    with prefect(cluster) as client:
        fan_out = run_deployment(
            "sync-all-partners/sync-all-partners",
            parameters={"batches": batches},
            timeout=0,
        )

        def started() -> bool:
            return client.read_flow_run(fan_out.id).state.is_final()

        wait_for(started, "the fan-out to start its batches", limit_s=600)
        run = client.read_flow_run(fan_out.id)
    assert run.state.is_completed(), (run.state.name, run.state.message)
    return run


def batches_of(cluster: Cluster, fan_out: Any) -> list[Any]:
    """The batch flow runs a fan-out started."""
    with prefect(cluster) as client:
        tasks = {
            t.id
            for t in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[fan_out.id]))
            )
        }
        if not tasks:
            return []
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(any_=list(tasks))
            )
        )


def partner_runs(cluster: Cluster, batches: list[Any]) -> dict[str, Any]:
    """Each partner's run (a subflow of a batch), by partner."""
    if not batches:
        return {}
    with prefect(cluster) as client:
        members = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[b.id for b in batches])
            ),
            limit=200,
        )
    return {r.name: r for r in members}


def finish_cycle(cluster: Cluster, fan_out: Any, limit_s: float = 900) -> dict[str, Any]:
    """Wait for every batch of a started cycle to end; each partner's run, by partner."""

    def done() -> bool:
        batches = batches_of(cluster, fan_out)
        return len(batches) > 0 and all(b.state.is_final() for b in batches)

    wait_for(done, "the cycle's batches to end", limit_s=limit_s)
    return partner_runs(cluster, batches_of(cluster, fan_out))


def cycle(cluster: Cluster) -> dict[str, Any]:
    """One whole cycle: each partner's run, by partner (none when nothing had work)."""
    fan_out = start_cycle(cluster)
    return finish_cycle(cluster, fan_out) if batches_of(cluster, fan_out) else {}


def states(runs: dict[str, Any]) -> dict[str, str]:
    """Each run's state name, by partner."""
    return {name: run.state.name for name, run in runs.items()}


def seed(cluster: Cluster, count: int, name: str) -> None:
    """`count` new shared deals on every partner's portal (registrations for the next cycle)."""
    now = int(time.time() * 1000)
    for n in range(1, PARTNERS + 1):
        cluster.sandbox.admin(
            "POST",
            "seed",
            token=cluster.partner_token(n),
            json={
                "objectType": "deals",
                "count": count,
                "properties": {"dealname": name, "dealsync_shared": "true"},
                "timestamp": now,
                "timestampStep": 1,
            },
        )


def call(cluster: Cluster, token: str, method: str, path: str, **kwargs: Any) -> Any:
    """A CRM user's call to the sandbox."""
    answer = requests.request(
        method,
        f"http://127.0.0.1:{cluster.sandbox.port}{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **kwargs,
    )
    answer.raise_for_status()
    return answer.json() if answer.content else None


def deals(cluster: Cluster, token: str, *props: str) -> list[dict[str, Any]]:
    """Every deal of a portal with the given properties (and its id)."""
    found, after = [], None
    while True:
        params = {"limit": 100, "properties": ",".join(props)}
        if after:
            params["after"] = after
        body = call(cluster, token, "GET", "/crm/v3/objects/deals", params=params)
        found += [{"id": r["id"], **r["properties"]} for r in body["results"]]
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return found


def vendor_keys(cluster: Cluster) -> list[str]:
    """The key of every vendor deal."""
    return [
        d.get("dealsync_key") or ""
        for d in deals(cluster, cluster.sandbox.tokens[0], "dealsync_key")
    ]


def links(cluster: Cluster) -> int:
    """The ledger's deal links."""
    with cluster.ledger.sessions() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(LinkRow)) or 0)


def held_by(cluster: Cluster, host: Host) -> set[str]:
    """The pairs whose lease a run on `host` holds now."""
    with cluster.ledger.sessions() as s:
        rows = s.execute(
            sa.select(Lease.pair).where(
                Lease.holder.like(f"{host.name}:%"), Lease.expires_at > sa.func.now()
            )
        ).all()
    return {pair for (pair,) in rows}


def last_holders(cluster: Cluster) -> dict[str, str]:
    """The host that took each pair last, by pair."""
    with cluster.ledger.sessions() as s:
        rows = s.execute(sa.select(Lease.pair, Lease.holder)).all()
    return {pair: holder.split(":")[0] for pair, holder in rows}


def writes_from(cluster: Cluster, host: Host) -> int:
    """The CRM writes that came from `host`, over every portal of the sandbox."""
    return sum(
        cluster.sandbox.admin("GET", "requests", token=token)
        .json()["writes_by_client"]
        .get(host.own_ip, 0)
        for token in cluster.sandbox.tokens
    )


def pair_slots_free(cluster: Cluster) -> bool:
    """Whether no pair's Prefect slot is held (a lost host's leases have run out)."""
    with prefect(cluster) as client:
        limits = client.read_global_concurrency_limits(limit=200)
    return all(n.active_slots == 0 for n in limits if n.name.startswith("dealsync-pair-"))


def partner_deals(cluster: Cluster) -> int:
    """The shared deals on every partner's portal."""
    return sum(len(deals(cluster, cluster.partner_token(n))) for n in range(1, PARTNERS + 1))


def converged(cluster: Cluster) -> tuple[int, int, int, int]:
    """(vendor twins, keys there twice, links, partner deals): all equal and no key twice when
    every partner deal reached the vendor once."""
    keys = vendor_keys(cluster)
    return len(keys), len(keys) - len(set(keys)), links(cluster), partner_deals(cluster)


def running(cluster: Cluster) -> bool:
    """Whether a run on any host holds a pair now."""
    return any(held_by(cluster, host) for host in cluster.hosts)
