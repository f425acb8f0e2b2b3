"""Which expected records a CRM no longer counts, found by counting id ranges instead of reading them.

Pure: the CRM is two functions. `count(low, high)` answers how many records of an id range the CRM
counts (one cheap call); `listing(low, high)` names them (a call per 200). A range whose count equals
what is expected in it is done; one that falls short is halved, counting only the left half (the right
half's count is the difference), until a range is small enough to list. For d missing records among n
that is about d * log2(n / leaf) counts and d listings; when that would cost more than listing the whole
range, the range is listed instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LEAF = 200  # ids a single listing call names
LOWEST, HIGHEST = 0, 2**63 - 1


@dataclass
class Found:
    """Expected ids the CRM does not count (deleted, or no longer matching), and counted ids that
    were not expected (seen in listings), with the calls it took."""

    missing: set[int] = field(default_factory=set)
    unexpected: set[int] = field(default_factory=set)
    counts: int = 0
    listings: int = 0


def find_missing(
    expected: Sequence[int],
    live: int,
    count: Callable[[int, int], int],
    listing: Callable[[int, int], set[int]],
    leaf: int = LEAF,
) -> Found:
    """The expected ids (sorted) missing from the CRM's count `live` of the whole id space."""
    found = Found()
    _search(sorted(expected), LOWEST, HIGHEST, live, count, listing, leaf, found)
    return found


def _search(
    ids: list[int],
    low: int,
    high: int,
    live: int,
    count: Callable[[int, int], int],
    listing: Callable[[int, int], set[int]],
    leaf: int,
    found: Found,
) -> None:
    short = len(ids) - live
    if short <= 0:
        return  # nothing missing here (a surplus could hide a deletion: --full and audit find it)
    pages = math.ceil(len(ids) / leaf)
    if len(ids) <= leaf or short * math.ceil(math.log2(pages) + 1) >= pages:
        counted = listing(low, high)
        found.listings += max(1, math.ceil(len(counted) / leaf))
        expected = set(ids)
        found.missing |= expected - counted
        found.unexpected |= counted - expected
        return
    middle = len(ids) // 2
    split = ids[middle - 1]  # the left half is [low, split], the right half (split, high]
    left = count(low, split)
    found.counts += 1
    _search(ids[:middle], low, split, left, count, listing, leaf, found)
    _search(ids[middle:], split + 1, high, live - left, count, listing, leaf, found)
