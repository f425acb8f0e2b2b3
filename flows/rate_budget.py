"""The vendor portal's API budget, shared by every run on every worker, on one machine or many.

Two token buckets per portal kept in the ledger that every worker already shares (one for calls, one
for searches), named after the portal (a digest of its URL and token, never the token). Every call
books its permit with one UPDATE that says when it may go; nobody polls. The buckets are shaped so
the portal never sees more than 95 % of its budget in any window.

Why not Prefect's global concurrency limits used as rate limits: Prefect 3.9 refills such a limit by
whole slots for the time since the limit's row last changed, and every refused attempt changes it.
With many runs waiting, the refill stops: fifty partner runs on four workers got 194 vendor calls
through in seven minutes from a limit refilling at 16 a second (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from connectors.ratelimit import portal_key, share_budget
from dealsync.config import CrmConfig
from dealsync.ledger import Ledger

MARGIN = 0.95  # of the announced budget: what the jitter between our count and the server's leaves
BURST = 5  # permits an idle portal may spend at once
SEARCH_SHARE = 0.6  # of the portal's searches a second (see `buckets`)


@dataclass(frozen=True)
class Bucket:
    """A token bucket: refilled at `per_second`, holding at most `burst` unused permits."""

    name: str
    per_second: float
    burst: float


def buckets(
    key: str, per_window: int, window_s: float, searches_per_s: int
) -> tuple[Bucket, Bucket]:
    """The general and the search bucket of a portal. In any window a bucket admits at most its
    burst plus a window's refill: 95 % of the portal's budget."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    general = Bucket(
        f"dealsync-rate-{digest}", max((per_window * MARGIN - BURST) / window_s, 0.1), BURST
    )
    # Searches have a one-second window, the easiest to crowd when a loaded worker sends a booked
    # permit late: no burst, and 60 % of the budget (3 a second of 5), so a call may leave up to
    # 0.6 s after its turn before two seconds' calls land in one. Measured: 3.75 a second let one
    # 429 through in a 50-partner first sync on two busy cores.
    search = Bucket(f"dealsync-search-{digest}", max(searches_per_s * SEARCH_SHARE, 0.1), 1)
    return general, search


class LedgerBudget:
    """Permits from a portal's two buckets in the ledger, one per call."""

    def __init__(self, ledger: Ledger, general: Bucket, search: Bucket) -> None:
        self.ledger = ledger
        self.buckets = {False: general, True: search}
        self.taken = 0
        self.waited_s = 0.0

    def take(self, search: bool) -> None:
        """Book one permit and wait until it is due."""
        bucket = self.buckets[search]
        wait = self.ledger.reserve(bucket.name, 1, bucket.per_second, bucket.burst)
        self.taken += 1
        if wait > 0:
            self.waited_s += wait
            time.sleep(wait)


@contextmanager
def shared_budget(
    crm: CrmConfig,
    ledger_url: str,
    per_window: int = 190,
    window_s: float = 10.0,
    searches_per_s: int = 5,
) -> Iterator[LedgerBudget]:
    """While inside, every call this process makes to the portal also books a permit from its
    buckets in the ledger."""
    token = crm.token()
    general, search = buckets(portal_key(crm.base_url, token), per_window, window_s, searches_per_s)
    ledger = Ledger(ledger_url)
    budget = LedgerBudget(ledger, general, search)
    share_budget(crm.base_url, token, budget)
    try:
        yield budget
    finally:
        share_budget(crm.base_url, token, None)
        ledger.close()
