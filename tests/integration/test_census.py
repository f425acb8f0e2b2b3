"""The census a run keeps without loading it: what it expects the count to find, what it writes back
and which linked records it cannot vouch for, all as if it held every id, on a real ledger."""

from __future__ import annotations

import random

import pytest

from connectors.base import CountRule, PropertyMatch
from dealsync.ledger import Ledger
from dealsync.ledger.census import CensusChange, LedgerCensus, save_census
from dealsync.ledger.models import LinkRow
from dealsync.pipeline.census import Census

RULE = CountRule((PropertyMatch("dealsync_partner", "eq", "acme"),))


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Ledger:
    ledger = Ledger(f"sqlite:///{tmp_path_factory.mktemp('census')}/ledger.db")
    ledger.migrate()
    return ledger


def _seed(ledger: Ledger, pair: str, known: set[str], linked: set[str]) -> LedgerCensus:
    with ledger.sessions.begin() as s:
        save_census(s, pair, "vendor", "deals", CensusChange(frozenset(known), frozenset(), True))
        s.add_all(
            LinkRow(pair=pair, partner_id=f"p{i}", vendor_id=i, origin="partner", base={})
            for i in linked
        )
    return LedgerCensus(ledger, pair, "vendor", "deals")


@pytest.mark.parametrize("seed", range(40))
def test_the_census_answers_as_the_whole_set_would(ledger: Ledger, seed: int):
    rng = random.Random(seed)
    universe = [str(10**6 * (seed + 1) + n) for n in range(rng.randint(0, 60))]
    known = {i for i in universe if rng.random() < 0.6}
    linked = {i for i in universe if rng.random() < 0.5}
    census = Census.start(RULE, _seed(ledger, f"pair{seed}", known, linked), complete=False)
    touched = rng.sample(universe, k=rng.randint(0, len(universe)))
    for record_id in touched:
        census.mark(record_id, rng.random() < 0.5)
    # What a census holding every id in memory (as it did before) would say.
    counted = {i for i in touched if census.counted[i]}
    whole = (known | counted) - {i for i in touched if not census.counted[i]}
    assert census.ids() == whole
    assert census.expected() == len(whole)
    assert census.change() == CensusChange(frozenset(whole - known), frozenset(known - whole))
    assert census.linked_outside() == (linked - known) - counted


def test_a_complete_pull_rebuilds_it_from_what_it_saw(ledger: Ledger):
    census = Census.start(RULE, _seed(ledger, "rebuilt", {"1", "2"}, {"9"}), complete=True)
    census.mark("3", True)
    census.mark("4", False)
    assert census.expected() == 1
    assert census.change() == CensusChange(frozenset({"3"}), frozenset(), rebuilt=True)
