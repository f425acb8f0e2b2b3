"""How a CRM's listings page, once per style, for every endpoint that uses it; batches and times."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

Page = dict[str, Any]
Item = TypeVar("Item")


def chunks(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    """`items` in slices of at most `size` (a batch API's limit)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def epoch_ms(text: str) -> int:
    """An ISO 8601 time (Z or an offset, with or without colon) in epoch milliseconds."""
    text = text.replace("Z", "+00:00")
    if text[-5:-4] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"  # +0000 -> +00:00
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def after_pages(
    fetch: Callable[[str | None], Page], cap: int | None = None
) -> Iterator[tuple[Page, bool]]:
    """HubSpot's paging: each page names the `after` of the next (`paging.next.after`). With a `cap`
    (search stops at 10,000 results), the flag is True on the last page the cap lets through."""
    after: str | None = None
    while True:
        page = fetch(after)
        next_after = (page.get("paging") or {}).get("next", {}).get("after")
        if not next_after:
            yield page, False
            return
        if cap is not None and int(next_after) >= cap:
            yield page, True
            return
        yield page, False
        after = str(next_after)


def offset_pages(
    fetch: Callable[[int], Page], items: Callable[[Page], list[Any]], total: Callable[[Page], int]
) -> Iterator[list[Any]]:
    """Offset paging (BottleCRM): pages of items until the count the listing gives is reached."""
    offset = 0
    while True:
        page = fetch(offset)
        found = items(page)
        yield found
        offset += len(found)
        if not found or offset >= total(page):
            return
