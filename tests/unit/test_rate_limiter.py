"""The client-side rolling-window limiter, on a fake clock."""

from __future__ import annotations

from connectors.errors import HUBSPOT_ERRORS, Action, rule_for
from connectors.ratelimit import PortalLimiters, RollingLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_admits_up_to_the_limit_then_waits_for_the_window():
    clock = FakeClock()
    limiter = RollingLimiter(3, 10.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    assert clock.slept == []
    clock.now = 4.0
    limiter.acquire()
    assert clock.slept == [6.0]  # the first call leaves the window at t=10


def test_any_window_holds_at_most_the_limit():
    clock = FakeClock()
    limiter = RollingLimiter(5, 1.0, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(40):
        limiter.acquire()
        stamps.append(clock.now)
        clock.now += 0.03
    for i, start in enumerate(stamps):
        assert sum(1 for t in stamps[i:] if t < start + 1.0) <= 5


def test_block_for_holds_everyone_back():
    clock = FakeClock()
    limiter = RollingLimiter(100, 10.0, clock=clock, sleep=clock.sleep)
    limiter.block_for(2.5)
    limiter.acquire()
    assert sum(clock.slept) >= 2.5


def test_headers_resize_the_general_limit_with_a_margin():
    limiters = PortalLimiters(per_10s=190)
    limiters.adopt_headers(100, 10_000)
    assert limiters.general.limit == int(100 * PortalLimiters.GENERAL_MARGIN)


def test_error_table_covers_hubspots_documented_statuses():
    assert rule_for(HUBSPOT_ERRORS, 429).action is Action.RATE_LIMIT
    assert rule_for(HUBSPOT_ERRORS, 423).min_wait_s >= 2
    assert rule_for(HUBSPOT_ERRORS, 477).action is Action.RETRY_AFTER
    assert rule_for(HUBSPOT_ERRORS, 401).action is Action.FAIL_AUTH
    assert rule_for(HUBSPOT_ERRORS, 400).action is Action.FAIL_RECORD
    assert rule_for(HUBSPOT_ERRORS, 599).retriable


def test_a_process_share_scales_the_budget_and_survives_header_adoption():
    limiters = PortalLimiters(per_10s=190, share=0.5)
    assert limiters.general.limit == int(190 * PortalLimiters.GENERAL_MARGIN * 0.5)
    limiters.adopt_headers(190, 10_000)
    assert limiters.general.limit == int(190 * PortalLimiters.GENERAL_MARGIN * 0.5)
    assert limiters.search.limit == 2
