"""Finding deleted records by counting id ranges (`dealsync/count_search.py`), against a simulated CRM
whose count and listing are computed from the set of records it still holds."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from dealsync.count_search import LEAF, find_missing


def _crm(live: set[int]):
    calls = {"count": 0, "list": 0}

    def count(low: int, high: int) -> int:
        calls["count"] += 1
        return sum(1 for i in live if low <= i <= high)

    def listing(low: int, high: int) -> set[int]:
        calls["list"] += 1
        return {i for i in live if low <= i <= high}

    return count, listing, calls


@st.composite
def censuses(draw):
    expected = draw(st.sets(st.integers(1, 10**9), min_size=0, max_size=3000))
    ordered = sorted(expected)
    deleted = set(draw(st.lists(st.sampled_from(ordered), max_size=40))) if ordered else set()
    return expected, deleted


@settings(max_examples=150, deadline=None)
@given(censuses())
def test_every_deleted_record_is_found_and_no_live_one_is_named(case):
    expected, deleted = case
    live = expected - deleted
    count, listing, _ = _crm(live)
    found = find_missing(sorted(expected), len(live), count, listing)
    assert found.missing == deleted
    assert not found.unexpected


@settings(max_examples=150, deadline=None)
@given(censuses())
def test_the_calls_follow_the_deletions_not_the_records(case):
    expected, deleted = case
    live = expected - deleted
    count, listing, calls = _crm(live)
    find_missing(sorted(expected), len(live), count, listing)
    pages = max(1, math.ceil(len(expected) / LEAF))
    depth = math.ceil(math.log2(pages)) + 1
    if not deleted:
        assert calls == {"count": 0, "list": 0}
    # Never worse than listing every page, nor than a descent per deletion.
    assert calls["count"] + calls["list"] <= min(2 * pages, len(deleted) * (depth + 1)) + 1


@settings(max_examples=100, deadline=None)
@given(censuses(), st.sets(st.integers(1, 10**9), max_size=20))
def test_records_the_census_lacked_never_make_a_live_record_missing(case, added):
    expected, deleted = case
    live = (expected - deleted) | added
    count, listing, _ = _crm(live)
    found = find_missing(sorted(expected), len(live), count, listing)
    assert found.missing <= deleted  # a surplus may hide a deletion, never invent one
    assert found.unexpected <= added - expected


def test_one_deletion_among_ten_thousand_costs_a_descent_and_one_listing():
    expected = set(range(1, 10_001))
    count, listing, calls = _crm(expected - {7_777})
    found = find_missing(sorted(expected), 9_999, count, listing)
    assert found.missing == {7_777}
    assert calls["list"] == 1
    assert calls["count"] <= math.ceil(math.log2(10_000 / LEAF)) + 1
