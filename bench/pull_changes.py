"""Benchmark: incremental change capture vs. a full re-scan, against a sandbox holding many deals.

Prints the sandbox's page latencies at this size, then the cost (calls, seconds) of pulling the
changed deals through the connector's cursor, against the baseline a naive sync pays: listing every
deal again. Both run in this process against the same server under HubSpot's default rate limits.

    .venv/bin/python bench/pull_changes.py [--deals 100000] [--changed 10000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests

from connectors.hubspot import HubSpotConnector
from sandbox.server import SandboxProcess


def _latencies_ms(session: requests.Session, base_url: str, rounds: int = 20) -> dict[str, float]:
    """Median milliseconds of a list page and of a search page deep into the data."""
    timings: dict[str, list[float]] = {"list page (100)": [], "search page (200)": []}
    for n in range(rounds):
        started = time.perf_counter()
        session.get(
            f"{base_url}/crm/v3/objects/deals", params={"limit": 100, "after": str(n * 1000)}
        ).raise_for_status()
        timings["list page (100)"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "amount", "operator": "GTE", "value": "0"}]}
            ],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "limit": 200,
            "after": str(n * 400),
        }
        session.post(f"{base_url}/crm/v3/objects/deals/search", json=body).raise_for_status()
        timings["search page (200)"].append((time.perf_counter() - started) * 1000)
        time.sleep(0.25)  # stay inside the search rate limit
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=10_000)
    args = parser.parse_args()

    with SandboxProcess() as server:
        base = int(time.time() * 1000) - 86_400_000
        started = time.perf_counter()
        server.admin(
            "POST",
            "seed",
            json={
                "objectType": "deals",
                "count": args.deals - args.changed,
                "properties": {"dealname": "deal {i}", "amount": "100"},
                "timestamp": base,
                "timestampStep": 1,
            },
        )
        cursor = base + args.deals
        server.admin(
            "POST",
            "seed",
            json={
                "objectType": "deals",
                "count": args.changed,
                "properties": {"dealname": "changed {i}", "amount": "200"},
                "timestamp": cursor + 1000,
                "timestampStep": 1,
            },
        )
        print(
            f"seeded {args.deals:,} deals in {time.perf_counter() - started:.1f}s ({args.changed:,} changed after the cursor)"
        )
        time.sleep(0.6)  # the search visibility lag

        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {server.token}"
        for name, ms in _latencies_ms(session, server.base_url).items():
            print(f"sandbox {name}: median {ms:.1f} ms at {args.deals:,} deals")

        time.sleep(1.2)  # let the direct searches above leave the search rate window
        incremental = HubSpotConnector(
            server.base_url, server.token, connection="incremental", lookback_ms=0
        )
        started = time.perf_counter()
        pulled = sum(
            len(p.records)
            for p in incremental.pull_changes("deals", cursor, ["dealname", "amount"])
        )
        inc_s, inc_calls = time.perf_counter() - started, incremental.http.calls

        full = HubSpotConnector(server.base_url, server.token, connection="full-rescan")
        started = time.perf_counter()
        scanned = sum(
            len(p.records) for p in full.pull_changes("deals", None, ["dealname", "amount"])
        )
        full_s, full_calls = time.perf_counter() - started, full.http.calls

        limited = server.admin("GET", "requests").json()["rate_limited"]
        print(f"incremental pull: {pulled:,} changed deals, {inc_calls} calls, {inc_s:.1f}s")
        print(f"full re-scan (baseline): {scanned:,} deals, {full_calls} calls, {full_s:.1f}s")
        print(
            f"ratio: incremental costs {inc_calls / full_calls:.3f}x the calls and {inc_s / full_s:.3f}x the time of a re-scan"
        )
        print(f"429 answers during the run: {limited}")


if __name__ == "__main__":
    main()
