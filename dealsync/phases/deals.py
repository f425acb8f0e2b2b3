"""Deals: registrations from partners, conversions from the vendor, the shared fields of linked deals.

What only deals have: their visibility rule (linked, shared, or a key naming this pair), the canonical
check (a create needs its required fields), owners for new twins, and the welcome notes of conversions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from connectors.base import CountRule, Record
from dealsync.context import RunContext
from dealsync.echoes import settled_deal
from dealsync.field_times import newest_field_times
from dealsync.isolation import check_partner_writes, check_vendor_writes
from dealsync.mapping import DealMapping
from dealsync.merges import side_id
from dealsync.model import SIDES, Create, Link, Plan, Side, Welcome, to_json
from dealsync.outcomes import Quarantined, audit_row
from dealsync.pipeline import checking, reading, recording, writing
from dealsync.pipeline.checking import Checked
from dealsync.pipeline.reading import Pulled
from dealsync.pipeline.recording import CreateRecording, Recorded
from dealsync.pipeline.tracking import ChangeTracker, SnapshotTracker, cursor_tracker
from dealsync.pipeline.writing import Pushed
from dealsync.plan import PlanInput, key_of, make_plan, parse_key
from dealsync.record_schemas import canonical_deals
from dealsync.twins import TwinWrite, create_twins
from validation.quarantine import split_valid

DEALS = "deals"


@dataclass
class DealPhase:
    """Deals, for the shared steps."""

    ctx: RunContext
    object_type: str = DEALS
    noun: str = "deal"

    @property
    def mapping(self) -> DealMapping:
        return self.ctx.mapping

    def properties(self, side: Side) -> list[str]:
        return self.ctx.properties(side)

    def tracker(self, side: Side) -> ChangeTracker:
        ctx, connector = self.ctx, self.ctx.connectors[side]
        if connector.capabilities.change_detection == "snapshot":
            return SnapshotTracker(
                lambda: (
                    list(p.records)
                    for p in connector.pull_changes(DEALS, None, self.properties(side))
                ),
                ctx.ledger.snapshot(ctx.pair, side, DEALS),
                ctx.full_resync,
            )
        rule = self.count_rule(side)
        return cursor_tracker(ctx, side, DEALS, self.properties(side), rule, self.scoped(side))

    def count_rule(self, side: Side) -> CountRule:
        """The deals a side counts: those its share rule marks for this pair (what links hold)."""
        rule = self.mapping.registration if side == "partner" else self.mapping.conversion
        return CountRule((rule.count_match(self.ctx.pair),))

    def scoped(self, side: Side) -> bool:
        """Whether a side's pull can ask only for the deals its share rule marks for this pair: when
        the twins the pair creates there carry that mark (as the default mapping's do), so every
        linked deal is one the rule matches until a user changes it (which its count notices)."""
        rule = self.mapping.registration if side == "partner" else self.mapping.conversion
        pair = self.ctx.pair
        return rule.matches(self.mapping.on_create_values(side, pair), pair)

    def extra_ids(self, side: Side) -> list[str]:
        return []

    def parents(self, side: Side, records: Any) -> dict[str, tuple[str, ...]]:
        return {}

    def visible(self, side: Side, record: Record, parents: tuple[str, ...], linked: bool) -> bool:
        """Linked deals, shared ones, and ones whose key claims to be this pair's (the planner judges
        every claim)."""
        if linked:
            return True
        key = (record.properties.get(self.mapping.key(side)) or "").strip()
        if key and parse_key(self.ctx.pair, key) is not None:
            return True
        rule = self.mapping.registration if side == "partner" else self.mapping.conversion
        return rule.matches(record.properties, self.ctx.pair)

    def lost(self, records: Any, links: Any) -> set[tuple[Side, str]]:
        return set()

    def settled(self, side: Side, record: Record, link: Link) -> bool:
        return settled_deal(self.mapping, self.ctx.pair, side, link, record.properties)


@dataclass
class DealsDone:
    """What the deals phase recorded, and what the notes phase needs of it."""

    recorded: Recorded
    welcome: list[Welcome] = field(default_factory=list)


def pull(phase: DealPhase) -> Pulled:
    """1. Pull: changed, quarantined and linked deals of both sides, deletions, merges."""
    return reading.pull(phase)


def validate(phase: DealPhase, pulled: Pulled) -> Checked:
    """2-3. Validate and map: raw schema, canonical values, then the canonical schema for the records
    that would create a twin (it needs its required fields; the mapping itself made every value
    canonical, so the records of linked deals have nothing more to prove)."""
    checked = checking.check(phase, pulled)
    ctx, mapping = phase.ctx, phase.mapping
    linked = {side: {side_id(link, side) for link in pulled.links} for side in SIDES}
    fields = [rule.name for rule in mapping.synced_fields()]
    for side in SIDES:
        records = checked.records[side]
        rule = mapping.registration if side == "partner" else mapping.conversion
        creating = [
            record
            for record_id, record in records.items()
            if record_id not in linked[side]
            and not record.raw.get(mapping.key(side))
            and rule.matches(record.raw, ctx.pair)
        ]
        if not creating:
            continue
        columns: dict[str, list[Any]] = {
            "record_id": [record.id for record in creating],
            "creates_twin": [True] * len(creating),
        }
        for name in fields:
            columns[name] = [to_json(record.values.get(name)) for record in creating]
        _, bad = split_valid(pd.DataFrame(columns), canonical_deals(mapping), "record_id")
        for record_id, reasons in bad.items():
            raw = dict(pulled.records[side][record_id].properties)
            records.pop(record_id, None)
            checked.quarantined.append(
                Quarantined(side, record_id, "validate", reasons, raw, False)
            )
    return checked


def plan(phase: DealPhase, pulled: Pulled, checked: Checked) -> Plan:
    """4. Plan: owners, links and the ledger's word on keys gathered; the pure planner decides (again
    field by field where a `newest` conflict needs the property history)."""
    ctx = phase.ctx
    linked = {side: {side_id(link, side) for link in pulled.links} for side in SIDES}
    unlinked = {side: [r for r in checked.records[side] if r not in linked[side]] for side in SIDES}
    owners = _owners_for_creates(phase, checked, unlinked)
    keys = [key_of(phase.mapping, s, checked.records[s][r]) for s in SIDES for r in unlinked[s]]
    taken = ctx.ledger.linked_elsewhere(ctx.pair, DEALS, unlinked["vendor"])
    inp = PlanInput(
        pair=ctx.pair,
        mapping=phase.mapping,
        links=tuple(pulled.links),
        records=checked.records,
        gone=frozenset(pulled.gone),
        owners=owners,
        owner_rules=ctx.config.owner_assignment,
        owner_turn=ctx.ledger.owner_turn(ctx.pair),
        active_links=ctx.ledger.count_links(ctx.pair),
        allow_mass_deletion=ctx.allow_mass_deletion,
        approved_deletions=ctx.ledger.approved_deletions(ctx.pair, DEALS),
        intents=ctx.ledger.intents(ctx.pair, [DEALS], keys),
        known=frozenset(ctx.ledger.known_records(ctx.pair, DEALS, unlinked)),
        taken=frozenset(("vendor", vendor_id) for vendor_id in taken),
    )
    decided = make_plan(inp)
    times = newest_field_times(ctx, DEALS, decided.conflicts, inp.links, phase.mapping.fields)
    if not times:
        return decided
    records = {
        side: {rid: replace(r, field_ms=times.get((side, rid), {})) for rid, r in by_id.items()}
        for side, by_id in inp.records.items()
    }
    return make_plan(replace(inp, records=records))


def _owners_for_creates(
    phase: DealPhase, checked: Checked, unlinked: dict[Side, list[str]]
) -> dict[Side, dict[str, str]]:
    """The owners new twins may get, read only when a record could become one: registrations get
    a vendor owner, conversions the partner contact they name."""
    book, rules = phase.ctx.owner_book, phase.ctx.config.owner_assignment
    owners: dict[Side, dict[str, str]] = {"partner": {}, "vendor": {}}
    if unlinked["partner"]:
        wanted = [*rules.pool, rules.fallback or "", rules.owner or "", *rules.table.values()]
        owners["vendor"] = book.by_email("vendor", wanted)
    if unlinked["vendor"]:
        prop = phase.mapping.partner_owner_email or ""
        wanted = [checked.records["vendor"][r].raw.get(prop) or "" for r in unlinked["vendor"]]
        owners["partner"] = book.by_email("partner", wanted)
    return owners


def push(phase: DealPhase, pulled: Pulled, plan: Plan) -> Pushed:
    """5. Push: isolation checked at the last moment, then creates, updates and deletions."""
    ctx = phase.ctx
    assert ctx.run_id is not None, "push needs a started run"
    check_partner_writes(
        ctx.ledger,
        ctx.pair,
        DEALS,
        [c.source_id for c in plan.creates if c.target == "partner"],
        [u.record_id for u in plan.updates if u.target == "partner" and u.link_id is not None]
        + [d.target_id for d in plan.deletes if d.source == "vendor" and d.action != "unlink"],
    )
    check_vendor_writes(
        ctx.ledger,
        ctx.pair,
        DEALS,
        [u.record_id for u in plan.updates if u.target == "vendor" and u.link_id is not None]
        + [d.target_id for d in plan.deletes if d.source == "partner" and d.action != "unlink"],
    )
    held = _hold_deletes_of_other_partners(phase, plan)
    total = len(plan.creates) + len(plan.updates) + len(plan.deletes)
    creates = create_twins(
        ctx,
        DEALS,
        phase.mapping.key,
        [TwinWrite(c.key, c.target, c.source_id, c.properties) for c in plan.creates],
    )
    writing.progress(ctx, "creates", len(plan.creates), total)
    updates = writing.write_updates(
        ctx, DEALS, ((u.target, u.record_id, u.properties) for u in plan.updates)
    )
    writing.progress(ctx, "updates", len(plan.creates) + len(plan.updates), total)
    deletes = writing.write_deletes(ctx, DEALS, plan.deletes)
    writing.progress(ctx, "deletes", total, total)
    failed = writing.failures(
        DEALS, "deal", "twin", [(c, c.properties) for c in plan.creates], creates, updates, deletes
    )
    return Pushed(creates, updates, deletes, failed + held)


def _hold_deletes_of_other_partners(phase: DealPhase, plan: Plan) -> list[Quarantined]:
    """The last check before archiving vendor deals: each must still be marked for this partner
    (read now). A deletion of a deal marked for another partner is held and quarantined."""
    ctx = phase.ctx
    targets = [d for d in plan.deletes if d.source == "partner" and d.action != "unlink"]
    if not targets:
        return []
    rule = phase.mapping.conversion
    current = ctx.connectors["vendor"].read(DEALS, [d.target_id for d in targets], [rule.property])
    held = [
        d
        for d in targets
        if d.target_id in current and not rule.matches(current[d.target_id].properties, ctx.pair)
    ]
    plan.deletes = [d for d in plan.deletes if d not in held]
    return [
        Quarantined(
            "vendor",
            d.target_id,
            "trust",
            [
                f"vendor deal {d.target_id} is linked to partner {ctx.pair} but its {rule.property} "
                f"is {current[d.target_id].properties.get(rule.property) or ''!r}: its deletion is "
                f"held until it is marked for {ctx.pair} again"
            ],
            {},
            security=True,
        )
        for d in held
    ]


def commit(
    phase: DealPhase, pulled: Pulled, checked: Checked, plan: Plan, pushed: Pushed
) -> DealsDone:
    """6. Commit: what the CRMs confirmed, with an audit row per field written, and an event per
    registration; the welcome notes of the conversions for the notes phase."""
    ctx, mapping = phase.ctx, phase.mapping

    def rows(create: Any, twin_id: str) -> list[dict[str, Any]]:
        key_prop = mapping.key(create.target)
        return [
            audit_row(None, create.target, twin_id, "create", key_prop, None, create.key),
            *(
                audit_row(None, create.target, twin_id, "create", prop, None, value)
                for prop, value in create.properties.items()
                if prop != key_prop
            ),
        ]

    def event(create: Any, twin_id: str) -> str | None:
        if create.target != "vendor":
            return None
        name = next(
            (
                create.properties.get(r.vendor)
                for r in mapping.fields
                if r.required_on_create and r.vendor
            ),
            None,
        )
        return f"New deal registration from partner {ctx.pair}: {name or 'unnamed'} (vendor deal {twin_id})"

    recorded = recording.record(
        ctx,
        DEALS,
        "deal",
        pulled,
        checked,
        plan,
        pushed,
        CreateRecording(rows=rows, event=event),
        owner_turn=plan.next_owner_turn,
    )
    recorded.messages += list(plan.notes)
    return DealsDone(recorded, _welcome_notes(phase, checked, plan, pushed))


def _welcome_notes(phase: DealPhase, checked: Checked, plan: Plan, pushed: Pushed) -> list[Welcome]:
    """The welcome notes of the conversions created in this run."""
    prop = phase.mapping.welcome_note
    found = []
    for create in plan.creates:
        outcome = pushed.creates.get(create.key)
        vendor = checked.records["vendor"].get(create.source_id)
        text = (vendor.raw.get(prop) or "").strip() if vendor and prop else ""
        if create.target == "partner" and outcome and outcome.ok and outcome.record and text:
            stamp = str(int(time.time() * 1000))
            found.append(Welcome(create.source_id, outcome.record.id, text, stamp))
    return found


def new_links(done: DealsDone) -> list[Link]:
    """The deal links this run made (the notes phase reads the notes already on those deals)."""
    return done.recorded.new_links


__all__ = ["Create", "DealPhase", "DealsDone", "commit", "plan", "pull", "push", "validate"]
