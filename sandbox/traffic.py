"""In-memory traffic state of the sandbox: rate limits per token, injected faults, request counts."""

from __future__ import annotations

import random
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    """Rate limits and the search visibility lag of one sandbox."""

    per_interval: int = 190
    interval_ms: int = 10_000
    search_per_second: int = 5
    daily: int = 1_000_000
    search_lag_ms: int = 500


class RollingWindow:
    """A rolling-window counter: admit at most `limit` events per `window_s` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self.events: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self.events and self.events[0] <= now - self.window_s:
            self.events.popleft()

    def admit(self) -> bool:
        """Record one event if the window has room; False when it is full."""
        now = time.monotonic()
        self._trim(now)
        if len(self.events) >= self.limit:
            return False
        self.events.append(now)
        return True

    def remaining(self) -> int:
        """How many more events the window admits now."""
        self._trim(time.monotonic())
        return max(self.limit - len(self.events), 0)


@dataclass
class TokenBudget:
    """The rate-limit state of one token."""

    general: RollingWindow
    search: RollingWindow
    daily_used: int = 0


@dataclass
class Fault:
    """An injected error or latency for requests matching a method and a path pattern."""

    method: str | None
    path_regex: re.Pattern[str]
    status: int | None
    latency_ms: int = 0
    count: int | None = None
    probability: float = 1.0
    retry_after_s: int = 1

    @classmethod
    def from_body(cls, body: dict) -> Fault:
        """A fault as the admin API describes it, or ValueError saying what is wrong."""
        try:
            return cls(
                method=body.get("method"),
                path_regex=re.compile(body.get("path_regex") or ".*"),
                status=body.get("status"),
                latency_ms=int(body.get("latency_ms") or 0),
                count=body.get("count"),
                probability=float(body.get("probability", 1.0)),
                retry_after_s=int(body.get("retry_after_s", 1)),
            )
        except (re.error, TypeError, ValueError) as exc:
            raise ValueError(f"Invalid fault: {exc}") from exc

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to the request (consuming one of its uses if so)."""
        if self.count is not None and self.count <= 0:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if not self.path_regex.search(path):
            return False
        if self.probability < 1.0 and random.random() >= self.probability:
            return False
        if self.count is not None:
            self.count -= 1
        return True


@dataclass
class Traffic:
    """All traffic state of one sandbox process."""

    limits: Limits = field(default_factory=Limits)
    budgets: dict[str, TokenBudget] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    writes_by_client: Counter[str] = field(default_factory=Counter)  # by the caller's address

    def budget(self, token: str) -> TokenBudget:
        """The rate-limit state of a token, created on first use."""
        if token not in self.budgets:
            self.budgets[token] = TokenBudget(
                RollingWindow(self.limits.per_interval, self.limits.interval_ms / 1000),
                RollingWindow(self.limits.search_per_second, 1.0),
            )
        return self.budgets[token]

    def fault_for(self, method: str, path: str) -> Fault | None:
        """The first injected fault matching this request, if any."""
        for fault in self.faults:
            if fault.matches(method, path):
                return fault
        return None

    def counts(self) -> dict:
        """The `/_sandbox/requests` body."""
        return {
            "total": sum(self.by_route.values()),
            "by_route": dict(sorted(self.by_route.items())),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "rate_limited": self.by_status.get(429, 0),
            "writes_by_client": dict(sorted(self.writes_by_client.items())),
        }

    def reset_counts(self) -> None:
        """Forget request counts (not budgets)."""
        self.by_route.clear()
        self.by_status.clear()
        self.writes_by_client.clear()
