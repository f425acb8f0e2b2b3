"""The vendor portal's API budget, shared by every run on every worker, on one machine or many.

Two Prefect global concurrency limits used as rate limits (token buckets: `limit` slots, refilled at
`slot_decay_per_second`), one for calls and one for searches, named after the portal (a digest of its
URL and token, never the token). Calls take permits in chunks, so the Prefect API is asked once per
few CRM calls. The bucket is shaped so that, even with every holder sitting on an unused chunk, the
portal never sees more than its budget in any window. Without a Prefect API (a CLI run), the
process's own limiter is all there is.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound

from connectors.ratelimit import portal_key, share_budget
from dealsync.config import CrmConfig

MARGIN = 0.95  # of the announced budget: what the jitter between our count and the server's leaves
CHUNK = 2  # permits a worker takes from Prefect at once
HOLDERS = 8  # workers that may each hold a chunk not yet spent


@dataclass(frozen=True)
class Bucket:
    """A Prefect rate limit: `slots` at most at once, refilled at `per_second`."""

    name: str
    slots: int
    per_second: float
    chunk: int


def buckets(
    key: str, per_window: int, window_s: float, searches_per_s: int
) -> tuple[Bucket, Bucket]:
    """The general and the search bucket of a portal. In any window a bucket admits at most its
    slots plus a window's refill; chunks taken but not yet spent add at most HOLDERS x CHUNK."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    usable = per_window * MARGIN - CHUNK - HOLDERS * CHUNK
    general = Bucket(f"dealsync-rate-{digest}", CHUNK, max(usable / window_s, 0.1), CHUNK)
    # Searches are few and their window short: one permit a call, so no chunk sits unused.
    search = Bucket(f"dealsync-search-{digest}", 1, max(searches_per_s * MARGIN - 1, 0.1), 1)
    return general, search


def ensure_bucket(bucket: Bucket) -> None:
    """Create the bucket's limit, or reshape it, so every worker uses the same one."""
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(bucket.name)
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(
                    name=bucket.name, limit=bucket.slots, slot_decay_per_second=bucket.per_second
                )
            )
            return
        if (current.limit, current.slot_decay_per_second) != (bucket.slots, bucket.per_second):
            client.update_global_concurrency_limit(
                bucket.name,
                GlobalConcurrencyLimitUpdate(
                    limit=bucket.slots, slot_decay_per_second=bucket.per_second
                ),
            )


class PrefectBudget:
    """Permits from a portal's two Prefect rate limits, taken a chunk at a time."""

    def __init__(self, general: Bucket, search: Bucket) -> None:
        self.buckets = {False: general, True: search}
        self.left = {False: 0, True: 0}
        self.asked = 0  # calls to the Prefect API
        self._lock = threading.Lock()

    def take(self, search: bool) -> None:
        """One permit (a chunk from Prefect when the last one is spent)."""
        with self._lock:
            if self.left[search] <= 0:
                bucket = self.buckets[search]
                rate_limit(bucket.name, occupy=bucket.chunk, strict=True)
                self.asked += 1
                self.left[search] = bucket.chunk
            self.left[search] -= 1


@contextmanager
def shared_budget(
    crm: CrmConfig, per_window: int = 190, window_s: float = 10.0, searches_per_s: int = 5
) -> Iterator[PrefectBudget]:
    """While inside, every call this process makes to the portal takes a permit from its Prefect
    rate limits (created or reshaped first)."""
    token = crm.token()
    general, search = buckets(portal_key(crm.base_url, token), per_window, window_s, searches_per_s)
    ensure_bucket(general)
    ensure_bucket(search)
    budget = PrefectBudget(general, search)
    share_budget(crm.base_url, token, budget)
    try:
        yield budget
    finally:
        share_budget(crm.base_url, token, None)
