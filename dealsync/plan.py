"""The merge: current partner, current vendor and the last agreed base -> a plan of writes. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dealsync.claims import Intent, contested, decide, twin_of
from dealsync.mapping import DealMapping
from dealsync.model import (
    SIDES,
    Adopt,
    Conflict,
    Create,
    Delete,
    Direction,
    FieldChange,
    FieldRule,
    Link,
    Plan,
    Side,
    SideRecord,
    Skip,
    Update,
    Value,
    both,
    other,
)
from dealsync.rules import OwnerAssignment, assign_owner, brake_engaged, resolve_conflict


@dataclass(frozen=True)
class PlanInput:
    """What a run knows when it plans: the pair, its rules, both sides' current records, its links."""

    pair: str
    mapping: DealMapping
    links: tuple[Link, ...]
    records: Mapping[Side, Mapping[str, SideRecord]]
    gone: frozenset[tuple[Side, str]] = frozenset()
    owners: Mapping[Side, Mapping[str, str]] = field(
        default_factory=dict
    )  # email (lower) -> owner id
    owner_rules: OwnerAssignment = field(default_factory=OwnerAssignment)
    owner_turn: int = 0
    active_links: int = 0
    allow_mass_deletion: bool = False
    approved_deletions: frozenset[int] = frozenset()  # links whose held deletion a person approved
    # The ledger's word on keys (see claims.py): this pair's create intents by key, the records it
    # already knows (links in any state, twins it made), and records linked to another pair.
    intents: Mapping[str, Intent] = field(default_factory=dict)
    known: frozenset[tuple[Side, str]] = frozenset()
    taken: frozenset[tuple[Side, str]] = frozenset()


def key_for(pair: str, origin: Side, origin_id: str) -> str:
    """The idempotency key a twin carries: `<pair>:<origin side>:<origin record id>`."""
    return f"{pair}:{origin}:{origin_id}"


def parse_key(pair: str, key: str | None) -> tuple[Side, str] | None:
    """(origin side, origin id) of a key this pair wrote, or None for anything else."""
    if not key:
        return None
    parts = key.split(":")
    if len(parts) != 3 or parts[0] != pair or parts[1] not in ("partner", "vendor"):
        return None
    return parts[1], parts[2]  # type: ignore[return-value]


def make_plan(inp: PlanInput) -> Plan:
    """Decide every write of one run: merges of linked deals, creates, adoptions and deletions."""
    plan = Plan(next_owner_turn=inp.owner_turn)
    linked: dict[Side, set[str]] = {
        "partner": {link.partner_id for link in inp.links},
        "vendor": {link.vendor_id for link in inp.links},
    }
    always = _synced(inp.mapping, "always")
    partners, vendors = inp.records.get("partner", {}), inp.records.get("vendor", {})
    for link in inp.links:
        partner, vendor = partners.get(link.partner_id), vendors.get(link.vendor_id)
        _plan_link(inp, link, partner, vendor, always, plan)
    unlinked = [
        (side, record)
        for side in SIDES
        for record in inp.records.get(side, {}).values()
        if record.id not in linked[side] and not record.archived
    ]
    disputed = contested(
        (key, f"{side}:{record.id}")
        for side, record in unlinked
        if (key := key_of(inp.mapping, side, record))
    )
    created_from: set[tuple[Side, str]] = set()
    for side, record in unlinked:
        _plan_unlinked(inp, side, record, plan, created_from, linked, disputed)
    plan.adopts = [
        a
        for a in plan.adopts
        if (a.origin, a.partner_id if a.origin == "partner" else a.vendor_id) not in created_from
    ]
    _apply_brake(inp, plan)
    return plan


def _synced(mapping: DealMapping, when: str | None = None) -> list[FieldRule]:
    return [f for f in mapping.synced_fields() if when is None or f.when == when]


def key_of(mapping: DealMapping, side: Side, record: SideRecord) -> str:
    """The key a record carries on its side (blank counts as none)."""
    return (record.raw.get(mapping.key(side)) or "").strip()


def _plan_link(
    inp: PlanInput,
    link: Link,
    partner: SideRecord | None,
    vendor: SideRecord | None,
    always: list[FieldRule],
    plan: Plan,
) -> None:
    """The merge of one linked deal: its deletion, or the writes that bring both sides together."""
    partner_gone = bool(inp.gone) and ("partner", link.partner_id) in inp.gone
    vendor_gone = bool(inp.gone) and ("vendor", link.vendor_id) in inp.gone
    if partner_gone or vendor_gone:
        if partner_gone and vendor_gone:
            plan.deletes.append(Delete("partner", link.id, link.vendor_id, "unlink"))
            return
        source: Side = "partner" if partner_gone else "vendor"
        policy = inp.mapping.policy(source)
        target_id = link.vendor_id if source == "partner" else link.partner_id
        plan.deletes.append(Delete(source, link.id, target_id, policy.action, policy.flag_property))
        return
    if partner is None or vendor is None:
        return
    if not inp.mapping.conversion.matches(vendor.raw, inp.pair):
        plan.skips.append(_not_ours(inp, vendor))
        return
    old_base = link.base
    base = dict(old_base)
    writes: dict[Side, dict[str, str]] = {"partner": {}, "vendor": {}}
    changes: dict[Side, list[FieldChange]] = {"partner": [], "vendor": []}
    partner_values, vendor_values = partner.values, vendor.values
    for rule in always:
        name = rule.name
        p, v, b = partner_values.get(name), vendor_values.get(name), old_base.get(name)
        if p == v == b and name in old_base:
            continue  # nothing to merge: the common case of a field neither side changed
        target, value = merge_field(rule, p, v, b, partner, vendor, link, plan)
        base[name] = value
        if target is not None:
            current = p if target == "partner" else v
            writes[target][rule.prop(target)] = rule.write(target, value)  # type: ignore[index]
            changes[target].append(FieldChange(name, current, value))
    for side, record in both(partner, vendor):
        if writes[side]:
            plan.updates.append(
                Update(side, record.id, link.id, writes[side], tuple(changes[side]))
            )
    if link.id is not None and base != old_base:
        plan.new_bases[link.id] = base


def merge_field(
    rule: FieldRule,
    p: Value,
    v: Value,
    b: Value,
    partner: SideRecord,
    vendor: SideRecord,
    link: Link,
    plan: Plan,
) -> tuple[Side | None, Value]:
    """(side to write or None, the agreed value) for one field of a linked deal."""
    if rule.direction is Direction.PARTNER_TO_VENDOR:
        return ("vendor" if v != p else None), p
    if rule.direction is Direction.VENDOR_TO_PARTNER:
        return ("partner" if p != v else None), v
    if p == v:
        return None, p
    if p == b:
        return "partner", v
    if v == b:
        return "vendor", p
    winner = resolve_conflict(
        rule.conflict,
        p,
        v,
        partner.changed_ms(rule.prop("partner")),
        vendor.changed_ms(rule.prop("vendor")),
    )
    plan.conflicts.append(Conflict(link.id, rule.name, b, p, v, rule.conflict, winner))
    value = p if winner == "partner" else v
    return other(winner), value


def _not_ours(inp: PlanInput, vendor: SideRecord) -> Skip:
    """A linked vendor deal no longer marked for this partner: its link is held, both ways."""
    rule = inp.mapping.conversion
    return Skip(
        "vendor",
        vendor.id,
        f"vendor deal {vendor.id} is linked to partner {inp.pair} but its {rule.property} is "
        f"{vendor.raw.get(rule.property) or ''!r}: nothing of it is synced either way until it is "
        f"marked for {inp.pair} again",
        security=True,
    )


def _plan_unlinked(
    inp: PlanInput,
    side: Side,
    record: SideRecord,
    plan: Plan,
    created_from: set[tuple[Side, str]],
    linked: Mapping[Side, set[str]],
    disputed: set[str],
) -> None:
    mapping = inp.mapping
    if (side, record.id) in inp.known:
        return  # its link ended, or dealsync made it: it never registers again by itself
    rule = mapping.registration if side == "partner" else mapping.conversion
    wants_sharing = rule.matches(record.raw, inp.pair)
    if key := key_of(mapping, side, record):
        _plan_claim(inp, side, record, key, wants_sharing, plan, linked, disputed)
        return
    if not wants_sharing:
        return
    if (side, record.id) in inp.taken:
        reason = f"{side} deal {record.id} is already shared with another partner; it is not shared with {inp.pair}"
        plan.skips.append(Skip(side, record.id, reason, security=True))
        return
    target = other(side)
    missing = [
        f"{r.prop(side)} is empty ({r.name} is required to create the {target} deal)"
        for r in mapping.synced_fields()
        if r.required_on_create
        and r.direction.flows_to(target)
        and record.values.get(r.name) is None
    ]
    if missing:
        plan.skips.append(Skip(side, record.id, "; ".join(missing)))
        return
    properties, base = _create_payload(mapping, side, target, record, inp.pair)
    owner_note = ""
    if target == "vendor":
        choice = assign_owner(
            inp.owner_rules, record.raw, inp.owners.get("vendor", {}), plan.next_owner_turn
        )
        plan.next_owner_turn = choice.next_turn
        owner_note = choice.note
        if choice.owner_id:
            properties[mapping.owner(target)] = choice.owner_id
        if choice.used_fallback:
            plan.notes.append(f"partner deal {record.id}: {choice.note}")
    else:
        email = (record.raw.get(mapping.partner_owner_email or "") or "").strip()
        owner_id = inp.owners.get("partner", {}).get(email.lower()) if email else None
        if owner_id is None:
            plan.skips.append(
                Skip(
                    side,
                    record.id,
                    f"{mapping.partner_owner_email} is {email or 'empty'!r}: a conversion needs the email of an "
                    f"active user of partner {inp.pair}'s CRM to own the deal",
                )
            )
            return
        properties[mapping.owner(target)] = owner_id
        owner_note = f"partner contact {email}"
    key = key_for(inp.pair, side, record.id)
    plan.creates.append(Create(target, record.id, key, properties, base, owner_note))
    created_from.add((side, record.id))
    backfill = _backfill(mapping, side, target, record, properties)
    if backfill:
        props, changes = backfill
        plan.updates.append(Update(side, record.id, None, props, changes))


def _plan_claim(
    inp: PlanInput,
    side: Side,
    record: SideRecord,
    key: str,
    wants_sharing: bool,
    plan: Plan,
    linked: Mapping[Side, set[str]],
    disputed: set[str],
) -> None:
    """An unlinked record carrying a key: adopt it only as the twin of this pair's pending create."""
    verdict = decide(
        inp.pair,
        side,
        record.id,
        key,
        inp.intents,
        inp.known,
        disputed=disputed,
        origin_linked=linked[other(side)],
        wants_sharing=wants_sharing,
        key_property=inp.mapping.key(side),
        noun="deal",
    )
    if verdict.kind == "adopt":
        partner_id, vendor_id = twin_of(side, record.id, verdict.origin_id)
        base = {r.name: record.values.get(r.name) for r in _synced(inp.mapping, "always")}
        plan.adopts.append(Adopt(partner_id, vendor_id, other(side), base))
    elif verdict.kind == "refuse":
        plan.skips.append(Skip(side, record.id, verdict.reason, security=True))


def _create_payload(
    mapping: DealMapping, source: Side, target: Side, record: SideRecord, pair: str
) -> tuple[dict[str, str], dict[str, Value]]:
    """Properties of the new twin on `target`, and the base both sides will agree on."""
    properties = mapping.on_create_values(target, pair)
    for rule in mapping.synced_fields():
        value = record.values.get(rule.name)
        if rule.direction.flows_to(target) and value is not None:
            properties[rule.prop(target)] = rule.write(target, value)  # type: ignore[index]
    properties[mapping.key(target)] = key_for(pair, source, record.id)
    base: dict[str, Value] = {}
    for rule in _synced(mapping, "always"):
        base[rule.name] = _twin_value(rule, source, target, record, properties)
    return properties, base


def _twin_value(
    rule: FieldRule, source: Side, target: Side, record: SideRecord, twin_props: Mapping[str, str]
) -> Value:
    """The value both sides hold for a field once the twin exists and the source is backfilled."""
    if rule.direction.flows_to(target):
        return record.values.get(rule.name)
    return rule.read(target, twin_props)


def _backfill(
    mapping: DealMapping,
    source: Side,
    target: Side,
    record: SideRecord,
    twin_props: Mapping[str, str],
) -> tuple[dict[str, str], tuple[FieldChange, ...]] | None:
    """Fields flowing only from the new twin back to the source (e.g. the vendor's stage), written now."""
    props: dict[str, str] = {}
    changes: list[FieldChange] = []
    for rule in _synced(mapping, "always"):
        if rule.direction.flows_to(target) or not rule.direction.flows_to(source):
            continue
        value = rule.read(target, twin_props)
        if value != record.values.get(rule.name):
            props[rule.prop(source)] = rule.write(source, value)  # type: ignore[index]
            changes.append(FieldChange(rule.name, record.values.get(rule.name), value))
    return (props, tuple(changes)) if props else None


def _apply_brake(inp: PlanInput, plan: Plan) -> None:
    """Hold the destructive deletions when they are too many, except those a person approved."""
    destructive = [d for d in plan.deletes if d.action != "unlink"]
    approved = [d for d in destructive if d.link_id in inp.approved_deletions]
    judged = [d for d in destructive if d.link_id not in inp.approved_deletions]
    limit, fraction = inp.mapping.max_deletions, inp.mapping.max_deletion_fraction
    if inp.allow_mass_deletion or not brake_engaged(len(judged), inp.active_links, limit, fraction):
        return
    plan.held_deletes = judged
    plan.deletes = [d for d in plan.deletes if d.action == "unlink" or d in approved]
    plan.brake_reason = (
        f"deletion brake: this run would delete {len(judged)} records, more than {limit} and more than "
        f"{fraction:.0%} of the {inp.active_links} linked deals; nothing of them was deleted. If that is "
        f"intended, approve them (`dealsync deletions approve --partner {inp.pair}`, or in the Prefect "
        "UI when the run asks), or run again with --allow-mass-deletion."
    )
