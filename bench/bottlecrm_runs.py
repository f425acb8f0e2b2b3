"""Benchmark: what a sync run costs for a BottleCRM partner, which has no change feed.

A real BottleCRM org holds shared deals (each with a comment) among many private ones; a sandbox is the
vendor. Prints the calls and seconds of the first sync, of a quiet run, and of a run after one comment
changed, against the baseline a naive snapshot sync pays on every run: reading the detail of every deal
in the org (the only place comments and attachments are listed).

    .venv/bin/python bench/bottlecrm_runs.py [--shared 100] [--private 400]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bottlecrm.server import BottleCrmServer
from connectors.base import WriteInput
from connectors.bottlecrm import BottleCrmConnector
from dealsync.cli.serve import write_local_config
from dealsync.config import load_config
from dealsync.context import open_context
from dealsync.ledger import Ledger
from dealsync.outcomes import RunReport
from dealsync.run import run_pair
from dealsync.setup import prepare_portals
from sandbox.server import SandboxProcess


def _timed_run(config_file: Path) -> tuple[RunReport, float]:
    config = load_config(config_file)
    started = time.perf_counter()
    report = run_pair(open_context(config, "beta", Ledger(config.ledger_url)))
    return report, time.perf_counter() - started


def _naive_scan(server: BottleCrmServer) -> tuple[int, float]:
    """List every deal, then read every deal's detail: (calls, seconds)."""
    connector = BottleCrmConnector(server.base_url, server.token, connection="baseline")
    started = time.perf_counter()
    ids = [r.id for page in connector.pull_changes("deals", None, []) for r in page.records]
    for deal_id in ids:
        connector.detail(deal_id)
    return connector.http.calls, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=int, default=100)
    parser.add_argument("--private", type=int, default=400)
    args = parser.parse_args()

    with (
        SandboxProcess() as vendor,
        BottleCrmServer(org_name="Bench") as beta,
        tempfile.TemporaryDirectory() as folder,
    ):
        config_file = write_local_config(
            Path(folder),
            vendor.base_url,
            vendor.token,
            {"beta": (beta.base_url, beta.token, "bottlecrm")},
        )
        config = load_config(config_file)
        Ledger(config.ledger_url).migrate()
        prepare_portals(config)
        crm = BottleCrmConnector(beta.base_url, beta.token, connection="bench user")
        started = time.perf_counter()
        deals = [
            WriteInput(
                f"s{i}", {"name": f"Shared {i}", "stage": "PROSPECTING", "tags": "dealsync-shared"}
            )
            for i in range(args.shared)
        ] + [
            WriteInput(f"p{i}", {"name": f"Private {i}", "stage": "PROSPECTING"})
            for i in range(args.private)
        ]
        made = crm.create("deals", deals)
        shared_ids = [o.record.id for o in made[: args.shared]]
        for deal_id in shared_ids:
            crm.add_comment(deal_id, f"First call for {deal_id[:8]}")
        print(
            f"seeded {args.shared} shared deals (a comment each) and {args.private} private ones "
            f"in {time.perf_counter() - started:.1f} s"
        )

        first, first_s = _timed_run(config_file)
        quiet, quiet_s = _timed_run(config_file)
        comment = crm.comments(shared_ids[0])[0]["id"]
        crm.edit_comment(comment, "First call went well")
        one, one_s = _timed_run(config_file)
        naive_calls, naive_s = _naive_scan(beta)

        print(f"first sync: {first.api_calls} calls, {first_s:.1f} s, created {first.created}")
        print(f"quiet run: {quiet.api_calls} calls, {quiet_s:.2f} s")
        print(
            f"one comment edited: {one.api_calls} calls, {one_s:.2f} s, "
            f"vendor notes updated {one.notes.get('vendor notes updated', 0)}"
        )
        print(f"baseline, detail of every deal: {naive_calls} calls, {naive_s:.2f} s")
        print(
            f"ratio quiet run / baseline: {quiet.api_calls / naive_calls:.3f}x the calls, "
            f"{quiet_s / naive_s:.3f}x the time"
        )


if __name__ == "__main__":
    main()
