"""The pure planner, scenario by scenario (PRODUCT.md's per-field rules)."""

from __future__ import annotations

from dealsync.plan import key_for, parse_key
from tests.unit.world import World

REG = {"dealsync_shared": "true"}


def test_registration_creates_the_vendor_twin_with_owner_and_fields():
    world = World()
    pid = world.add(
        "partner",
        dealname="  Acme Cloud  ",
        closedate="2026-12-24",
        dealsync_product_interest="Billing;Analytics",
        dealsync_pain="slow invoicing",
        dealstage="closedwon",
        pipeline="partner-pipe",
        hubspot_owner_id="p-1",
        **REG,
    )
    plan = world.sync()
    (create,) = plan.creates
    assert create.target == "vendor" and create.key == "acme:partner:" + pid
    props = create.properties
    assert props["dealname"] == "Acme Cloud"
    assert props["closedate"] == "2026-12-24"
    assert props["dealsync_product_interest"] == "Analytics;Billing"
    assert props["dealsync_pain"] == "slow invoicing"
    # Each side keeps its own pipeline, stage and owner.
    assert props["dealstage"] == "appointmentscheduled" and props["pipeline"] == "default"
    assert props["hubspot_owner_id"] == "v-1" and props["dealsync_partner"] == "acme"
    # The vendor's stage flows back to the partner in the same run.
    assert world.records["partner"][pid]["dealsync_vendor_stage"] == "Appointment scheduled"


def test_round_robin_alternates_and_skips_inactive_owners():
    world = World()
    for n in range(3):
        world.add("partner", dealname=f"d{n}", **REG)
    plan = world.sync()
    assert [c.properties["hubspot_owner_id"] for c in plan.creates] == ["v-1", "v-2", "v-1"]


def test_unshared_partner_deals_never_cross():
    world = World()
    world.add("partner", dealname="private", dealsync_shared="false")
    world.add("partner", dealname="no flag")
    assert world.sync().creates == []


def test_registration_without_a_name_is_skipped_with_a_reason_then_syncs_once_named():
    world = World()
    pid = world.add("partner", **REG)
    plan = world.sync()
    assert plan.creates == [] and plan.skips[0].record_id == pid
    assert "dealname is empty" in plan.skips[0].reason
    world.edit("partner", pid, dealname="Named now")
    assert len(world.sync().creates) == 1


def test_deal_name_syncs_once_at_creation_only():
    world = World()
    pid = world.add("partner", dealname="First", **REG)
    world.sync()
    vid = world.twin("partner", pid)
    world.edit("partner", pid, dealname="Partner rename")
    world.edit("vendor", vid, dealname="Vendor rename")
    assert world.sync().is_empty
    assert world.records["vendor"][vid]["dealname"] == "Vendor rename"


def test_close_date_both_ways_vendor_wins_a_conflict():
    world = World()
    pid = world.add("partner", dealname="d", closedate="2026-12-01", **REG)
    world.sync()
    vid = world.twin("partner", pid)
    world.edit("vendor", vid, closedate="2027-01-15")
    world.sync()
    assert world.records["partner"][pid]["closedate"] == "2027-01-15"
    world.edit("partner", pid, closedate="2027-02-01")
    world.edit("vendor", vid, closedate="2027-03-01")
    plan = world.sync()
    (conflict,) = plan.conflicts
    assert (conflict.base, conflict.partner, conflict.vendor, conflict.winner) == (
        "2027-01-15",
        "2027-02-01",
        "2027-03-01",
        "vendor",
    )
    assert world.records["partner"][pid]["closedate"] == "2027-03-01"


def test_product_interest_newest_change_wins():
    world = World()
    pid = world.add("partner", dealname="d", dealsync_product_interest="Analytics", **REG)
    world.sync()
    vid = world.twin("partner", pid)
    world.edit("vendor", vid, dealsync_product_interest="Billing")
    world.edit("partner", pid, dealsync_product_interest="Connect;Analytics")  # later
    plan = world.sync()
    assert plan.conflicts[0].winner == "partner"
    assert world.records["vendor"][vid]["dealsync_product_interest"] == "Analytics;Connect"


def test_vendor_facts_flow_to_the_partner_and_nothing_else_of_the_vendor_deal():
    world = World()
    pid = world.add("partner", dealname="d", **REG)
    world.sync()
    vid = world.twin("partner", pid)
    world.edit(
        "vendor",
        vid,
        dealstage="closedwon",
        amount="12000.50",
        description="internal",
        hubspot_owner_id="v-2",
    )
    world.sync()
    partner = world.records["partner"][pid]
    assert (
        partner["dealsync_vendor_stage"] == "Closed won"
        and partner["dealsync_vendor_amount"] == "12000.5"
    )
    assert (
        "description" not in partner
        and partner.get("dealstage") is None
        and partner.get("hubspot_owner_id") is None
    )


def test_one_way_fields_are_mirrored_and_never_flow_back():
    world = World()
    pid = world.add("partner", dealname="d", dealsync_intro_note="hello", **REG)
    world.sync()
    vid = world.twin("partner", pid)
    world.edit("vendor", vid, dealsync_intro_note="vendor scribble")
    world.edit("partner", pid, dealsync_vendor_stage="Closed won")
    world.sync()
    assert world.records["partner"][pid]["dealsync_intro_note"] == "hello"
    assert world.records["vendor"][vid]["dealsync_intro_note"] == "hello"
    assert world.records["partner"][pid]["dealsync_vendor_stage"] == "Appointment scheduled"


def test_conversion_creates_the_partner_twin_owned_by_the_named_contact():
    world = World()
    vid = world.add(
        "vendor",
        dealname="Vendor deal",
        dealsync_partner="acme",
        dealsync_partner_owner_email="Ann@acme.test",
        amount="500",
    )
    world.add(
        "vendor",
        dealname="for someone else",
        dealsync_partner="globex",
        dealsync_partner_owner_email="ann@acme.test",
    )
    plan = world.sync()
    (create,) = plan.creates
    assert create.target == "partner" and create.key == key_for("acme", "vendor", vid)
    assert (
        create.properties["hubspot_owner_id"] == "p-1"
        and create.properties["dealsync_shared"] == "true"
    )
    assert (
        create.properties["dealname"] == "Vendor deal"
        and create.properties["dealsync_vendor_amount"] == "500"
    )


def test_conversion_without_a_known_partner_contact_is_skipped():
    world = World()
    world.add(
        "vendor",
        dealname="x",
        dealsync_partner="acme",
        dealsync_partner_owner_email="nobody@acme.test",
    )
    plan = world.sync()
    assert plan.creates == [] and "nobody@acme.test" in plan.skips[0].reason


def test_archiving_archives_the_twin_both_directions():
    world = World()
    a = world.add("partner", dealname="a", **REG)
    b = world.add("partner", dealname="b", **REG)
    world.sync()
    world.archive("partner", a)
    world.archive("vendor", world.twin("partner", b))
    plan = world.sync()
    assert sorted((d.source, d.action) for d in plan.deletes) == [
        ("partner", "archive"),
        ("vendor", "archive"),
    ]
    assert world.records["vendor"].get(world.twin("partner", a)) is None
    assert b not in world.records["partner"]


def test_the_brake_holds_back_mass_deletion():
    world = World()
    ids = [world.add("partner", dealname=f"d{n}", **REG) for n in range(30)]
    world.sync()
    for pid in ids[:25]:
        world.archive("partner", pid)
    plan = world.plan()
    assert plan.deletes == [] and len(plan.held_deletes) == 25
    assert "--allow-mass-deletion" in plan.brake_reason


def test_approved_deletions_pass_the_brake_and_others_are_still_judged():
    world = World()
    ids = [world.add("partner", dealname=f"d{n}", **REG) for n in range(30)]
    world.sync()
    for pid in ids[:25]:
        world.archive("partner", pid)
    world.approved = frozenset(d.link_id for d in world.plan().held_deletes if d.link_id)
    for pid in ids[25:]:
        world.archive("partner", pid)  # five more, never shown to anyone
    plan = world.plan()
    assert len(plan.deletes) == 30 and not plan.held_deletes  # five judged alone: under the brake
    assert world.approved < {d.link_id for d in plan.deletes}
    world.approved = frozenset(list(world.approved)[:3])  # only three approved of thirty
    plan = world.plan()
    assert {d.link_id for d in plan.deletes} == world.approved and len(plan.held_deletes) == 27


def test_a_twin_created_before_a_crash_is_adopted_not_duplicated():
    world = World()
    pid = world.add("partner", dealname="d", **REG)
    plan = world.plan()
    # The run recorded its intent, created the twin, then died before the ledger commit.
    world.push(plan)
    world.modified[("partner", pid)] = 0
    world.records["partner"].pop(pid)  # only the twin is seen by the next pull
    replay = world.plan()
    assert replay.creates == [] and replay.adopts[0].partner_id == pid


def test_keys_of_other_pairs_are_ignored():
    assert parse_key("acme", "globex:partner:1") is None
    assert parse_key("acme", "acme:partner:1") == ("partner", "1")
    world = World()
    world.add(
        "vendor", dealname="b's twin", dealsync_key="globex:partner:9", dealsync_partner="globex"
    )
    plan = world.sync()
    assert plan.adopts == [] and plan.creates == []


def test_a_second_sync_writes_nothing():
    world = World()
    world.add(
        "partner", dealname="d", closedate="2026-05-05", dealsync_product_interest="Billing", **REG
    )
    world.add(
        "vendor",
        dealname="c",
        dealsync_partner="acme",
        dealsync_partner_owner_email="ann@acme.test",
    )
    world.sync()
    assert world.sync().is_empty


def test_owner_rules_by_field_fixed_and_fallback():
    from dealsync.rules import OwnerAssignment, assign_owner

    owners = {"de@vendor.test": "1", "fallback@vendor.test": "9"}
    by_field = OwnerAssignment(
        "by_field",
        (),
        "fallback@vendor.test",
        "country",
        {"DE": "de@vendor.test", "FR": "fr@vendor.test"},
    )
    assert assign_owner(by_field, {"country": "DE"}, owners, 0).owner_id == "1"
    french = assign_owner(by_field, {"country": "FR"}, owners, 0)  # fr@ is not an active owner
    assert (french.owner_id, french.used_fallback) == ("9", True) and "fallback" in french.note
    assert (
        assign_owner(OwnerAssignment("fixed", owner="de@vendor.test"), {}, owners, 5).owner_id
        == "1"
    )
    nobody = assign_owner(OwnerAssignment("round_robin", ("gone@vendor.test",)), {}, owners, 0)
    assert nobody.owner_id is None and "no owner" in nobody.note
