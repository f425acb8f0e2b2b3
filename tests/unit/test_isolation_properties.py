"""Property-based: whatever the data, no unshared deal, private note or other partner's record reaches acme."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dealsync.mapping import load_notes_mapping
from dealsync.model import Link
from dealsync.note_model import NotePlanInput, NoteRecord
from dealsync.note_plan import make_note_plan
from dealsync.plan import PlanInput, make_plan
from tests.unit.world import MAPPING, PARTNER_OWNERS, ROUND_ROBIN, VENDOR_OWNERS

NOTES = load_notes_mapping("mappings/shared_notes.yaml")
PAIRS = ["acme", "globex", "initech"]


@st.composite
def vendor_world(draw):
    """Vendor deals for any partner, some linked to acme, with notes of every kind on them."""
    deals = {}
    for n in range(draw(st.integers(1, 12))):
        props = {"dealname": f"v{n}"}
        owner = draw(st.sampled_from([*PAIRS, None]))
        if owner:
            props["dealsync_partner"] = owner
            props["dealsync_partner_owner_email"] = draw(
                st.sampled_from(["ann@acme.test", "x@globex.test"])
            )
        if draw(st.booleans()):
            props["dealsync_key"] = (
                f"{draw(st.sampled_from(PAIRS))}:partner:{draw(st.integers(1, 5))}"
            )
        deals[f"v{n}"] = props
    acme_links = {
        vid: f"p{vid}"
        for vid in deals
        if draw(st.booleans()) and deals[vid].get("dealsync_partner") == "acme"
    }
    notes = {}
    for n in range(draw(st.integers(0, 15))):
        deal = draw(st.sampled_from(sorted(deals)))
        flag = draw(st.sampled_from(["true", "false", None]))
        reply = draw(st.sampled_from([None, *[f"n{m}" for m in range(n)]]))
        notes[f"n{n}"] = (
            deal,
            {
                k: v
                for k, v in {
                    "hs_note_body": f"body {n}",
                    "dealsync_shared": flag,
                    "dealsync_reply_to": reply,
                }.items()
                if v
            },
        )
    return deals, acme_links, notes


def _is_private(notes, note_id, seen=()) -> bool:
    _deal, props = notes[note_id]
    flag = props.get("dealsync_shared")
    if flag:
        return flag != "true"
    parent = props.get("dealsync_reply_to")
    return (
        not parent
        or parent in seen
        or parent not in notes
        or _is_private(notes, parent, (*seen, note_id))
    )


@settings(max_examples=200, deadline=None)
@given(vendor_world())
def test_nothing_of_another_partner_or_private_reaches_acme(world):
    deals, acme_links, notes = world
    links = tuple(
        Link(i, pid, vid, "vendor", {}) for i, (vid, pid) in enumerate(acme_links.items(), 1)
    )
    records = {
        "partner": {},
        "vendor": {vid: MAPPING.side_record("vendor", vid, props) for vid, props in deals.items()},
    }
    plan = make_plan(
        PlanInput(
            "acme",
            MAPPING,
            links,
            records,
            owners={"vendor": VENDOR_OWNERS, "partner": PARTNER_OWNERS},
            owner_rules=ROUND_ROBIN,
        )
    )
    for create in plan.creates:
        assert create.target == "partner"
        source = deals[create.source_id]
        assert source.get("dealsync_partner") == "acme" and not source.get("dealsync_key"), source
    partner_ids = {link.partner_id for link in links}
    assert all(u.record_id in partner_ids for u in plan.updates if u.target == "partner")

    note_records = {
        nid: NoteRecord(NOTES.side_record("vendor", nid, props), (deal,), ())
        for nid, (deal, props) in notes.items()
    }
    note_plan = make_note_plan(
        NotePlanInput(
            "acme",
            NOTES,
            (),
            {"partner": {}, "vendor": note_records},
            deal_twins={"vendor": acme_links, "partner": {p: v for v, p in acme_links.items()}},
        )
    )
    for create in note_plan.creates:
        deal, _props = notes[create.source_id]
        assert deal in acme_links and create.deal_id == acme_links[deal]
        assert not _is_private(notes, create.source_id), notes[create.source_id]
