"""Benchmark: many partners sharing one vendor portal, synced by several Prefect workers.

One sandbox process serves the vendor portal and every partner portal (HubSpot's default limits each:
190 calls / 10 s, 5 searches / s); the ledger is PostgreSQL; a real Prefect server runs the
deployments of prefect.yaml and several process workers pick up the batches `sync-all-partners`
starts. The partners are configured as a programme with many of them would: `partner_defaults`, a
token named from each id, and a partners file. Prints, for the first sync of every partner, the cycle
after it (which reads back the first sync's own writes), a quiet cycle and a cycle after 1% edits on
both sides: wall time, the vendor portal's calls and rate against its ceiling, its 429 answers, the
flow-run processes started (batches) and the partner runs inside them, the CPU seconds of each
process tree (sandbox, Prefect server, workers and their flow runs, the rest) and per partner run,
and a check that nothing was lost or duplicated (every partner deal has exactly one vendor twin and
one link; every edit arrived). With `--burst N`, then webhooks from the vendor and N partners'
portals: `--edits` single edits one after another, and N partners edited at once.

    .venv/bin/python bench/many_partners.py [--partners 50] [--deals 2000] [--workers 4]
        [--runs-per-worker 4] [--batches 8] [--no-subflows] [--burst 0] [--edits 10]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from cpu_time import machine_busy_seconds, tree_seconds
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterParentTaskRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from user_calls import user_call

from dealsync.cli.serve import PrefectStack
from dealsync.config import load_config
from dealsync.ledger import Ledger
from dealsync.setup import prepare_portals
from sandbox.server import SandboxProcess, free_port

POSTGRES_ADMIN = "postgresql+psycopg://root@127.0.0.1:5432/postgres"
CEILING_PER_S = 19.0  # 190 calls per 10 s


def _api(
    server: SandboxProcess, token: str, method: str, path: str, **kwargs: Any
) -> requests.Response:
    return user_call(server.base_url, token, method, path, **kwargs)


def _count(server: SandboxProcess, token: str, prop: str, value: str) -> int:
    body = {
        "filterGroups": [{"filters": [{"propertyName": prop, "operator": "EQ", "value": value}]}],
        "limit": 1,
    }
    return int(
        _api(server, token, "POST", "/crm/v3/objects/deals/search", json=body).json()["total"]
    )


def _pid(n: int) -> str:
    return f"p{n:04d}"


def _config(folder: Path, server: SandboxProcess, ledger_url: str, partners: int) -> Path:
    """The config of a programme with many partners: defaults, tokens named from each partner's
    id, the partners (with their portal numbers, for the webhook receiver) in a file."""
    os.environ["BENCH_VENDOR_TOKEN"] = server.tokens[0]
    os.environ["BENCH_HOOKS"] = "bench-webhook-secret"
    crm = f'kind: hubspot, base_url: "{server.base_url}", lookback_seconds: 5'
    hooks = 'webhook_secret: "env:BENCH_HOOKS"'
    vendor_portal = _portal_number(server, server.tokens[0])
    (folder / "dealsync.yaml").write_text(
        f"ledger: {ledger_url}\n"
        "vendor:\n"
        f'  crm: {{{crm}, token: "env:BENCH_VENDOR_TOKEN", {hooks}, portal_id: {vendor_portal}}}\n'
        "  owner_assignment: {strategy: round_robin, pool: [rep1@vendor.test, rep2@vendor.test]}\n"
        f'partner_defaults: {{crm: {{{crm}, token: "env:BENCH_{{ID}}_TOKEN", {hooks}}}}}\n'
        "partners_file: partners.csv\n"
    )
    rows = ["id,portal_id"]
    for n in range(1, partners + 1):
        os.environ[f"BENCH_{_pid(n).upper()}_TOKEN"] = server.tokens[n]
        rows.append(f"{_pid(n)},{_portal_number(server, server.tokens[n])}")
    (folder / "partners.csv").write_text("\n".join(rows) + "\n")
    return folder / "dealsync.yaml"


def _portal_number(server: SandboxProcess, token: str) -> int:
    return int(_api(server, token, "GET", "/account-info/v3/details").json()["portalId"])


def _cycle(
    name: str,
    server: SandboxProcess,
    partners: int,
    stack: PrefectStack,
    batches: int,
    subflows: bool = True,
) -> None:
    """One sync-all-partners run and every batch it starts, timed to the last one's end."""
    vendor = server.tokens[0]
    server.admin("DELETE", "requests", token=vendor)
    assert server.process is not None
    groups = {
        f"sandbox ({partners + 1} portals)": [server.process.pid],
        "Prefect server": [stack.processes[0].pid],
        "workers and flow runs": [p.pid for p in stack.processes[1:]],
    }
    cpu_before, busy_before = tree_seconds(groups), machine_busy_seconds()
    started = time.time()
    fan_out = run_deployment(
        "sync-all-partners/sync-all-partners",
        parameters={"batches": batches, "subflows": subflows},
        timeout=1800,
        poll_interval=1,
    )
    with get_client(sync_client=True) as client:
        tasks = {
            t.id
            for t in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[fan_out.id]))
            )
        }
        # The fan-out starts a batch (a task run of its own, the batch's parent) for each group of
        # partners with something new; one that could not start them all fails naming them, and
        # is waited for only as far as the batches it did start.
        expected = len(tasks) if fan_out.state and fan_out.state.is_completed() else None
        if expected is None:
            print(
                f"  fan-out {fan_out.state.name if fan_out.state else '?'}: {fan_out.state.message if fan_out.state else ''}"
            )
        batches: list[Any] = []
        while tasks:
            batches = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_task_run_id=FlowRunFilterParentTaskRunId(any_=list(tasks))
                )
            )
            final = all(r.state and r.state.is_final() for r in batches)
            if final and len(batches) == (expected or len(batches)):
                break
            time.sleep(1)
        fan_out = client.read_flow_run(fan_out.id)
        steps = [  # what the fan-out itself took: the vendor read once, the look at every partner
            log.message
            for log in client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[fan_out.id]))
            )
            if "read the vendor once" in log.message or "had nothing new" in log.message
        ]
        members: list[Any] = []
        if batches:
            members = _all_flow_runs(
                client,
                FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[b.id for b in batches])
                ),
            )
        outcomes = _inline_outcomes(client, batches) if batches and not subflows else None
    ends = [r.end_time.timestamp() for r in [*batches, fan_out] if r.end_time]
    ended = max(ends)
    states = Counter(r.state.name for r in members if r.state)
    if outcomes is not None:  # partners run as plain calls: their rows in the batches' tables
        members, states = outcomes, Counter(o.split(":")[0].capitalize() for o in outcomes)
    wall = ended - started
    counts = server.admin("GET", "requests", token=vendor).json()
    rate = counts["total"] / wall
    print(
        f"  {name:<26} {wall:>7.1f} s wall; vendor portal {counts['total']:>6} calls, "
        f"{rate:5.1f}/s = {rate / CEILING_PER_S:.0%} of its ceiling, {counts['rate_limited']} answers 429; "
        f"flow-run processes {len(batches)} (batches), partner runs {len(members)} of {partners} "
        f"{dict(states)}"
    )
    for step in steps:
        print(f"      fan-out: {step}")
    used = {g: s - cpu_before[g] for g, s in tree_seconds(groups).items()}
    busy = machine_busy_seconds() - busy_before
    shares = ", ".join(f"{g} {s:,.0f} s" for g, s in used.items())
    per_run = used["workers and flow runs"] / len(members) if members else 0.0
    print(
        f"      CPU: {busy:,.0f} s busy of {os.cpu_count()} cores x {wall:,.0f} s; {shares}, "
        f"the rest (PostgreSQL, this script) {busy - sum(used.values()):,.0f} s; workers and flow "
        f"runs per partner run {per_run:.2f} s (its own work included)"
    )


def _inline_outcomes(client: Any, batches: list[Any]) -> list[str]:
    """Each partner's outcome in the table artifacts of batches without subflows."""
    tables = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[b.id for b in batches]),
            type=ArtifactFilterType(any_=["table"]),
        )
    )
    batch_tables = [t for t in tables if "run in this batch" in (t.description or "")]
    rows = [
        row
        for t in batch_tables
        for row in (json.loads(t.data) if isinstance(t.data, str) else t.data)
    ]
    return [str(row["outcome"]) for row in rows]


def _all_flow_runs(client: Any, flow_filter: FlowRunFilter) -> list[Any]:
    """Every flow run the filter finds (the API answers 200 at a time)."""
    found: list[Any] = []
    while True:
        page = client.read_flow_runs(flow_run_filter=flow_filter, limit=200, offset=len(found))
        found += page
        if len(page) < 200:
            return found


def _check(server: SandboxProcess, ledger_url: str, partners: int, deals: int) -> None:
    """Every partner deal has exactly one vendor twin and one link; no key twice."""
    vendor = server.tokens[0]
    keys: Counter[str] = Counter()
    after = None
    while True:
        params = {"limit": 100, "properties": "dealsync_key"}
        if after:
            params["after"] = after
        page = _api(server, vendor, "GET", "/crm/v3/objects/deals", params=params).json()
        keys.update(r["properties"].get("dealsync_key") or "" for r in page["results"])
        after = (page.get("paging") or {}).get("next", {}).get("after")
        if not after:
            break
    engine = sa.create_engine(ledger_url)
    with engine.connect() as conn:
        links = conn.execute(
            sa.text("SELECT count(*) FROM links WHERE state = 'active' AND object_type = 'deals'")
        ).scalar_one()
    engine.dispose()
    twice = sum(1 for n in keys.values() if n > 1)
    expected = partners * deals
    print(
        f"  check: {sum(keys.values()):,} vendor twins (expected {expected:,}), {twice} keys twice, "
        f"{links:,} links; {'nothing lost or duplicated' if links == expected == sum(keys.values()) and not twice else 'MISMATCH'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partners", type=int, default=50)
    parser.add_argument("--deals", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs-per-worker", type=int, default=4)
    parser.add_argument("--batches", type=int, default=8, help="sync-all-partners' batches")
    parser.add_argument(
        "--burst", type=int, default=0, help="then edit this many partners at once (webhooks)"
    )
    parser.add_argument("--edits", type=int, default=10, help="single edits before the burst")
    parser.add_argument(
        "--no-subflows",
        dest="subflows",
        action="store_false",
        help="batches run their partners as plain calls, not a subflow each",
    )
    args = parser.parse_args()

    database = f"dealsync_bench_{secrets.token_hex(4)}"
    # The Prefect server keeps its own state in PostgreSQL too: on SQLite it answers 503 under
    # fifty runs' task updates (as Prefect's docs warn for busy servers).
    prefect_database = f"{database}_prefect"
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {database}"))
        conn.execute(sa.text(f"CREATE DATABASE {prefect_database}"))
    ledger_url = f"postgresql+psycopg://root@127.0.0.1:5432/{database}"
    try:
        with (
            SandboxProcess(portals=args.partners + 1) as server,
            tempfile.TemporaryDirectory() as folder,
        ):
            config_file = _config(Path(folder), server, ledger_url, args.partners)
            config = load_config(config_file)
            Ledger.open(ledger_url)
            prepare_portals(config)
            vendor = server.tokens[0]
            for email in ("rep1@vendor.test", "rep2@vendor.test"):
                server.admin("POST", "owners", token=vendor, json={"email": email})
            day_ago = int(time.time() * 1000) - 86_400_000
            for token in server.tokens[1:]:
                server.admin(
                    "POST",
                    "seed",
                    token=token,
                    json={
                        "objectType": "deals",
                        "count": args.deals,
                        "properties": {"dealname": "Shared {i}", "dealsync_shared": "true"},
                        "timestamp": day_ago,
                        "timestampStep": 1,
                    },
                )
            print(
                f"{args.partners} partner portals x {args.deals:,} shared deals, one vendor portal, "
                f"{args.workers} Prefect workers of {args.runs_per_worker} runs each, batches of "
                f"the cycle: {args.batches} ({'a subflow per partner' if args.subflows else 'partners as plain calls'}), "
                "PostgreSQL ledger"
            )
            env = {
                "DEALSYNC_CONFIG": str(config_file),
                "PREFECT_API_DATABASE_CONNECTION_URL": (
                    f"postgresql+asyncpg://root@127.0.0.1:5432/{prefect_database}"
                ),
            } | {k: v for k, v in os.environ.items() if k.startswith("BENCH_")}
            with PrefectStack(
                home=Path(folder) / "prefect",
                port=free_port(),
                worker_env=env,
                ui=False,
                poll_seconds=1,
            ) as stack:
                stack.start_server()
                stack.deploy()
                for _ in range(args.workers):
                    stack.start_worker(args.runs_per_worker)
                stack.pause_schedules()
                with temporary_settings(updates={PREFECT_API_URL: stack.api_url}):
                    _cycle(
                        "first sync of all",
                        server,
                        args.partners,
                        stack,
                        args.batches,
                        args.subflows,
                    )
                    _check(server, ledger_url, args.partners, args.deals)
                    time.sleep(6)  # a lookback after the first sync started
                    # The first sync's own writes are changes since it started: read back once.
                    _cycle(
                        "cycle after first sync",
                        server,
                        args.partners,
                        stack,
                        args.batches,
                        args.subflows,
                    )
                    time.sleep(6)  # a lookback after the last change: what a quiet cycle is
                    _cycle("quiet cycle", server, args.partners, stack, args.batches, args.subflows)
                    edits = _edit_everywhere(server, ledger_url)
                    _cycle(
                        "cycle after 1% edits",
                        server,
                        args.partners,
                        stack,
                        args.batches,
                        args.subflows,
                    )
                    _check(server, ledger_url, args.partners, args.deals)
                    time.sleep(1)  # search shows the last writes after 0.5 s
                    arrived = _count(server, vendor, "dealsync_pain", "edited") + sum(
                        _count(server, token, "closedate", "2027-03-01")
                        for token in server.tokens[1:]
                    )
                    print(f"  edits that reached the other side: {arrived} of {edits}")
                    if args.burst:
                        _webhooks(server, ledger_url, stack, Path(folder), args.burst, args.edits)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {prefect_database} WITH (FORCE)"))
        admin.dispose()


def _edit_everywhere(server: SandboxProcess, ledger_url: str) -> int:
    """1% of each partner's links edited, at least one: on the partner side for half the partners
    and half their links, on the vendor side for the others."""
    engine = sa.create_engine(ledger_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT pair, partner_id, vendor_id FROM links "
                "WHERE state = 'active' AND object_type = 'deals' ORDER BY id"
            )
        ).all()
    engine.dispose()
    by_pair: dict[str, list[tuple[str, str]]] = {}
    for pair, partner_id, vendor_id in rows:
        by_pair.setdefault(pair, []).append((partner_id, vendor_id))
    vendor = server.tokens[0]
    edits = 0
    for pair, links in by_pair.items():
        index = int(pair[1:])
        token = server.tokens[index]
        for n, (partner_id, vendor_id) in enumerate(links[::100]):
            if (n + index) % 2:
                _api(
                    server,
                    vendor,
                    "PATCH",
                    f"/crm/v3/objects/deals/{vendor_id}",
                    json={"properties": {"closedate": "2027-03-01"}},
                )
            else:
                _api(
                    server,
                    token,
                    "PATCH",
                    f"/crm/v3/objects/deals/{partner_id}",
                    json={"properties": {"dealsync_pain": "edited"}},
                )
            edits += 1
    time.sleep(1)  # the sandbox's search shows a write after 0.5 s
    return edits


def _webhooks(
    server: SandboxProcess,
    ledger_url: str,
    stack: PrefectStack,
    folder: Path,
    partners: int,
    edits: int,
) -> None:
    """The vendor and `partners` partners' portals delivering webhooks to `dealsync receive`
    (every partner configured): `edits` single edits one after another, alternating sides, then
    one deal of each of those partners edited at once; how long each change took to reach its
    twin, and how many sync runs woke."""
    target = stack.start_receiver(folder / "dealsync.yaml", free_port())
    for token in server.tokens[: partners + 1]:
        server.admin(
            "POST",
            "webhooks",
            token=token,
            json={"targetUrl": target, "secret": os.environ["BENCH_HOOKS"]},
        )
    engine = sa.create_engine(ledger_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT DISTINCT ON (pair) pair, partner_id, vendor_id FROM links "
                "WHERE state = 'active' AND object_type = 'deals' ORDER BY pair, id"
            )
        ).all()
    engine.dispose()
    chosen = [(pair, p, v) for pair, p, v in rows if int(pair[1:]) <= partners]
    singles = []
    for n in range(edits):
        pair, partner_id, vendor_id = chosen[n % len(chosen)]
        value = f"2028-02-{n + 1:02d}"
        if n % 2:  # vendor -> partner
            change = (server.tokens[0], vendor_id, server.tokens[int(pair[1:])], partner_id)
        else:
            change = (server.tokens[int(pair[1:])], partner_id, server.tokens[0], vendor_id)
        singles += _time_edits(server, [change], value, stack)[0]
    _print_latencies(f"{edits} single edits, alternating sides", singles, None)
    changes = [
        (server.tokens[int(pair[1:])], partner_id, server.tokens[0], vendor_id)
        for pair, partner_id, vendor_id in chosen
    ]
    latencies, woken = _time_edits(server, changes, "2028-01-01", stack)
    _print_latencies(f"burst: {len(changes)} partners edited at once", latencies, woken)


def _time_edits(
    server: SandboxProcess,
    changes: list[tuple[str, str, str, str]],
    value: str,
    stack: PrefectStack,
) -> tuple[list[float], list[Any]]:
    """Edit each (token, deal) to `value` as a user would, then wait until each twin (token,
    deal) shows it: the latencies, and the flow runs started meanwhile."""
    with get_client(sync_client=True) as client:
        before = {r.id for r in _all_flow_runs(client, FlowRunFilter())}
    edited: dict[tuple[str, str], float] = {}
    for token, deal, twin_token, twin in changes:
        _api(
            server,
            token,
            "PATCH",
            f"/crm/v3/objects/deals/{deal}",
            json={"properties": {"closedate": value}},
        )
        edited[(twin_token, twin)] = time.monotonic()
    arrived: dict[tuple[str, str], float] = {}
    deadline = time.monotonic() + 1200
    while len(arrived) < len(edited) and time.monotonic() < deadline:
        waiting: dict[str, list[str]] = {}
        for twin_token, twin in edited:
            if (twin_token, twin) not in arrived:
                waiting.setdefault(twin_token, []).append(twin)
        for twin_token, twins in waiting.items():  # 100 twins a call: the portal's budget is shared
            for start in range(0, len(twins), 100):
                body = {
                    "inputs": [{"id": t} for t in twins[start : start + 100]],
                    "properties": ["closedate"],
                }
                found = _api(
                    server, twin_token, "POST", "/crm/v3/objects/deals/batch/read", json=body
                )
                now = time.monotonic()
                for record in found.json()["results"]:
                    if (record["properties"].get("closedate") or "").startswith(value):
                        arrived.setdefault((twin_token, record["id"]), now)
        time.sleep(0.3)
    with get_client(sync_client=True) as client:
        woken = [r for r in _all_flow_runs(client, FlowRunFilter()) if r.id not in before]
    return sorted(arrived[k] - edited[k] for k in arrived), woken


def _print_latencies(what: str, latencies: list[float], woken: list[Any] | None) -> None:
    if not latencies:
        print(f"  webhooks, {what}: nothing arrived")
        return
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    runs = ""
    if woken is not None:
        top = sum(1 for r in woken if r.parent_task_run_id is None)  # processes; the rest subflows
        runs = f"; flow runs woken: {top} (and {len(woken) - top} subflows)"
    print(
        f"  webhooks, {what}: {len(latencies)} arrived, median "
        f"{statistics.median(latencies):.1f} s, p95 {p95:.1f} s, max {latencies[-1]:.1f} s{runs}"
    )


if __name__ == "__main__":
    main()
