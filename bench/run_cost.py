"""Benchmark: what one partner's runs cost, against the lower bound of each run.

Two sandboxes at HubSpot's default limits (190 requests / 10 s, 5 searches / s, search lag 0.5 s), a
partner portal holding N shared deals modified a day ago. For each N: the first sync, a quiet run, a
run after 1% edits on each side, a run after 1% of the deals were archived (half on each side). Each
run prints the calls both portals answered, wall time, and the lower bound of that run:

    per side and object: 1 cursor read + ceil(changed / 200) search pages
    per side, object and kind of write: ceil(writes / 100) batch writes

A quiet run is measured in steady state: once the pull's lookback (set short here, 5 s, as the
sandbox's search lag is 0.5 s; 5 minutes in production) has passed since the last change.

    .venv/bin/python bench/run_cost.py [--sizes 1000,10000,100000] [--lookback-seconds 5]
    .venv/bin/python bench/run_cost.py --partner-crm salesforce --sizes 1000,10000
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import salesforce_cost
from user_calls import user_call

from dealsync.cli.serve import write_local_config
from dealsync.config import load_config
from dealsync.context import open_context
from dealsync.ledger import Ledger
from dealsync.outcomes import RunReport
from dealsync.run import run_pair
from dealsync.setup import prepare_portals
from sandbox.server import SandboxProcess

OBJECTS = ("deals", "notes")


@dataclass
class Measured:
    """One run: its report, wall seconds, and the calls each portal answered by route."""

    report: RunReport
    seconds: float
    routes: dict[str, Counter[str]]
    answer_s: float  # of the wall time, spent waiting for the portals' answers

    @property
    def calls(self) -> int:
        return sum(sum(c.values()) for c in self.routes.values())

    def lower_bound(self) -> int:
        """One cursor read per side and object, the changed records' search pages, batch writes."""
        bound = 0
        pulled = self.report.pulled
        for side in ("partner", "vendor"):
            bound += 1 + math.ceil(pulled.get(f"{side} changed", 0) / 200)
            bound += 1  # the notes' cursor read
            for kind in (self.report.created, self.report.updated, self.report.deleted):
                bound += math.ceil(kind.get(side, 0) / 100)
        return bound


def _run(config_file: Path, servers: dict[str, SandboxProcess]) -> Measured:
    for server in servers.values():
        server.admin("DELETE", "requests")
    config = load_config(config_file)
    started = time.perf_counter()
    ctx = open_context(config, "acme", Ledger(config.ledger_url))
    report = run_pair(ctx)
    seconds = time.perf_counter() - started
    answer_s = sum(c.http.answer_s for c in ctx.connectors.values())
    routes = {
        side: Counter(server.admin("GET", "requests").json()["by_route"])
        for side, server in servers.items()
    }
    return Measured(report, seconds, routes, answer_s)


def _show(name: str, measured: Measured, detail: bool) -> None:
    bound = measured.lower_bound()
    per_side = max(sum(c.values()) for c in measured.routes.values())
    print(
        f"  {name:<22} {measured.calls:>6} calls ({per_side:>5} at most per side) "
        f"{measured.seconds:>7.2f} s ({measured.answer_s:.2f} s waiting for answers)   "
        f"lower bound {bound:>5}  ratio {measured.calls / bound:.2f}x"
    )
    if detail:
        for side, routes in measured.routes.items():
            listed = ", ".join(f"{route} {n}" for route, n in sorted(routes.items()))
            print(f"      {side}: {listed}")


def _wait_quiet(lookback_s: float) -> None:
    """Let the lookback pass since the last change (what a quiet run is)."""
    time.sleep(lookback_s + 1.0)


def bench(size: int, lookback_s: float, detail: bool) -> None:
    with (
        SandboxProcess() as vendor,
        SandboxProcess() as partner,
        tempfile.TemporaryDirectory() as folder,
    ):
        servers = {"vendor": vendor, "partner": partner}
        config_file = write_local_config(
            Path(folder), vendor.base_url, vendor.token, {"acme": (partner.base_url, partner.token)}
        )
        text = config_file.read_text().replace(
            "kind: hubspot,", f"kind: hubspot, lookback_seconds: {lookback_s},"
        )
        config_file.write_text(text)
        config = load_config(config_file)
        Ledger(config.ledger_url).migrate()
        prepare_portals(config)
        for email in ("rita@vendor.test", "sam@vendor.test"):
            vendor.admin("POST", "owners", json={"email": email, "firstName": "R", "lastName": "V"})
        day_ago = int(time.time() * 1000) - 86_400_000
        seeded = partner.admin(
            "POST",
            "seed",
            json={
                "objectType": "deals",
                "count": size,
                "properties": {
                    "dealname": "Shared {i}",
                    "dealsync_shared": "true",
                    "closedate": "2027-01-15",
                },
                "timestamp": day_ago,
                "timestampStep": 1,
            },
        ).json()
        print(f"{size:,} shared deals on the partner portal")
        _wait_quiet(
            0.0
        )  # the sandbox's search shows a write after 0.5 s, as HubSpot's after seconds
        first = _run(config_file, servers)
        _show("first sync", first, detail)
        _wait_quiet(lookback_s)
        settle = _run(config_file, servers)  # re-reads the first sync's own writes (lookback)
        _show("run after first sync", settle, detail)
        _wait_quiet(lookback_s)
        _show("quiet run", _run(config_file, servers), detail)

        ledger = Ledger(config.ledger_url)
        links = ledger.active_links("acme")
        step = 100
        edited = links[::step]
        for n, link in enumerate(edited):
            if n % 2:
                _edit(vendor, link.vendor_id, {"closedate": "2027-03-01"})
            else:
                _edit(partner, link.partner_id, {"dealsync_pain": f"pain {n}"})
        _wait_quiet(0.0)
        _show(f"after {len(edited)} edits", _run(config_file, servers), detail)
        _wait_quiet(lookback_s)
        gone = links[step // 2 :: step]
        for n, link in enumerate(gone):
            side, record = (vendor, link.vendor_id) if n % 2 else (partner, link.partner_id)
            _archive(side, record)
        _wait_quiet(0.0)
        _show(f"after {len(gone)} archived", _run(config_file, servers), detail)
        _wait_quiet(lookback_s)
        _show("quiet run again", _run(config_file, servers), detail)
        rate_limited = sum(
            s.admin("GET", "requests").json()["rate_limited"] for s in servers.values()
        )
        print(f"  seeded ids {seeded['firstId']}..{seeded['lastId']}; 429 answers: {rate_limited}")


def _edit(server: SandboxProcess, record_id: str, properties: dict[str, str]) -> None:
    path = f"/crm/v3/objects/deals/{record_id}"
    user_call(server.base_url, server.token, "PATCH", path, json={"properties": properties})


def _archive(server: SandboxProcess, record_id: str) -> None:
    user_call(server.base_url, server.token, "DELETE", f"/crm/v3/objects/deals/{record_id}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--lookback-seconds", type=float, default=5.0)
    parser.add_argument("--detail", action="store_true", help="print the calls by route")
    parser.add_argument(
        "--partner-crm",
        choices=("hubspot", "salesforce"),
        default="hubspot",
        help="the partner's CRM (salesforce: see bench/salesforce_cost.py)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.partner_crm == "salesforce":
        salesforce_cost.main(sizes, args.detail)
        return
    for size in sizes:
        bench(size, args.lookback_seconds, args.detail)


if __name__ == "__main__":
    main()
