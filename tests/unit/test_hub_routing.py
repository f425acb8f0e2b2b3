"""The hub's routing: a linked record reaches only the pair whose link holds it, whatever its mark
says; an unlinked one reaches exactly the partners its mark names; a note reaches only the pair of
its link, or the pairs whose deals it is on."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import Record
from dealsync.hub_routing import MarkIndex, route_checks, route_deals, route_notes
from dealsync.mapping import ShareRule
from dealsync.model import Link

PARTNERS = ["acme", "globex", "initech", "beta-2", "a_b"]
RULES = {
    "equals": ShareRule("dealsync_partner", equals="{partner}"),
    "prefixed": ShareRule("dealsync_partner", equals="p-{partner}"),
    "contains": ShareRule("dealsync_partners", contains="{partner}"),
}
MARKS = st.one_of(
    st.sampled_from(PARTNERS),
    st.sampled_from([p.upper() for p in PARTNERS] + [f"  {p} " for p in PARTNERS]),
    st.sampled_from([f"p-{p}" for p in PARTNERS]),
    st.lists(st.sampled_from(PARTNERS), max_size=3).map(";".join),
    st.sampled_from(["", "nobody", "acme;", "*", "acme globex"]),
)


def _record(record_id: str, mark: str, prop: str = "dealsync_partner") -> Record:
    return Record(record_id, {prop: mark, "dealname": "x"}, "", "")


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(RULES)), mark=MARKS)
def test_a_mark_names_exactly_the_partners_whose_rule_it_satisfies(kind, mark):
    rule = RULES[kind]
    index = MarkIndex(dict.fromkeys(PARTNERS, rule))
    props = {rule.property: mark}
    assert index.pairs(props) == {p for p in PARTNERS if rule.matches(props, p)}


@settings(max_examples=300, deadline=None)
@given(
    marks=st.lists(MARKS, min_size=1, max_size=8),
    owners=st.lists(st.one_of(st.none(), st.sampled_from(PARTNERS)), min_size=8, max_size=8),
    settled=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_a_linked_deal_reaches_only_its_links_pair_and_an_unlinked_one_its_marks(
    marks, owners, settled
):
    rule = RULES["equals"]
    index = MarkIndex(dict.fromkeys(PARTNERS, rule))
    records = [_record(str(n), mark) for n, mark in enumerate(marks)]
    linked = {
        str(n): (owner, Link(n, f"p{n}", str(n), "partner", {}))
        for n, owner in enumerate(owners[: len(records)])
        if owner is not None
    }
    quiet = {str(n) for n, flag in enumerate(settled) if flag}
    routed = route_deals(records, linked, index, lambda pair, link, r: r.id in quiet)
    for record in records:
        reached = {r.pair for r in routed if r.record_id == record.id}
        if record.id in linked:
            owner = linked[record.id][0]
            assert reached == (set() if record.id in quiet else {owner})
        else:
            assert reached == {p for p in PARTNERS if rule.matches(record.properties, p)}
    assert all(r.kind == "changed" and r.record is not None for r in routed)


def test_notes_go_by_their_link_else_by_their_deals():
    notes = [
        _record("n1", ""),  # linked to globex's note: globex alone, whatever deals it is on
        _record("n2", ""),  # on acme's deal and initech's
        _record("n3", ""),  # on a deal nobody shares
        _record("n4", ""),  # on no deal
    ]
    parents = {"n1": ("d-acme",), "n2": ("d-acme", "d-initech", "d-none"), "n3": ("d-none",)}
    deal_pairs = {"d-acme": "acme", "d-initech": "initech"}
    routed = route_notes(notes, {"n1": "globex"}, deal_pairs, parents)
    assert sorted((r.record_id, r.pair, r.parents) for r in routed) == [
        ("n1", "globex", ("d-acme",)),
        ("n2", "acme", ("d-acme", "d-initech", "d-none")),
        ("n2", "initech", ("d-acme", "d-initech", "d-none")),
    ]


def test_checks_go_to_the_pair_whose_link_holds_the_record():
    routed = route_checks(["9", "7", "8", "7"], {"7": "acme", "9": "globex"})
    assert [(r.record_id, r.pair, r.kind) for r in routed] == [
        ("7", "acme", "check"),
        ("9", "globex", "check"),
    ]
