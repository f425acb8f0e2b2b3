"""What runs cost in calls, counted by the sandboxes themselves: quiet runs stay O(1) per side whatever
the number of links, deletions are found by counts, owners are read only when a run needs them."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from dealsync.ledger import Ledger
from tests.integration.conftest import Pair

LINKS = 2_000


def _calls(pair: Pair, side: str) -> dict[str, int]:
    return pair.servers[side].admin("GET", "requests").json()["by_route"]


def _total(pair: Pair, side: str) -> int:
    return sum(_calls(pair, side).values())


def _owner_reads(pair: Pair, side: str) -> int:
    return sum(n for route, n in _calls(pair, side).items() if "/owners" in route)


def _no_lookback(pair: Pair) -> None:
    """The roomy test sandboxes show writes to search at once: no lookback is needed."""
    text = pair.config.read_text().replace("kind: hubspot,", "kind: hubspot, lookback_seconds: 0,")
    pair.config.write_text(text)


def _seed_shared(pair: Pair, count: int) -> None:
    """`count` shared partner deals, last modified a day ago."""
    pair.servers["partner"].admin(
        "POST",
        "seed",
        json={
            "objectType": "deals",
            "count": count,
            "properties": {"dealname": "Shared {i}", "dealsync_shared": "true"},
            "timestamp": int(time.time() * 1000) - 86_400_000,
            "timestampStep": 1,
        },
    )


@pytest.fixture
def synced(pair: Pair) -> Pair:
    """2,000 shared deals synced, and the run after it (which re-reads the first sync's own writes)."""
    _no_lookback(pair)
    _seed_shared(pair, LINKS)
    pair.cli("run")
    pair.cli("run")
    pair.reset_counts()
    return pair


def _links(pair: Pair) -> list[tuple[str, str]]:
    engine = sa.create_engine(_ledger_url(pair))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT partner_id, vendor_id FROM links "
                "WHERE state = 'active' AND object_type = 'deals' ORDER BY id"
            )
        ).all()
    engine.dispose()
    return [(p, v) for p, v in rows]


def _ledger_url(pair: Pair) -> str:
    return pair.config.read_text().splitlines()[0].split("ledger: ", 1)[1]


def test_a_quiet_run_at_2000_links_makes_at_most_6_calls_per_side(synced: Pair):
    assert len(_links(synced)) == LINKS
    synced.cli("run")
    for side in ("partner", "vendor"):
        assert _total(synced, side) <= 6, _calls(synced, side)
        assert _owner_reads(synced, side) == 0
    assert synced.writes("partner") == synced.writes("vendor") == 0


def _last_pulled(pair: Pair) -> dict[str, int]:
    engine = sa.create_engine(_ledger_url(pair))
    with engine.connect() as conn:
        summary = conn.execute(
            sa.text("SELECT summary FROM runs ORDER BY id DESC LIMIT 1")
        ).scalar()
    engine.dispose()
    return (json.loads(summary) if isinstance(summary, str) else summary)["pulled"]


def _wait_until(moment: float) -> None:
    """Until the clock passes a moment (a condition on the clock, not a guess at how long work takes)."""
    while time.time() < moment:
        time.sleep(0.05)


def test_the_cursor_moves_with_time_so_a_quiet_portal_is_not_read_again(pair: Pair):
    """Within the lookback a run re-reads recent changes (search lags); once a lookback has passed
    since the previous run started, a run re-reads nothing, though nothing changed since."""
    text = pair.config.read_text().replace("kind: hubspot,", "kind: hubspot, lookback_seconds: 1,")
    pair.config.write_text(text)
    _seed_shared(pair, 300)
    pair.cli("run")  # writes the vendor's facts to the 300 partner deals
    _wait_until(time.time() + 1.5)  # the writes are older than a lookback
    started = time.time()
    pair.cli("run")
    assert _last_pulled(pair)["partner changed"] == 300  # changed since the first sync started
    _wait_until(started + 1.5)  # one lookback after the previous run started
    pair.cli("run")
    assert _last_pulled(pair)["partner changed"] == 0
    assert _last_pulled(pair)["vendor changed"] == 0


def _searches(pair: Pair, side: str) -> int:
    return _calls(pair, side).get("POST /crm/v3/objects/deals/search", 0)


def test_runs_after_a_first_sync_read_its_writes_back_without_reading_twins(pair: Pair):
    """A first sync writes to every shared deal; the runs after it read those writes back (within
    their lookback) and find them settled: no twin is read for them, no id range is counted (the
    censuses are exact), and once the lookback has passed a run is quiet."""
    text = pair.config.read_text().replace("kind: hubspot,", "kind: hubspot, lookback_seconds: 2,")
    pair.config.write_text(text)
    _seed_shared(pair, 1000)
    pair.cli("run")
    pair.reset_counts()
    started = time.time()
    pair.cli("run")  # at once: within the lookback of the first sync's writes
    assert _last_pulled(pair)["partner changed"] == 1000  # every deal the first sync wrote to
    for side in ("partner", "vendor"):
        assert not any("batch/read" in route for route in _calls(pair, side)), _calls(pair, side)
        assert _searches(pair, side) <= 1 + 5 + 1  # the cursor's pages of 200, one count
    _wait_until(started + 2.5)
    pair.reset_counts()
    started = time.time()
    pair.cli("run")  # re-reads the window its lookback still covers, and reads nothing else
    for side in ("partner", "vendor"):
        assert not any("batch/read" in route for route in _calls(pair, side)), _calls(pair, side)
        assert _searches(pair, side) <= 1 + 5 + 1, _calls(pair, side)  # counting ranges: 10 more
    _wait_until(started + 2.5)
    pair.reset_counts()
    pair.cli("run")
    for side in ("partner", "vendor"):
        assert _total(pair, side) <= 3, _calls(pair, side)


def test_the_vendor_pull_asks_only_for_this_partners_deals(pair: Pair):
    """Vendor deals of other partners, or of none, never enter acme's pull: with fifty partners on
    one vendor portal, each run reads its own changes, not everyone's."""
    _no_lookback(pair)
    mine = pair.create(
        "vendor",
        dealname="Mine",
        dealsync_partner="acme",
        dealsync_partner_owner_email="bob@acme.test",
    )
    pair.cli("run")
    for n in range(30):
        pair.create("vendor", dealname=f"Beta's {n}", dealsync_partner="beta")
        pair.create("vendor", dealname=f"Nobody's {n}")
    pair.edit("vendor", mine, amount="1200")
    pair.cli("run")
    assert _last_pulled(pair)["vendor changed"] == 1
    shown = pair.deals("partner", "dealname", "dealsync_vendor_amount")
    assert [(d["dealname"], d["dealsync_vendor_amount"]) for d in shown] == [("Mine", "1200")]


def test_deletions_are_found_by_counts_and_only_the_missing_are_read(synced: Pair):
    links = _links(synced)
    for partner_id, _ in links[10:13]:
        synced.archive("partner", partner_id)
    for _, vendor_id in links[1500:1502]:
        synced.archive("vendor", vendor_id)
    synced.reset_counts()
    synced.cli("run")
    calls = {side: _calls(synced, side) for side in ("partner", "vendor")}
    print(calls)
    for _partner_id, vendor_id in links[10:13]:
        assert synced.deal("vendor", vendor_id) is None
    for partner_id, _ in links[1500:1502]:
        assert synced.deal("partner", partner_id) is None
    assert len(_links(synced)) == LINKS - 5
    for side in ("partner", "vendor"):
        reads = sum(n for route, n in calls[side].items() if "batch/read" in route)
        assert reads <= 4, calls[side]  # not one read per 100 links (20)
        assert sum(calls[side].values()) < 20, calls[side]
    synced.reset_counts()
    synced.cli("run")
    assert max(_total(synced, "partner"), _total(synced, "vendor")) <= 6


def test_a_deletion_hidden_behind_a_new_shared_deal_is_still_found(synced: Pair):
    """The partner deletes one shared deal and shares a new one: the count is unchanged, but the new
    deal was pulled (it changed), so the ledger expects one more and the deletion shows."""
    partner_id, vendor_id = _links(synced)[42]
    synced.archive("partner", partner_id)
    fresh = synced.create("partner", dealname="New one", dealsync_shared="true")
    synced.cli("run")
    assert synced.deal("vendor", vendor_id) is None
    assert any(p == fresh for p, _ in _links(synced))


def test_a_linked_deal_no_longer_counted_is_still_checked_for_deletion(synced: Pair):
    """A partner unshares a linked deal (it leaves the count), then deletes it: the deletion is found
    all the same, and nothing else is touched."""
    links = _links(synced)
    partner_id, vendor_id = links[7]
    synced.edit("partner", partner_id, dealsync_shared="false")
    synced.cli("run")
    assert synced.deal("vendor", vendor_id) is not None
    synced.archive("partner", partner_id)
    synced.cli("run")
    assert synced.deal("vendor", vendor_id) is None
    assert len(_links(synced)) == LINKS - 1


def test_full_still_reads_every_link(synced: Pair):
    synced.cli("run", "--full")
    reads = sum(n for route, n in _calls(synced, "vendor").items() if "batch/read" in route)
    assert reads >= LINKS // 100


def test_a_ledger_from_before_the_census_builds_it_once(synced: Pair):
    engine = sa.create_engine(_ledger_url(synced))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM census"))
        conn.execute(sa.text("UPDATE cursors SET census_ready = false"))
    engine.dispose()
    synced.cli("run")  # checks every link once and lists the counted records
    assert _total(synced, "vendor") >= LINKS // 100
    synced.reset_counts()
    synced.cli("run")
    assert max(_total(synced, "partner"), _total(synced, "vendor")) <= 6


def test_owners_are_read_once_when_needed_then_kept(pair: Pair):
    _no_lookback(pair)
    pair.create("partner", dealname="First", dealsync_shared="true")
    pair.cli("run")
    assert _owner_reads(pair, "vendor") == 1  # a registration needs a vendor owner
    assert _owner_reads(pair, "partner") == 0  # no conversion: no partner owner needed
    pair.reset_counts()
    pair.create("partner", dealname="Second", dealsync_shared="true")
    pair.cli("run")
    assert _owner_reads(pair, "vendor") == 0  # kept in the ledger


def test_an_owner_the_kept_list_lacks_is_read_again(pair: Pair):
    _no_lookback(pair)
    pair.create("partner", dealname="First", dealsync_shared="true")
    pair.cli("run")
    pair.servers["vendor"].admin(
        "POST", "owners", json={"email": "rep3@vendor.test", "firstName": "New", "lastName": "Rep"}
    )
    text = pair.config.read_text().replace(
        "pool: [rep1@vendor.test, rep2@vendor.test], fallback: rep1@vendor.test",
        "pool: [rep3@vendor.test], fallback: rep3@vendor.test",
    )
    pair.config.write_text(text)
    pair.reset_counts()
    second = pair.create("partner", dealname="Second", dealsync_shared="true")
    pair.cli("run")
    assert _owner_reads(pair, "vendor") == 1
    twin = next(
        d
        for d in pair.deals("vendor", "dealsync_key", "hubspot_owner_id")
        if d.get("dealsync_key") == f"acme:partner:{second}"
    )
    rep3 = pair.api("vendor", "GET", "/crm/v3/owners/", params={"email": "rep3@vendor.test"})
    assert twin["hubspot_owner_id"] == rep3.json()["results"][0]["id"]


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_a_bulk_commit_refreshes_the_planners_statistics(pair: Pair):
    """PostgreSQL plans by statistics; a census that grew by thousands of rows since they were
    taken is planned as if empty (a membership query then scans it whole). A first sync's commit
    analyzes what it wrote, whether or not autovacuum runs."""
    engine = sa.create_engine(_ledger_url(pair))

    def analyzed() -> dict[str, bool]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT relname, last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL "
                    "FROM pg_stat_user_tables WHERE relname IN ('census', 'links')"
                )
            ).all()
        return dict(rows)

    assert analyzed() == {"census": False, "links": False}  # a new ledger: never analyzed
    _seed_shared(pair, 1200)
    pair.cli("run")
    assert analyzed() == {"census": True, "links": True}
    engine.dispose()


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_a_statement_run_many_times_is_planned_for_its_own_values(ledger_url):
    """psycopg prepares a statement it runs five times; PostgreSQL would then plan it once for any
    values (a generic plan scanned the hub's whole census for 500 ids: 1.7 s, not 3 ms). The
    ledger's sessions plan each run for its values, through rollbacks and reused connections."""
    ledger = Ledger(ledger_url)
    for _ in range(3):
        with ledger.sessions() as s:
            assert s.scalar(sa.text("SHOW plan_cache_mode")) == "force_custom_plan"
            s.rollback()
    ledger.close()
