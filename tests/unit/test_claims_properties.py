"""Property-based, pure: keys users typed never make the planner adopt, link, write or delete."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dealsync.claims import Intent, judge
from tests.unit.world import World

REG = {"dealsync_shared": "true"}
REFS = ("reg", "reg_twin", "conv", "conv_twin", "missing")


@st.composite
def forged(draw) -> dict:
    """A record a user made with a key of any shape, on either side, shared or not."""
    if draw(st.booleans()):
        key = (
            draw(st.sampled_from(["acme", "globex", "Acme", ""])),
            draw(st.sampled_from(["partner", "vendor", "deals", ""])),
            draw(st.sampled_from(REFS)),
            draw(st.sampled_from(["", ":1", ":welcome"])),
        )
    else:
        key = draw(st.text(min_size=1, max_size=30).filter(str.strip))
    return {
        "side": draw(st.sampled_from(["partner", "vendor"])),
        "key": key,
        "shared": draw(st.booleans()),
    }


def _world() -> tuple[World, dict[str, str]]:
    world = World()
    ids = {"reg": world.add("partner", dealname="reg", **REG)}
    ids["conv"] = world.add(
        "vendor",
        dealname="conv",
        dealsync_partner="acme",
        dealsync_partner_owner_email="ann@acme.test",
    )
    world.sync()
    ids["reg_twin"] = world.twin("partner", ids["reg"])
    ids["conv_twin"] = world.twin("vendor", ids["conv"])
    return world, ids


def _key(recipe, ids: dict[str, str]) -> str:
    if isinstance(recipe, str):
        return recipe
    pair, side, ref, suffix = recipe
    return f"{pair}:{side}:{ids.get(ref, '999999')}{suffix}"


def _parses_as_acme(key: str) -> bool:
    parts = key.strip().split(":")
    return len(parts) == 3 and parts[0] == "acme" and parts[1] in ("partner", "vendor")


@settings(max_examples=300, deadline=None)
@given(st.lists(forged(), min_size=1, max_size=5))
def test_forged_keys_are_refused_and_change_nothing(records):
    world, ids = _world()
    links = dict(world.links)
    made = []
    for record in records:
        props = {"dealname": "forged", "dealsync_key": _key(record["key"], ids)}
        if record["shared"]:
            props.update(REG if record["side"] == "partner" else {"dealsync_partner": "acme"})
        made.append((record, world.add(record["side"], **props)))

    for _ in range(2):
        plan = world.sync()
        assert plan.adopts == [] and plan.creates == []
        assert plan.updates == [] and plan.deletes == [] and plan.held_deletes == []
        assert world.links == links
        skipped = {(s.side, s.record_id): s for s in plan.skips}
        for record, rid in made:
            key = _key(record["key"], ids)
            if record["shared"] or _parses_as_acme(key):
                skip = skipped[(record["side"], rid)]
                assert skip.security and "clear dealsync_key" in skip.reason, skip
            else:
                assert (record["side"], rid) not in skipped


def test_only_a_pending_intent_on_the_same_side_is_adopted():
    pending = {"acme:partner:1": Intent("acme:partner:1", "vendor", "1")}
    assert judge("vendor", "v9", "acme:partner:1", pending, set()).kind == "adopt"
    assert judge("partner", "p9", "acme:partner:1", pending, set()).kind == "refuse"
    done = {"acme:partner:1": Intent("acme:partner:1", "vendor", "1", "done", "v9")}
    assert judge("vendor", "v9", "acme:partner:1", done, set()).kind == "known"
    assert judge("vendor", "v10", "acme:partner:1", done, set()).kind == "refuse"
    failed = {"acme:partner:1": Intent("acme:partner:1", "vendor", "1", "failed")}
    assert judge("vendor", "v9", "acme:partner:1", failed, set()).kind == "refuse"
    assert judge("vendor", "v9", "anything", {}, {("vendor", "v9")}).kind == "known"
