"""Property-based tests of the pure engine: random edit sequences on both sides, then syncs."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dealsync.model import Direction
from tests.unit.world import MAPPING, World

DATES = st.sampled_from(["2026-01-31", "2026-06-30", "2027-03-15", None])
PRODUCTS = st.lists(
    st.sampled_from(["Analytics", "Billing", "Connect", "Data Hub"]), max_size=3
).map(lambda items: ";".join(items) or None)
TEXT = st.sampled_from(["alpha", "beta", " gamma ", None])
STAGES = st.sampled_from(["appointmentscheduled", "closedwon", "closedlost"])
AMOUNTS = st.sampled_from(["100", "250.5", None])


def _partner_props(draw) -> dict:
    return {
        "dealname": draw(st.sampled_from(["Deal", "  ", "Other deal"])),
        "closedate": draw(DATES),
        "dealsync_product_interest": draw(PRODUCTS),
        "dealsync_pain": draw(TEXT),
        "dealsync_shared": draw(st.sampled_from(["true", "false", None])),
    }


@st.composite
def edit_sequences(draw):
    """A list of user actions on either CRM, with syncs in between."""
    steps = []
    for _ in range(draw(st.integers(3, 14))):
        kind = draw(
            st.sampled_from(
                ["partner_new", "vendor_new", "partner_edit", "vendor_edit", "archive", "sync"]
            )
        )
        if kind == "partner_new":
            steps.append((kind, _partner_props(draw)))
        elif kind == "vendor_new":
            steps.append(
                (
                    kind,
                    {
                        "dealname": draw(st.sampled_from(["V deal", None])),
                        "dealsync_partner": draw(st.sampled_from(["acme", "globex", None])),
                        "dealsync_partner_owner_email": draw(
                            st.sampled_from(["ann@acme.test", "x@y.test"])
                        ),
                        "amount": draw(AMOUNTS),
                        "dealstage": draw(STAGES),
                    },
                )
            )
        elif kind == "partner_edit":
            steps.append(
                (
                    kind,
                    draw(st.integers(0, 50)),
                    {
                        "closedate": draw(DATES),
                        "dealsync_product_interest": draw(PRODUCTS),
                        "dealsync_pain": draw(TEXT),
                        "dealsync_vendor_stage": draw(st.sampled_from(["Closed won", None])),
                    },
                )
            )
        elif kind == "vendor_edit":
            steps.append(
                (
                    kind,
                    draw(st.integers(0, 50)),
                    {
                        "closedate": draw(DATES),
                        "dealsync_product_interest": draw(PRODUCTS),
                        "dealstage": draw(STAGES),
                        "amount": draw(AMOUNTS),
                        "dealsync_pain": draw(TEXT),
                    },
                )
            )
        elif kind == "archive":
            steps.append(
                (kind, draw(st.sampled_from(["partner", "vendor"])), draw(st.integers(0, 50)))
            )
        else:
            steps.append((kind,))
    return steps


def _pick(world: World, side: str, index: int) -> str | None:
    """A record to act on: most often one that is linked, where the interesting cases are."""
    everything = sorted(world.records[side])
    linked = [rid for rid in everything if world.twin(side, rid)]
    ids = linked if linked and index % 4 else everything
    return ids[index % len(ids)] if ids else None


def _play(world: World, steps) -> set[str]:
    """Apply user actions; return the ids of partner deals that were never shared."""
    for step in steps:
        kind = step[0]
        if kind == "partner_new":
            world.add("partner", **{k: v for k, v in step[1].items() if v is not None})
        elif kind == "vendor_new":
            world.add("vendor", **{k: v for k, v in step[1].items() if v is not None})
        elif kind in ("partner_edit", "vendor_edit"):
            side = kind.split("_")[0]
            record_id = _pick(world, side, step[1])
            if record_id:
                world.edit(side, record_id, **step[2])
        elif kind == "archive":
            record_id = _pick(world, step[1], step[2])
            if record_id:
                world.archive(step[1], record_id)
        else:
            world.sync()
    return set()


def _assert_converged(world: World) -> None:
    for link in world.links.values():
        if link.state != "active":
            continue
        partner = world.records["partner"].get(link.partner_id)
        vendor = world.records["vendor"].get(link.vendor_id)
        assert partner is not None and vendor is not None, link
        p = MAPPING.side_record("partner", link.partner_id, partner)
        v = MAPPING.side_record("vendor", link.vendor_id, vendor)
        for rule in MAPPING.synced_fields():
            if rule.when == "always":
                assert p.values[rule.name] == v.values[rule.name], (rule.name, partner, vendor)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edit_sequences())
def test_after_a_sync_both_sides_agree_and_a_second_sync_is_a_no_op(steps):
    world = World()
    _play(world, steps)
    expected = _expected_two_way_values(world)
    world.sync()
    _assert_converged(world)
    for (link_id, name), value in expected.items():
        link = world.links[link_id]
        if link.state == "active":
            assert (
                MAPPING.side_record(
                    "partner", link.partner_id, world.records["partner"][link.partner_id]
                ).values[name]
                == value
            )
    assert world.sync().is_empty


def _expected_two_way_values(world: World) -> dict:
    """For linked deals changed on one side only since the base: that side's value must win."""
    expected = {}
    for link in world.links.values():
        partner = world.records["partner"].get(link.partner_id)
        vendor = world.records["vendor"].get(link.vendor_id)
        if link.state != "active" or partner is None or vendor is None:
            continue
        p = MAPPING.side_record("partner", link.partner_id, partner).values
        v = MAPPING.side_record("vendor", link.vendor_id, vendor).values
        for rule in MAPPING.synced_fields():
            if rule.direction is Direction.BOTH and rule.when == "always":
                base = link.base.get(rule.name)
                if p[rule.name] == base:
                    expected[(link.id, rule.name)] = v[rule.name]
                elif v[rule.name] == base:
                    expected[(link.id, rule.name)] = p[rule.name]
    return expected


@settings(max_examples=150, deadline=None)
@given(edit_sequences())
def test_one_way_fields_never_flow_backwards(steps):
    world = World()
    _play(world, steps)
    one_way = {
        side: [
            r.prop(side)
            for r in MAPPING.synced_fields()
            if r.direction is not Direction.BOTH and not r.direction.flows_to(side)
        ]
        for side in ("partner", "vendor")
    }
    before = {
        side: {
            rid: {p: raw.get(p) for p in one_way[side]} for rid, raw in world.records[side].items()
        }
        for side in ("partner", "vendor")
    }
    world.sync()
    for side in ("partner", "vendor"):
        for rid, values in before[side].items():
            if rid in world.records[side]:
                assert {p: world.records[side][rid].get(p) for p in one_way[side]} == values


@settings(max_examples=150, deadline=None)
@given(edit_sequences())
def test_unshared_deals_never_cross(steps):
    world = World()
    _play(world, steps)
    world.sync()
    for link in world.links.values():
        origin_side = link.origin
        origin_id = link.partner_id if origin_side == "partner" else link.vendor_id
        raw = world.records[origin_side].get(origin_id)
        if raw is None:
            continue
        if origin_side == "partner":
            assert raw.get("dealsync_shared") == "true" or raw.get("dealsync_key")
        else:
            assert raw.get("dealsync_partner") == "acme"
    for raw in world.records["partner"].values():
        key = raw.get("dealsync_key") or ""
        assert not key.startswith("globex")
