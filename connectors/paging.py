"""How a CRM's listings page, once per style, for every endpoint that uses it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Page = dict[str, Any]


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
