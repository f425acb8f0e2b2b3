"""Benchmark: how long a change in one CRM takes to reach its twin when webhooks wake the sync.

Everything real and local: two sandboxes at HubSpot's default limits delivering signed webhooks, a
Prefect server with prefect.yaml deployed (schedules off: only webhooks start runs), one process
worker, and `dealsync receive` (as `dealsync serve` starts them). Measured from the moment the
user's edit is answered to the moment the twin shows the new value (polled every 0.2 s):

- one edit at a time, alternating sides (partner close date -> vendor, vendor close date ->
  partner), each made as soon as the previous one arrived (so some land while the previous run,
  or its echo run, is still going);
- a burst: 100 shared deals edited at once on the partner side (400 property changes, delivered
  as 4 webhook requests of 100 events): when the last twin is updated, and how many sync runs the burst woke.

    .venv/bin/python bench/webhook_latency.py [--edits 20] [--burst 100]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings
from user_calls import user_call

from dealsync.cli.serve import PrefectStack, write_local_config
from dealsync.config import load_config
from dealsync.setup import prepare_portals
from sandbox.server import SandboxProcess, free_port

OWNERS = ("rita@vendor.test", "sam@vendor.test")


def _wait(condition, what: str, timeout_s: float = 600.0) -> float:
    """Poll until the condition holds; the monotonic time it was seen."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"never saw {what}")
        time.sleep(0.2)
    return time.monotonic()


def _deal(server: SandboxProcess, deal_id: str, prop: str) -> str:
    body = user_call(
        server.base_url,
        server.token,
        "GET",
        f"/crm/v3/objects/deals/{deal_id}",
        params={"properties": prop},
    ).json()
    return str(body["properties"].get(prop) or "")


def _twins(vendor: SandboxProcess, prop: str = "dealsync_key") -> dict[str, tuple[str, str]]:
    """(vendor twin id, its value of `prop`) by partner deal id (from the twins' keys)."""
    found, after = {}, None
    while True:
        params = {"limit": 100, "properties": f"dealsync_key,{prop}"}
        if after:
            params["after"] = after
        page = user_call(
            vendor.base_url, vendor.token, "GET", "/crm/v3/objects/deals", params=params
        ).json()
        for record in page["results"]:
            key = record["properties"].get("dealsync_key") or ""
            if key.startswith("acme:partner:"):
                value = str(record["properties"].get(prop) or "")
                found[key.rsplit(":", 1)[1]] = (record["id"], value)
        after = (page.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return found


def _woken_runs(since: float) -> int:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["sync-partner"]))
        )
    return sum(1 for r in runs if r.created and r.created.timestamp() >= since)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dealsync-webhook-bench-"))
    secret = secrets.token_urlsafe(24)
    with SandboxProcess() as vendor, SandboxProcess() as acme:
        for email in OWNERS:
            vendor.admin(
                "POST", "owners", json={"email": email, "firstName": "Rep", "lastName": "V"}
            )
        config = write_local_config(
            folder, vendor.base_url, vendor.token, {"acme": (acme.base_url, acme.token)}, secret
        )
        prepare_portals(load_config(config))
        env = {"DEALSYNC_CONFIG": str(config)}
        env.update({k: v for k, v in os.environ.items() if k.startswith("LOCAL_")})
        with PrefectStack(
            home=folder / "prefect", port=free_port(), worker_env=env, ui=False
        ) as stack:
            stack.start_server()
            stack.deploy()
            stack.start_worker()
            stack.pause_schedules()
            with temporary_settings(updates={PREFECT_API_URL: stack.api_url}):
                target = stack.start_receiver(config, free_port())
                for server in (vendor, acme):
                    server.admin("POST", "webhooks", json={"targetUrl": target, "secret": secret})
                run(vendor, acme, args.edits, args.burst)


def run(vendor: SandboxProcess, acme: SandboxProcess, edits: int, burst: int) -> None:
    """Register the deals, then time single edits and a burst."""
    inputs = [
        {
            "properties": {
                "dealname": f"Bench {n}",
                "dealsync_shared": "true",
                "closedate": "2027-01-01",
            }
        }
        for n in range(burst)
    ]
    started = time.monotonic()
    made = user_call(
        acme.base_url,
        acme.token,
        "POST",
        "/crm/v3/objects/deals/batch/create",
        json={"inputs": inputs},
    ).json()["results"]
    partner_ids = [r["id"] for r in made]
    _wait(lambda: len(_twins(vendor)) >= burst, f"{burst} twins")
    print(
        f"registration of {burst} deals in one call: twins after {time.monotonic() - started:.1f} s"
    )
    twins = {partner: twin for partner, (twin, _value) in _twins(vendor).items()}

    latencies: list[float] = []
    day = date(2027, 2, 1)
    for n in range(edits):
        day += timedelta(days=1)
        value = day.isoformat()
        deal = partner_ids[n % len(partner_ids)]
        source, sink, source_id, sink_id = (
            (acme, vendor, deal, twins[deal]) if n % 2 == 0 else (vendor, acme, twins[deal], deal)
        )
        user_call(
            source.base_url,
            source.token,
            "PATCH",
            f"/crm/v3/objects/deals/{source_id}",
            json={"properties": {"closedate": value}},
        )
        edited = time.monotonic()
        seen = _wait(
            lambda s=sink, i=sink_id, v=value: _deal(s, i, "closedate").startswith(v), "the edit"
        )
        latencies.append(seen - edited)
        print(
            f"  edit {n + 1:>2} ({'partner->vendor' if n % 2 == 0 else 'vendor->partner'}): {seen - edited:5.1f} s"
        )
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(
        f"single edits: {len(latencies)}, median {statistics.median(latencies):.1f} s, "
        f"p95 {p95:.1f} s, max {max(latencies):.1f} s (target: median <= 30 s, p95 <= 60 s)"
    )

    # Let the last edit's runs (and their echo) finish before the burst is counted.
    time.sleep(15)
    since = time.time()
    value = "2027-12-31"
    burst_inputs = [
        {
            "id": i,
            "properties": {
                "closedate": value,
                "dealsync_pain": f"Pain {i}",
                "dealsync_next_steps": "Call",
                "dealsync_intro_note": "Hi",
            },
        }
        for i in partner_ids
    ]
    requests_before = acme.admin("GET", "webhooks").json()["requests"]
    begun = time.monotonic()
    user_call(
        acme.base_url,
        acme.token,
        "POST",
        "/crm/v3/objects/deals/batch/update",
        json={"inputs": burst_inputs},
    )
    last = _wait(
        lambda: all(v == f"Pain {i}" for i, (_twin, v) in _twins(vendor, "dealsync_pain").items()),
        "the burst on every twin",
    )
    time.sleep(15)  # the echo of the burst's own writes, if any, is counted too
    delivered = acme.admin("GET", "webhooks").json()["requests"] - requests_before
    print(
        f"burst: {len(partner_ids)} deals x 4 properties in one call -> {delivered} webhook "
        f"requests; every twin updated after {last - begun:.1f} s; sync runs woken: "
        f"{_woken_runs(since)} (the burst's; the events of its own writes wake nobody)"
    )


if __name__ == "__main__":
    main()
