"""Work on many portals at once: each partner's portal has its own rate budget, so a thousand of
them are looked at side by side, a bounded number at a time, rather than one after another."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
PORTALS_AT_ONCE = 16  # enough to keep a CRM's latency out of the way, few enough for one process


def each_at_once(
    work: Callable[[Item], Result], items: Iterable[Item], at_once: int = PORTALS_AT_ONCE
) -> list[Result]:
    """`work` on every item, up to `at_once` of them concurrently; results in the items' order (an
    exception of one is raised once all have finished)."""
    listed = list(items)
    if len(listed) < 2 or at_once < 2:
        return [work(item) for item in listed]
    with ThreadPoolExecutor(max_workers=min(at_once, len(listed))) as pool:
        return list(pool.map(work, listed))
