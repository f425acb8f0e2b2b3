"""The steps of one run of one pair: pull, validate, plan, push, commit. Flows and the CLI call these."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from connectors.base import Record, WriteInput, WriteOutcome
from connectors.errors import ConnectorError
from dealsync.context import RunContext
from dealsync.field_times import newest_field_times
from dealsync.isolation import check_partner_writes, check_vendor_writes
from dealsync.ledger.lease import PairLease
from dealsync.ledger.repo import RunCommit
from dealsync.mapping import (
    FieldErrors,
)
from dealsync.merge_reads import Merging
from dealsync.merges import Merge
from dealsync.model import (
    SIDES,
    Link,
    Plan,
    Side,
    SideRecord,
    other,
    to_json,
)
from dealsync.note_engine import run_notes
from dealsync.outcomes import (
    Quarantined,
    RunReport,
    audit_row,
    conflict_rows,
    record_quarantine,
    refused_links,
    skipped,
)
from dealsync.plan import PlanInput, key_of, make_plan, parse_key
from dealsync.record_schemas import canonical_deals, raw_schema
from dealsync.snapshots import Seen, observe
from dealsync.twins import TwinWrite, create_twins, refused_creates
from validation.quarantine import SchemaLevelError, split_valid

OBJECT = "deals"


@dataclass
class Pulled:
    """Raw records of both sides that matter to this pair, and what the pulls learned."""

    records: dict[Side, dict[str, Record]]
    links: list[Link]
    gone: set[tuple[Side, str]]
    cursors: dict[Side, int | None]
    counts: dict[str, int] = field(default_factory=dict)
    snapshots: dict[Side, dict[str, Seen]] = field(default_factory=dict)  # complete scans
    merges: list[Merge] = field(default_factory=list)  # links that follow (or end with) a merge


@dataclass
class Validated:
    """Canonical records that passed validation, and the ones quarantined."""

    records: dict[Side, dict[str, SideRecord]]
    quarantined: list[Quarantined]


@dataclass
class Pushed:
    """What the CRMs confirmed."""

    creates: dict[str, WriteOutcome]  # by key
    updates: dict[tuple[Side, str], WriteOutcome]
    deletes: dict[tuple[Side, str], WriteOutcome]
    failures: list[Quarantined]


# ---- pull --------------------------------------------------------------------------------
def _relevant(ctx: RunContext, side: Side, record: Record, linked: set[str]) -> bool:
    """Visibility as a rule: only records this pair may ever see enter the run (linked ones, shared
    ones, and ones whose key claims to be this pair's: the planner judges every claim)."""
    if record.id in linked:
        return True
    key = (record.properties.get(ctx.mapping.key(side)) or "").strip()
    if key and parse_key(ctx.pair, key) is not None:
        return True
    rule = ctx.mapping.registration if side == "partner" else ctx.mapping.conversion
    return rule.matches(record.properties, ctx.pair)


def _side_id(link: Link, side: Side) -> str:
    return link.partner_id if side == "partner" else link.vendor_id


def pull(ctx: RunContext) -> Pulled:
    """Changed records of both sides (by cursor, or by comparing a complete scan with the snapshot),
    plus quarantined ones, counterparts of touched links, deletions, and merges to follow."""
    records: dict[Side, dict[str, Record]] = {"partner": {}, "vendor": {}}
    cursors: dict[Side, int | None] = {}
    counts: dict[str, int] = {}
    links: dict[int, Link] = {}
    scans: dict[Side, dict[str, Record]] = {}
    hashes: dict[Side, dict[str, Seen]] = {}
    merging = Merging(ctx)
    scan_ms = int(time.time() * 1000)
    for side in SIDES:
        connector = ctx.connectors[side]
        snapshot = connector.capabilities.change_detection == "snapshot"
        since = None if ctx.full_resync or snapshot else ctx.ledger.cursor(ctx.pair, side, OBJECT)
        cursors[side] = since
        previous = ctx.ledger.snapshot(ctx.pair, side) if snapshot else {}
        if snapshot:
            scans[side], hashes[side] = {}, {}
        seen = changed = 0
        for page in connector.pull_changes(OBJECT, since, ctx.properties(side)):
            seen += len(page.records)
            merging.saw(side, page.records)
            page_links = ctx.ledger.links_for(ctx.pair, side, [r.id for r in page.records])
            links.update({link.id: link for link in page_links})
            linked = {_side_id(link, side) for link in page_links}
            for record in page.records:
                if not _relevant(ctx, side, record, linked):
                    continue
                if snapshot:
                    observed = observe(record, previous, scan_ms)
                    record = scans[side][record.id] = observed.record
                    hashes[side][record.id] = observed.seen
                    if not ctx.full_resync and not observed.changed:
                        continue  # unchanged since the last synced scan
                changed += 1
                records[side][record.id] = record
            cursors[side] = page.cursor
        counts[f"{side} changed"] = changed if snapshot else seen
        counts[f"{side} relevant"] = len(records[side])
        retry = [
            e.record_id
            for e in ctx.ledger.open_quarantine(ctx.pair, side)
            if e.object_type == OBJECT and e.record_id not in records[side]
        ]
        if retry:
            found = (
                {r: scans[side][r] for r in retry if r in scans[side]}
                if snapshot
                else merging.read(side, retry)
            )
            records[side].update({r.id: r for r in found.values()})
            for link in ctx.ledger.links_for(ctx.pair, side, found):
                links[link.id] = link
    merging.follow(records, links)
    gone = _counterparts_and_deletions(ctx, records, links, scans, merging)
    return Pulled(records, list(links.values()), gone, cursors, counts, hashes, merging.merges)


def _counterparts_and_deletions(
    ctx: RunContext,
    records: dict[Side, dict[str, Record]],
    links: dict[int, Link],
    scans: dict[Side, dict[str, Record]],
    merging: Merging,
) -> set[tuple[Side, str]]:
    """Read the other side of every touched link; find linked records deleted on either side.
    A linked id that reads as another record, or shows as archived but reads as another record, was
    merged: its link follows the survivor instead of counting as a deletion."""
    gone: set[tuple[Side, str]] = set()
    _read_counterparts(ctx, records, links, scans, merging, gone)
    # Deletions change no modification time: a cursor CRM is asked for archived records, and on a
    # snapshot CRM a linked record missing from the complete scan is gone (an incomplete scan raised).
    all_links = merging.unfollowed(ctx.ledger.active_links(ctx.pair))
    for side in SIDES:
        ids = [_side_id(link, side) for link in all_links]
        gone.update((side, i) for i in merging.deleted(side, ids, scans.get(side)))
    merging.follow(records, links)
    for side in SIDES:
        for link in all_links:
            if (side, _side_id(link, side)) in gone:
                links.setdefault(link.id, link)  # type: ignore[arg-type]
    _read_counterparts(ctx, records, links, scans, merging, gone)
    return gone


def _read_counterparts(
    ctx: RunContext,
    records: dict[Side, dict[str, Record]],
    links: dict[int, Link],
    scans: dict[Side, dict[str, Record]],
    merging: Merging,
    gone: set[tuple[Side, str]],
) -> None:
    """Read the records of touched links that the run has not read yet (following merges)."""
    for side in SIDES:
        wanted = [
            _side_id(link, side)
            for link in links.values()
            if _side_id(link, side) not in records[side]
            and (side, _side_id(link, side)) not in gone
        ]
        if not wanted:
            continue
        if side in scans:
            found = {r: scans[side][r] for r in wanted if r in scans[side]}
        else:
            found = merging.read(side, wanted)
        records[side].update({r: rec for r, rec in found.items() if rec.id == r})
        gone.update((side, record_id) for record_id in wanted if record_id not in found)
    merging.follow(records, links)


# ---- validate ----------------------------------------------------------------------------
def validate(ctx: RunContext, pulled: Pulled) -> Validated:
    """Raw schema, then mapping into canonical values, then the canonical schema; bad rows quarantined."""
    quarantined: list[Quarantined] = []
    result: dict[Side, dict[str, SideRecord]] = {"partner": {}, "vendor": {}}
    linked = {
        "partner": {lk.partner_id for lk in pulled.links},
        "vendor": {lk.vendor_id for lk in pulled.links},
    }
    for side in SIDES:
        raw = pulled.records[side]
        if not raw:
            continue
        # Columns come from what the CRM returned: a property it does not have is a missing column.
        frame = pd.DataFrame([{"id": r.id, **r.properties} for r in raw.values()])
        try:
            good, bad = split_valid(
                frame, raw_schema(ctx.connectors[side].kind, ctx.mapping, side, OBJECT), "id"
            )
        except SchemaLevelError as exc:
            raise SchemaLevelError(
                f"the {side} CRM's deals do not fit the mapping {ctx.mapping.path}: {exc}. A missing column is a "
                f"property that does not exist on that portal: run `dealsync init`, or fix the mapping."
            ) from exc
        quarantined += [
            Quarantined(side, rid, "validate", reasons, dict(raw[rid].properties), retriable=False)
            for rid, reasons in bad.items()
        ]
        canonical_rows = []
        for record_id in good["id"]:
            record = raw[str(record_id)]
            try:
                side_record = ctx.mapping.side_record(
                    side, record.id, record.properties, record.modified_ms
                )
            except FieldErrors as exc:
                quarantined.append(
                    Quarantined(
                        side, record.id, "validate", exc.errors, dict(record.properties), False
                    )
                )
                continue
            result[side][record.id] = side_record
            creates = (
                record.id not in linked[side]
                and not record.properties.get(ctx.mapping.key(side))
                and (
                    ctx.mapping.registration if side == "partner" else ctx.mapping.conversion
                ).matches(record.properties, ctx.pair)
            )
            canonical_rows.append(
                {
                    "record_id": record.id,
                    "creates_twin": creates,
                    **{k: to_json(v) for k, v in side_record.values.items()},
                }
            )
        if canonical_rows:
            _, bad_canonical = split_valid(
                pd.DataFrame(canonical_rows), canonical_deals(ctx.mapping), "record_id"
            )
            for record_id, reasons in bad_canonical.items():
                result[side].pop(record_id, None)
                quarantined.append(
                    Quarantined(
                        side, record_id, "validate", reasons, dict(raw[record_id].properties), False
                    )
                )
    return Validated(result, quarantined)


# ---- plan --------------------------------------------------------------------------------
def plan_run(ctx: RunContext, pulled: Pulled, validated: Validated) -> Plan:
    """Owners and links gathered, then the pure planner decides."""
    owners: dict[Side, dict[str, str]] = {}
    for side in SIDES:
        owners[side] = {
            o.email.lower(): o.id for o in ctx.connectors[side].owners() if not o.archived
        }
    linked = {side: {_side_id(link, side) for link in pulled.links} for side in SIDES}
    unlinked = {
        side: [rid for rid in validated.records[side] if rid not in linked[side]] for side in SIDES
    }
    keys = [
        key_of(ctx.mapping, side, validated.records[side][rid])
        for side in SIDES
        for rid in unlinked[side]
    ]
    taken = ctx.ledger.linked_elsewhere(ctx.pair, OBJECT, unlinked["vendor"])
    inp = PlanInput(
        pair=ctx.pair,
        mapping=ctx.mapping,
        links=tuple(pulled.links),
        records=validated.records,
        gone=frozenset(pulled.gone),
        owners=owners,
        owner_rules=ctx.config.owner_assignment,
        owner_turn=ctx.ledger.owner_turn(ctx.pair),
        active_links=ctx.ledger.count_links(ctx.pair),
        allow_mass_deletion=ctx.allow_mass_deletion,
        intents=ctx.ledger.intents(ctx.pair, [OBJECT], keys),
        known=frozenset(ctx.ledger.known_records(ctx.pair, OBJECT, unlinked)),  # type: ignore[arg-type]
        taken=frozenset(("vendor", vendor_id) for vendor_id in taken),
    )
    plan = make_plan(inp)
    times = newest_field_times(ctx, OBJECT, plan.conflicts, inp.links, ctx.mapping.fields)
    if not times:
        return plan
    records = {
        side: {rid: replace(r, field_ms=times.get((side, rid), {})) for rid, r in by_id.items()}
        for side, by_id in inp.records.items()
    }
    return make_plan(replace(inp, records=records))  # decided again, field by field


# ---- push --------------------------------------------------------------------------------
def push(ctx: RunContext, plan: Plan) -> Pushed:
    """Send the plan to both CRMs in batches; failures are per record."""
    assert ctx.run_id is not None, "push needs a started run"
    check_partner_writes(
        ctx.ledger,
        ctx.pair,
        OBJECT,
        [c.source_id for c in plan.creates if c.target == "partner"],
        [u.record_id for u in plan.updates if u.target == "partner" and u.link_id is not None]
        + [d.target_id for d in plan.deletes if d.source == "vendor" and d.action != "unlink"],
    )
    check_vendor_writes(
        ctx.ledger,
        ctx.pair,
        OBJECT,
        [u.record_id for u in plan.updates if u.target == "vendor" and u.link_id is not None]
        + [d.target_id for d in plan.deletes if d.source == "partner" and d.action != "unlink"],
    )
    held = _hold_deletes_of_other_partners(ctx, plan)
    creates = create_twins(
        ctx,
        OBJECT,
        ctx.mapping.key,
        [TwinWrite(c.key, c.target, c.source_id, c.properties) for c in plan.creates],
    )
    total = len(plan.creates) + len(plan.updates) + len(plan.deletes)
    done = len(plan.creates)
    _progress(ctx, "creates", done, total)
    updates: dict[tuple[Side, str], WriteOutcome] = {}
    for target in SIDES:
        merged: dict[str, dict[str, str]] = defaultdict(dict)
        for update in plan.updates:
            if update.target == target:
                merged[update.record_id].update(update.properties)
        if merged:
            inputs = [WriteInput(rid, props, id=rid) for rid, props in merged.items()]
            for outcome in ctx.connectors[target].update(OBJECT, inputs):
                updates[(target, outcome.ref)] = outcome
            done += len(merged)
            _progress(ctx, "updates", done, total)
    deletes: dict[tuple[Side, str], WriteOutcome] = {}
    for source in SIDES:
        target = other(source)
        archive_ids = [
            d.target_id for d in plan.deletes if d.source == source and d.action == "archive"
        ]
        if archive_ids:
            for outcome in ctx.connectors[target].archive(OBJECT, archive_ids):
                deletes[(target, outcome.ref)] = outcome
        flags = [
            d for d in plan.deletes if d.source == source and d.action == "flag" and d.flag_property
        ]
        if flags:
            inputs = [
                WriteInput(d.target_id, {d.flag_property: "true"}, id=d.target_id) for d in flags
            ]
            for outcome in ctx.connectors[target].update(OBJECT, inputs):
                deletes[(target, outcome.ref)] = outcome
    _progress(ctx, "deletes", total, total)
    # A failed create is the source record's problem: quarantine it on its own side.
    failures = [
        Quarantined(
            other(c.target),
            c.source_id,
            "push",
            [f"creating the {c.target} twin failed: {creates[c.key].error}"],
            dict(c.properties),
            retriable=True,
        )
        for c in plan.creates
        if not creates[c.key].ok
    ]
    failures += [
        Quarantined(
            side, rid, "push", [f"updating {side} deal {rid} failed: {outcome.error}"], {}, True
        )
        for (side, rid), outcome in updates.items()
        if not outcome.ok
    ]
    failures += [
        Quarantined(
            side, rid, "push", [f"deleting {side} deal {rid} failed: {outcome.error}"], {}, True
        )
        for (side, rid), outcome in deletes.items()
        if not outcome.ok
    ]
    return Pushed(creates, updates, deletes, failures + held)


def _hold_deletes_of_other_partners(ctx: RunContext, plan: Plan) -> list[Quarantined]:
    """The last check before archiving vendor deals: each must still be marked for this partner
    (read now). A deletion of a deal marked for another partner is held and quarantined."""
    targets = [d for d in plan.deletes if d.source == "partner" and d.action != "unlink"]
    if not targets:
        return []
    rule = ctx.mapping.conversion
    current = ctx.connectors["vendor"].read(OBJECT, [d.target_id for d in targets], [rule.property])
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


def _progress(ctx: RunContext, what: str, done: int, total: int) -> None:
    if ctx.progress:
        ctx.progress(what, done, total)


# ---- commit ------------------------------------------------------------------------------
def commit(
    ctx: RunContext, pulled: Pulled, validated: Validated, plan: Plan, pushed: Pushed
) -> RunReport:
    """Write to the ledger only what the CRMs confirmed, then advance the cursors."""
    assert ctx.run_id is not None
    report = RunReport(ctx.pair, ctx.run_id, ctx.dry_run, pulled=pulled.counts, plan=plan)
    new_links: list[Link] = []
    intents_done: dict[str, str] = {}
    changes: list[dict[str, Any]] = []
    for create in plan.creates:
        outcome = pushed.creates[create.key]
        if not outcome.ok or outcome.record is None:
            continue
        twin_id = outcome.record.id
        source = other(create.target)
        partner_id, vendor_id = (
            (create.source_id, twin_id) if source == "partner" else (twin_id, create.source_id)
        )
        new_links.append(Link(None, partner_id, vendor_id, source, create.base))
        intents_done[create.key] = twin_id
        report.created[create.target] += 1
        if create.target == "vendor":
            name = next(
                (
                    create.properties.get(r.vendor)
                    for r in ctx.mapping.fields
                    if r.required_on_create and r.vendor
                ),
                None,
            )
            report.events.append(
                f"New deal registration from partner {ctx.pair}: {name or 'unnamed'} (vendor deal {twin_id})"
            )
        changes.append(
            audit_row(
                None,
                create.target,
                twin_id,
                "create",
                ctx.mapping.key(create.target),
                None,
                create.key,
            )
        )
        changes += [
            audit_row(None, create.target, twin_id, "create", prop, None, value)
            for prop, value in create.properties.items()
            if prop != ctx.mapping.key(create.target)
        ]
    for adopt in plan.adopts:
        new_links.append(Link(None, adopt.partner_id, adopt.vendor_id, adopt.origin, adopt.base))
        report.adopted += 1
    report.new_links = new_links
    report.welcome = _welcome_notes(ctx, validated, plan, pushed)
    failed_links: set[int] = set()
    for update in plan.updates:
        outcome = pushed.updates.get((update.target, update.record_id))
        if outcome is None or not outcome.ok:
            if update.link_id is not None:
                failed_links.add(update.link_id)
            continue
        report.updated[update.target] += 1
        changes += [
            audit_row(
                update.link_id,
                update.target,
                update.record_id,
                "update",
                c.field,
                to_json(c.old),
                to_json(c.new),
            )
            for c in update.changes
        ]
    link_states: dict[int, str] = {}
    for delete in plan.deletes:
        target = other(delete.source)
        outcome = pushed.deletes.get((target, delete.target_id))
        if delete.action != "unlink" and (outcome is None or not outcome.ok):
            continue
        if delete.link_id is not None:
            link_states[delete.link_id] = "unlinked" if delete.action == "unlink" else "archived"
        if delete.action != "unlink":
            report.deleted[target] += 1
            changes.append(
                audit_row(delete.link_id, target, delete.target_id, delete.action, "*", None, None)
            )
    bases = {
        link_id: base for link_id, base in plan.new_bases.items() if link_id not in failed_links
    }
    conflicts = conflict_rows(plan.conflicts)
    cursors = {(side, OBJECT): value for side, value in pulled.cursors.items() if value is not None}
    refused = ctx.ledger.commit_run(
        ctx.run_id,
        ctx.pair,
        RunCommit(
            new_links,
            bases,
            link_states,
            changes,
            conflicts,
            cursors,
            intents_done,
            plan.next_owner_turn,
            intents_failed=refused_creates(plan.creates, pushed.creates),
            relinks={m.link.id: (m.side, m.new_id) for m in pulled.merges if m.follows},  # type: ignore[misc]
            merged_away=[m.link.id for m in pulled.merges if not m.follows],  # type: ignore[misc]
        ),
    )
    for side, scanned in pulled.snapshots.items():
        ctx.ledger.save_snapshot(ctx.pair, side, scanned)
    quarantined = validated.quarantined + pushed.failures + skipped(plan.skips)
    quarantined += refused_links(refused, "deal")
    record_quarantine(ctx, quarantined)
    still_bad = {(q.side, q.record_id) for q in quarantined}
    for side in SIDES:
        healthy = [rid for rid in validated.records[side] if (side, rid) not in still_bad]
        report.resolved += ctx.ledger.resolve_quarantine(ctx.pair, side, healthy)
    report.conflicts = conflicts
    report.changes = changes
    report.quarantined = [q.row() for q in quarantined]
    report.messages = [m.message("deal") for m in pulled.merges] + list(plan.notes)
    report.brake = plan.brake_reason
    return report


def _track_and_notify(ctx: RunContext, report: RunReport) -> None:
    """Report the active registration count on the vendor side and notify the pair's recipients."""
    from dealsync.notify import send
    from dealsync.tracking import active_registrations, report_registrations

    report.active_registrations = active_registrations(ctx.ledger, ctx.pair)
    try:
        report_registrations(ctx)
    except (ConnectorError, RuntimeError) as exc:
        report.messages.append(f"the registration count was not written: {exc}")
    report.messages += send(ctx.partner.notify, f"dealsync: partner {ctx.pair}", report.events)


def _welcome_notes(
    ctx: RunContext, validated: Validated, plan: Plan, pushed: Pushed
) -> list[tuple[str, str, str, str]]:
    """(vendor deal, new partner deal, welcome text, timestamp) for conversions created in this run."""
    prop = ctx.mapping.welcome_note
    found = []
    for create in plan.creates:
        outcome = pushed.creates[create.key]
        vendor = validated.records["vendor"].get(create.source_id)
        text = (vendor.raw.get(prop) or "").strip() if vendor and prop else ""
        if create.target == "partner" and outcome.ok and outcome.record and text:
            found.append((create.source_id, outcome.record.id, text, str(int(time.time() * 1000))))
    return found


def dry_run_report(ctx: RunContext, pulled: Pulled, validated: Validated, plan: Plan) -> RunReport:
    """What a dry run shows: the plan, and what would be quarantined; nothing is written anywhere."""
    report = RunReport(ctx.pair, None, True, pulled=pulled.counts, plan=plan)
    for create in plan.creates:
        report.created[create.target] += 1
    for update in plan.updates:
        report.updated[update.target] += 1
    for delete in plan.deletes:
        if delete.action != "unlink":
            report.deleted[other(delete.source)] += 1
    report.adopted = len(plan.adopts)
    report.conflicts = [
        {
            "field": c.field,
            "base": c.base,
            "partner": c.partner,
            "vendor": c.vendor,
            "rule": c.rule,
            "winner": c.winner,
        }
        for c in plan.conflicts
    ]
    report.quarantined = [q.row() for q in [*validated.quarantined, *skipped(plan.skips)]]
    report.messages = list(plan.notes)
    report.brake = plan.brake_reason
    return report


def run_pair(ctx: RunContext, call: Callable[..., Any] | None = None) -> RunReport:
    """One run of one pair, step by step; `call(step, *args)` lets a Prefect flow run each as a task."""
    if ctx.dry_run:
        return _run_pair(ctx, call)
    with PairLease(ctx.ledger, ctx.pair):
        return _run_pair(ctx, call)


def _run_pair(ctx: RunContext, call: Callable[..., Any] | None) -> RunReport:
    invoke = call or (lambda step, *args: step(*args))
    started = time.monotonic()
    if not ctx.dry_run:
        ctx.run_id = ctx.ledger.start_run(ctx.pair, ctx.dry_run, ctx.full_resync)
    try:
        if "deals" in ctx.objects:
            pulled = invoke(pull, ctx)
            validated = invoke(validate, ctx, pulled)
            plan = invoke(plan_run, ctx, pulled, validated)
            if ctx.dry_run:
                report = dry_run_report(ctx, pulled, validated, plan)
            else:
                pushed = invoke(push, ctx, plan)
                report = invoke(commit, ctx, pulled, validated, plan, pushed)
        else:
            report = RunReport(ctx.pair, ctx.run_id, ctx.dry_run)
        if ctx.notes_mapping is not None and "notes" in ctx.objects:
            report.notes = run_notes(ctx, report.new_links, report.welcome, call)
            report.events += report.notes.pop("events", [])
            report.messages += report.notes.pop("messages", [])
            if brake := report.notes.pop("brake", ""):
                report.messages.append(brake)
        if not ctx.dry_run:
            _track_and_notify(ctx, report)
    except Exception as exc:
        if ctx.run_id is not None:
            ctx.ledger.finish_run(ctx.run_id, "failed", {}, f"{type(exc).__name__}: {exc}")
        raise
    report.api_calls = sum(c.http.calls for c in ctx.connectors.values() if hasattr(c, "http"))
    report.seconds = time.monotonic() - started
    if ctx.run_id is not None:
        ctx.ledger.finish_run(ctx.run_id, "completed", report.summary())
    return report
