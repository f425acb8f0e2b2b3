"""An edit of a linked deal judged settled asks nothing of a run: the planner, given the deal with
that edit, writes nothing and holds nothing. And the edits a run acts on are never judged settled."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dealsync.echoes import settled_property
from dealsync.model import Side
from tests.unit.world import MAPPING, World

REG = {"dealsync_shared": "true"}
PROPERTIES: dict[Side, list[str]] = {
    side: sorted({*MAPPING.properties(side), "hs_lead_status", "dealsync_key"})
    for side in ("partner", "vendor")
}
TEXTS = st.sampled_from(
    [
        "",
        "acme",
        "globex",
        "true",
        "false",
        "2026-05-05",
        "2027-01-31",
        "Billing",
        "Billing;Analytics",
        "Analytics;Billing",
        "appointmentscheduled",
        "closedwon",
        "Closed won",
        "1200",
        "1200.0",
        "not a date",
        "d",
        "  d  ",
    ]
)


def _linked_world() -> tuple[World, str, str]:
    world = World()
    reg = world.add(
        "partner",
        dealname="d",
        closedate="2026-05-05",
        dealsync_product_interest="Billing",
        dealsync_pain="p",
        **REG,
    )
    world.sync()
    world.sync()  # the first sync's own writes read back: nothing more to do
    twin = world.twin("partner", reg)
    assert twin is not None and world.plan().is_empty
    return world, reg, twin


@settings(max_examples=300, deadline=None)
@given(side=st.sampled_from(["partner", "vendor"]), data=st.data(), text=TEXTS)
def test_a_settled_edit_asks_nothing_of_the_planner_and_an_unsettled_one_does(side, data, text):
    world, reg, twin = _linked_world()
    prop = data.draw(st.sampled_from(PROPERTIES[side]))
    record_id = reg if side == "partner" else twin
    link = next(iter(world.links.values()))
    settled = settled_property(MAPPING, "acme", side, link, prop, text)
    world.edit(side, record_id, **{prop: text})
    try:
        plan = world.plan()
    except ValueError:  # the planner's input refused the text: a run would quarantine it
        assert not settled
        return
    acts = bool(plan.updates or plan.skips or plan.deletes or plan.conflicts or plan.new_bases)
    if settled:
        assert not acts, (prop, text, plan)
    elif prop in {r.prop(side) for r in MAPPING.synced_fields() if r.when == "always"}:
        assert acts or _reads_as_base(side, prop, text, link), (prop, text)


def _reads_as_base(side: Side, prop: str, text: str, link) -> bool:
    """Whether a text the judge called unsettled reads, by the mapping, as the base value (only a
    text the base has no entry for, or an unreadable one, may differ from the planner's view)."""
    rules = [r for r in MAPPING.synced_fields() if r.when == "always" and r.prop(side) == prop]
    return any(r.name not in link.base for r in rules)
