"""Benchmark: the engine alone (validate, map, plan) for a pair with many links, 1% of them changed.

No CRM and no ledger: a run's in-memory state is built as a run holds it (the ids of every link and
both sides' census of counted records, the changed records of both sides, the links they touch), then
the pandera validation, the mapping and the pure planner run over it. Prints records per second
through validate + map + plan and the process's peak memory, against the baseline of building the
run's state alone.

    .venv/bin/python bench/engine.py [--links 100000,1000000] [--changed 0.01]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from connectors.base import Record
from dealsync.heap import settled_state
from dealsync.mapping import load_mapping
from dealsync.model import Link, LinkedIds
from dealsync.phases.deals import validate
from dealsync.pipeline.reading import Pulled
from dealsync.plan import PlanInput, make_plan

MAPPING = Path(__file__).resolve().parent.parent / "mappings" / "shared_deal.yaml"
STAMP = "2026-11-01T10:00:00.000Z"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _record(asked: list[str], record_id: str, **properties: str) -> Record:
    """A record as HubSpot returns it: every property asked for, null where empty, and a
    modification time of its own (as real records have: no two alike)."""
    values: dict[str, str | None] = dict.fromkeys(asked)
    stamp = f"2026-11-01T10:{int(record_id) % 3600 // 60:02d}:{int(record_id) % 60:02d}.{int(record_id) % 1000:03d}Z"
    return Record(record_id, {**values, "hs_lastmodifieddate": stamp, **properties}, stamp, stamp)


def bench(links: int, fraction: float, show: bool = True) -> None:
    mapping = load_mapping(MAPPING)
    started = time.perf_counter()
    every = [LinkedIds(n, str(10**9 + n), str(2 * 10**9 + n)) for n in range(links)]
    census = {side: {getattr(lk, f"{side}_id") for lk in every} for side in ("partner", "vendor")}
    changed = every[:: max(int(1 / fraction), 1)]
    # A base as the planner writes it: every field synced after creation, None where empty.
    always = [r.name for r in mapping.synced_fields() if r.when == "always"]
    base = dict.fromkeys(always) | {
        "close_date": "2027-01-15",
        "pain": "old",
        "vendor_amount": "100",
    }
    touched = [Link(lk.id, lk.partner_id, lk.vendor_id, "partner", base) for lk in changed]
    partner = {
        lk.partner_id: _record(
            mapping.properties("partner"),
            lk.partner_id,
            dealname="Deal",
            closedate="2027-01-15",
            dealsync_pain=f"new pain {lk.id}",
            dealsync_shared="true",
        )
        for lk in changed
    }
    vendor = {
        lk.vendor_id: _record(
            mapping.properties("vendor"),
            lk.vendor_id,
            dealname="Deal",
            closedate="2027-02-01" if lk.id % 2 else "2027-01-15",
            amount="100",
            dealstage="qualifiedtobuy",
            dealsync_partner="acme",
        )
        for lk in changed
    }
    built = time.perf_counter() - started
    pulled = Pulled(
        "deals",
        {"partner": partner, "vendor": vendor},
        {"partner": {}, "vendor": {}},
        touched,
        set(),
        {"partner": None, "vendor": None},
    )
    ctx: Any = SimpleNamespace(
        pair="acme",
        connectors={
            "partner": SimpleNamespace(kind="hubspot"),
            "vendor": SimpleNamespace(kind="hubspot"),
        },
    )
    phase: Any = SimpleNamespace(ctx=ctx, mapping=mapping, object_type="deals")
    started = time.perf_counter()
    with settled_state():  # as a run does once it holds its state
        checked = validate(phase, pulled)
        validated = time.perf_counter() - started
        plan = make_plan(
            PlanInput(
                pair="acme",
                mapping=mapping,
                links=tuple(touched),
                records=checked.records,
                active_links=links,
            )
        )
    engine_s = time.perf_counter() - started
    records = len(partner) + len(vendor)
    if not show:
        return
    print(
        f"{links:>9,} links, {records:,} changed records: run state built in {built:.2f} s; "
        f"validate + map {validated:.2f} s, + plan {engine_s:.2f} s = "
        f"{records / engine_s:,.0f} records/s; {len(plan.updates):,} updates planned, "
        f"{len(checked.quarantined)} quarantined; peak memory {_peak_mb():,.0f} MB"
    )
    del census


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", default="100000,1000000")
    parser.add_argument("--changed", type=float, default=0.01)
    args = parser.parse_args()
    # What a process pays once (pandera's lazy imports, schemas built) is not per record: warm up.
    bench(1_000, args.changed, show=False)
    for links in (int(n) for n in args.links.split(",")):
        bench(links, args.changed)


if __name__ == "__main__":
    main()
