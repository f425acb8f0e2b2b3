"""Cursor-based change capture on HubSpot: the 10,000-result cap, shared timestamps, lookback, lag."""

from __future__ import annotations

import time

import pytest

from connectors.hubspot import HubSpotConnector
from sandbox.server import SandboxProcess
from sandbox.traffic import Limits

SEARCH = "POST /crm/v3/objects/deals/search"
pytestmark = pytest.mark.slow


def _seed(sandbox, count: int, stamp: int, step: int) -> None:
    sandbox.admin(
        "POST",
        "seed",
        json={
            "objectType": "deals",
            "count": count,
            "properties": {"dealname": "deal {i}"},
            "timestamp": stamp,
            "timestampStep": step,
        },
    )


def _pull_ids(connector: HubSpotConnector, since: int) -> tuple[list[str], int | None]:
    ids: list[str] = []
    cursor = None
    for page in connector.pull_changes("deals", since, ["dealname"]):
        ids += [r.id for r in page.records]
        cursor = page.cursor
    return ids, cursor


def _search_calls(sandbox) -> int:
    return sandbox.admin("GET", "requests").json()["by_route"].get(SEARCH, 0)


def test_ten_thousand_changes_cost_fifty_searches(sandbox):
    start = int(time.time() * 1000) - 3_600_000
    _seed(sandbox, 10_000, start, 1)
    connector = HubSpotConnector(sandbox.base_url, sandbox.token, lookback_ms=0)
    ids, cursor = _pull_ids(connector, start)
    assert len(ids) == len(set(ids)) == 10_000
    assert cursor == start + 9_999
    assert _search_calls(sandbox) == 50


def test_a_window_larger_than_the_cap_is_pulled_completely(sandbox):
    start = int(time.time() * 1000) - 3_600_000
    _seed(sandbox, 10_450, start, 1)
    connector = HubSpotConnector(sandbox.base_url, sandbox.token, lookback_ms=0)
    ids, cursor = _pull_ids(connector, start)
    assert len(set(ids)) == 10_450
    assert cursor == start + 10_449
    # 50 pages up to the cap, the cut timestamp drained, then the rest: close to the minimum of 53.
    assert _search_calls(sandbox) <= 55


def test_more_than_the_cap_sharing_one_timestamp(sandbox):
    """A bulk update can stamp over 10,000 records with one timestamp; none may be lost."""
    stamp = int(time.time() * 1000) - 3_600_000
    _seed(sandbox, 10_300, stamp, 0)
    _seed(sandbox, 20, stamp + 5, 1)
    connector = HubSpotConnector(sandbox.base_url, sandbox.token, lookback_ms=0)
    ids, cursor = _pull_ids(connector, stamp)
    assert len(set(ids)) == 10_320
    assert cursor == stamp + 24


def test_lookback_rereads_recent_changes(sandbox):
    now = int(time.time() * 1000)
    _seed(sandbox, 5, now - 120_000, 0)  # two minutes ago
    _seed(sandbox, 3, now - 1_000, 0)
    with_lookback = HubSpotConnector(sandbox.base_url, sandbox.token, lookback_ms=5 * 60_000)
    without = HubSpotConnector(sandbox.base_url, sandbox.token, lookback_ms=0)
    assert len(_pull_ids(with_lookback, now - 500)[0]) == 8
    assert len(_pull_ids(without, now - 500)[0]) == 0


def test_search_lag_is_covered_by_the_next_pull():
    """A change not yet visible to search is found by the next pull from the stored cursor."""
    with SandboxProcess(
        limits=Limits(per_interval=10_000, search_per_second=100, search_lag_ms=300)
    ) as server:
        connector = HubSpotConnector(server.base_url, server.token, lookback_ms=0)
        now = int(time.time() * 1000)
        _seed(server, 3, now - 60_000, 1)
        time.sleep(0.4)  # seeded records are written now, so search sees them after the lag
        first_ids, cursor = _pull_ids(connector, now - 120_000)
        assert len(first_ids) == 3
        connector.create("deals", [_input("late")])
        lagging, after_lag = _pull_ids(connector, cursor)
        assert "late" not in _names(connector, lagging)
        time.sleep(0.4)
        caught, _ = _pull_ids(connector, after_lag or cursor)
        assert "late" in _names(connector, caught)


def _input(name: str):
    from connectors.base import WriteInput

    return WriteInput(name, {"dealname": name})


def _names(connector: HubSpotConnector, ids: list[str]) -> set[str]:
    return {r.properties["dealname"] for r in connector.read("deals", ids, ["dealname"]).values()}
