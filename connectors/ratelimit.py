"""Client-side rate limiting, one limiter per CRM portal, shared by every run in the process."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class RollingLimiter:
    """Admit at most `limit` calls in any `window_s` seconds, blocking callers until there is room."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def acquire(self) -> None:
        """Block until one more call fits in the window, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.window_s:
                    self._sent.popleft()
                wait = self._blocked_until - now
                if wait <= 0 and len(self._sent) < self.limit:
                    self._sent.append(now)
                    return
                if wait <= 0:
                    wait = self._sent[0] + self.window_s - now
            wait = max(wait, 0.001)
            self.waited_s += wait
            self._sleep(wait)

    def block_for(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (after the server said 429)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def resize(self, limit: int, window_s: float) -> None:
        """Adopt the limit the server announces in its headers."""
        with self._lock:
            self.limit, self.window_s = max(limit, 1), window_s


class PortalLimiters:
    """The general and the search limiter of one portal."""

    # Margins absorb the jitter between when we send and when the server counts.
    GENERAL_MARGIN = 0.92
    SEARCH_WINDOW_PAD_S = 0.15

    def __init__(self, per_10s: int = 190, search_per_s: int = 5, share: float = 1.0) -> None:
        self.share = share  # the fraction of the portal's budget this process may use
        self.general = RollingLimiter(max(int(per_10s * self.GENERAL_MARGIN * share), 1), 10.0)
        self.search = RollingLimiter(
            max(int(search_per_s * share), 1), 1.0 + self.SEARCH_WINDOW_PAD_S
        )

    def adopt_headers(self, limit: int, interval_ms: int) -> None:
        """Follow the X-HubSpot-RateLimit-Max / -Interval-Milliseconds the server sends."""
        target = max(int(limit * self.GENERAL_MARGIN * self.share), 1)
        window = interval_ms / 1000
        if (target, window) != (self.general.limit, self.general.window_s):
            self.general.resize(target, window)


_registry: dict[str, PortalLimiters] = {}
_registry_lock = threading.Lock()


def portal_key(base_url: str, token: str) -> str:
    """A key naming one portal without holding its token."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:16]
    return f"{base_url.rstrip('/')}#{digest}"


def limiters_for(base_url: str, token: str, share: float = 1.0) -> PortalLimiters:
    """The process-wide limiters of the portal behind this base URL and token.

    Every run in this process that talks to the portal shares them. `share` is the fraction of the
    portal's budget this process may use: with N worker processes on one portal, give each 1/N.
    """
    key = portal_key(base_url, token)
    with _registry_lock:
        if key not in _registry or _registry[key].share != share:
            _registry[key] = PortalLimiters(share=share)
        return _registry[key]


class SharedBudget(Protocol):
    """A portal's budget shared with other processes (every worker on every machine): a permit per
    call, on top of the process's own limiters."""

    def take(self, search: bool) -> None:
        """Block until the shared budget admits one more call (a search, or any other call)."""
        ...


_shared: dict[str, SharedBudget] = {}


def share_budget(base_url: str, token: str, budget: SharedBudget | None) -> None:
    """Make every call this process makes to the portal also take a permit from `budget` (None:
    stop), e.g. a budget in the ledger that all workers use."""
    key = portal_key(base_url, token)
    with _registry_lock:
        if budget is None:
            _shared.pop(key, None)
        else:
            _shared[key] = budget


def shared_budget(key: str) -> SharedBudget | None:
    """The shared budget of the portal with this key, if one was set."""
    return _shared.get(key)
