"""The steps of one run of one pair: pull, validate, plan, push, commit. Flows and the CLI call these."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from connectors.base import Connector, Record, WriteInput, WriteOutcome
from connectors.errors import ConnectorError
from connectors.hubspot import modified_ms
from dealsync.config import Config, PartnerConfig
from dealsync.connections import build_connector
from dealsync.isolation import check_partner_writes, check_vendor_writes
from dealsync.ledger import Ledger
from dealsync.ledger.lease import PairLease
from dealsync.ledger.repo import RunCommit
from dealsync.mapping import (
    DealMapping,
    FieldErrors,
    NotesMapping,
    check_notes_fit,
    load_mapping,
    load_notes_mapping,
)
from dealsync.merge_reads import Merging
from dealsync.merges import Merge
from dealsync.model import (
    SIDES,
    Conflict,
    FieldRule,
    Link,
    Plan,
    Side,
    SideRecord,
    Skip,
    other,
    to_json,
)
from dealsync.plan import PlanInput, key_of, make_plan, parse_key
from dealsync.snapshots import Seen, observe
from validation.quarantine import SchemaLevelError, split_valid
from validation.schemas import RAW_SCHEMAS, canonical_deals

OBJECT = "deals"
Progress = Callable[[str, int, int], None]


@dataclass
class RunContext:
    """Everything one run of one pair works with."""

    pair: str
    partner: PartnerConfig
    mapping: DealMapping
    ledger: Ledger
    connectors: dict[Side, Connector]
    config: Config
    dry_run: bool = False
    full_resync: bool = False
    allow_mass_deletion: bool = False
    run_id: int | None = None
    progress: Progress | None = None
    notes_mapping: NotesMapping | None = None
    objects: frozenset[str] = frozenset({"deals", "notes", "files"})

    def properties(self, side: Side) -> list[str]:
        """What a pull reads on a side: the mapping's properties plus what owner rules look at."""
        names = self.mapping.properties(side)
        rule_prop = self.config.owner_assignment.property
        if side == "partner" and rule_prop:
            names.append(rule_prop)
        return list(dict.fromkeys(names))


@dataclass
class Quarantined:
    """A record kept out of this run, and why."""

    side: Side
    record_id: str
    stage: str
    reasons: list[str]
    payload: dict[str, Any]
    retriable: bool = True
    object_type: str = OBJECT
    security: bool = False  # a trust boundary held: shown as a security event in the run report

    def row(self) -> dict[str, Any]:
        """How run reports show it."""
        return {
            "side": self.side,
            "record_id": self.record_id,
            "stage": self.stage,
            "reasons": self.reasons,
            "object": self.object_type,
            "security": self.security,
        }


def skipped(skips: list[Skip], object_type: str = OBJECT) -> list[Quarantined]:
    """The records a plan could not act on, as quarantine entries."""
    return [
        Quarantined(
            s.side,
            s.record_id,
            "trust" if s.security else "plan",
            [s.reason],
            {},
            False,
            object_type,
            s.security,
        )
        for s in skips
    ]


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


@dataclass
class RunReport:
    """The summary of one run, for the CLI, the ledger and Prefect artifacts."""

    pair: str
    run_id: int | None
    dry_run: bool
    pulled: dict[str, int] = field(default_factory=dict)
    created: dict[str, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    updated: dict[str, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    deleted: dict[str, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    adopted: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    resolved: int = 0
    messages: list[str] = field(default_factory=list)
    brake: str = ""
    api_calls: int = 0
    seconds: float = 0.0
    plan: Plan | None = None
    new_links: list[Link] = field(default_factory=list)
    welcome: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    active_registrations: int | None = None

    @property
    def security(self) -> list[str]:
        """Trust boundaries this run held (forged keys, records of another partner), one line each."""
        rows = [*self.quarantined, *self.notes.get("quarantine", [])]
        return [
            f"{q['side']} {q.get('object', OBJECT)[:-1]} {q['record_id']}: {'; '.join(q['reasons'])}"
            for q in rows
            if q.get("security")
        ]

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (what the ledger keeps per run)."""
        return {
            "pulled": self.pulled,
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "adopted": self.adopted,
            "conflicts": len(self.conflicts),
            "quarantined": len(self.quarantined),
            "resolved": self.resolved,
            "brake": self.brake,
            "messages": self.messages,
            "notes": {k: v for k, v in self.notes.items() if k not in ("plan", "quarantine")},
            "active_registrations": self.active_registrations,
            "security": self.security,
            "api_calls": self.api_calls,
            "seconds": round(self.seconds, 3),
        }


def open_context(
    config: Config,
    partner_id: str,
    ledger: Ledger,
    dry_run: bool = False,
    full_resync: bool = False,
    allow_mass_deletion: bool = False,
    progress: Progress | None = None,
    objects: frozenset[str] = frozenset({"deals", "notes", "files"}),
) -> RunContext:
    """Resolve a pair's mapping and connectors (tokens are resolved here, at the edge)."""
    partner = config.partner(partner_id)
    connectors: dict[Side, Connector] = {
        "partner": build_connector(partner.crm, f"partner {partner_id}"),
        "vendor": build_connector(config.vendor_crm, "vendor"),
    }
    notes_mapping = (
        load_notes_mapping(partner.notes_mapping_path) if partner.notes_mapping_path else None
    )
    for side, connector in connectors.items():
        if notes_mapping is not None:
            check_notes_fit(notes_mapping, side, connector.kind, connector.capabilities.files_on)
    return RunContext(
        pair=partner_id,
        partner=partner,
        mapping=load_mapping(partner.mapping_path),
        notes_mapping=notes_mapping,
        ledger=ledger,
        connectors=connectors,
        config=config,
        dry_run=dry_run,
        full_resync=full_resync,
        allow_mass_deletion=allow_mass_deletion,
        progress=progress,
        objects=objects,
    )


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
                frame, RAW_SCHEMAS[ctx.connectors[side].kind](ctx.mapping, side), "id"
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
                    side, record.id, record.properties, modified_ms(record)
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


def newest_field_times(
    ctx: RunContext,
    object_type: str,
    conflicts: Iterable[Conflict],
    links: Iterable[Link],
    fields: Iterable[FieldRule],
) -> dict[tuple[Side, str], dict[str, int]]:
    """For the records in a `newest` conflict only: when each conflicting property last changed, on
    the sides whose CRM keeps property history (one batch read per 100 records a side)."""
    by_link = {link.id: link for link in links}
    rules = {rule.name: rule for rule in fields}
    wanted: dict[Side, dict[str, set[str]]] = {"partner": {}, "vendor": {}}
    for conflict in conflicts:
        if conflict.rule != "newest" or conflict.link_id not in by_link:
            continue
        for side in SIDES:
            record_id = _side_id(by_link[conflict.link_id], side)
            wanted[side].setdefault(record_id, set()).add(rules[conflict.field].prop(side) or "")
    times: dict[tuple[Side, str], dict[str, int]] = {}
    for side in SIDES:
        connector = ctx.connectors[side]
        if not wanted[side] or not connector.capabilities.property_history:
            continue
        props = sorted(set().union(*wanted[side].values()) - {""})
        for record_id, per_prop in connector.property_times(
            object_type, list(wanted[side]), props
        ).items():
            times[(side, record_id)] = per_prop
    return times


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


@dataclass(frozen=True)
class TwinWrite:
    """One twin to create: its key, where, from which source record, with what."""

    key: str
    target: Side
    source_id: str
    properties: Mapping[str, Any]
    associations: Sequence[tuple[str, str, int]] = ()


def create_twins(
    ctx: RunContext,
    object_type: str,
    key_property: Callable[[Side], str | None],
    wanted: Sequence[TwinWrite],
    intent_object: str | None = None,
) -> dict[str, WriteOutcome]:
    """Create twins by key, recording each intent in the ledger first (as `intent_object`, by
    default the CRM object). A create an earlier run left pending may have happened: it is an upsert
    on the key. Any other is a plain create, which a CRM with unique keys refuses when a record
    already carries the key (someone else's claim, never adopted)."""
    assert ctx.run_id is not None
    kind = intent_object or object_type
    earlier = ctx.ledger.earlier_intents(ctx.pair, kind, [c.key for c in wanted], ctx.run_id)
    ctx.ledger.record_intents(
        ctx.run_id, ctx.pair, kind, [(c.key, c.target, c.source_id) for c in wanted]
    )
    outcomes: dict[str, WriteOutcome] = {}
    for target in SIDES:
        prop = key_property(target)
        batch = [c for c in wanted if c.target == target]
        retry = [c for c in batch if c.key in earlier and prop]
        fresh = [c for c in batch if c not in retry]
        connector = ctx.connectors[target]
        if retry:
            inputs = [
                WriteInput(c.key, {k: v for k, v in c.properties.items() if k != prop})
                for c in retry
            ]
            outcomes.update({o.ref: o for o in connector.upsert(object_type, prop, inputs)})
        if fresh:
            inputs = [
                WriteInput(
                    c.key, {**c.properties, **({prop: c.key} if prop else {})}, None, c.associations
                )
                for c in fresh
            ]
            outcomes.update({o.ref: o for o in connector.create(object_type, inputs)})
    return outcomes


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


def refused_creates(creates: list, outcomes: dict[str, WriteOutcome]) -> list[str]:
    """Keys of creates the CRM refused for good (they did not happen: their intents failed)."""
    return [
        c.key
        for c in creates
        if c.key in outcomes
        and not outcomes[c.key].ok
        and not getattr(outcomes[c.key].error, "retriable", True)
    ]


def refused_links(links: list[Link], noun: str, object_type: str = OBJECT) -> list[Quarantined]:
    """Links the ledger refused (one of their records is linked already): the claimant is quarantined."""
    entries = []
    for link in links:
        side = other(link.origin)
        record_id = link.vendor_id if side == "vendor" else link.partner_id
        reason = (
            f"{side} {noun} {record_id} was to be linked with {link.origin} {noun} "
            f"{link.partner_id if side == 'vendor' else link.vendor_id}, but one of them is linked "
            "already: nothing was linked (a link is never moved)"
        )
        entries.append(
            Quarantined(side, record_id, "trust", [reason], {}, False, object_type, True)
        )
    return entries


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


def record_quarantine(ctx: RunContext, items: list[Quarantined]) -> None:
    """Put each item in the ledger's quarantine (or refresh its reasons and attempts)."""
    for item in items:
        ctx.ledger.quarantine(
            ctx.run_id,
            ctx.pair,
            item.side,
            item.record_id,
            item.stage,
            item.reasons,
            item.payload,
            item.retriable,
            item.object_type,
        )


def conflict_rows(conflicts: list[Conflict], prefix: str = "") -> list[dict[str, Any]]:
    """Conflicts as ledger rows (all three values, the rule and the winner)."""
    return [
        {
            "link_id": c.link_id,
            "field": f"{prefix}{c.field}",
            "base": to_json(c.base),
            "partner": to_json(c.partner),
            "vendor": to_json(c.vendor),
            "rule": c.rule,
            "winner": c.winner,
        }
        for c in conflicts
    ]


def audit_row(
    link_id: int | None,
    side: Side,
    record_id: str,
    action: str,
    field_name: str,
    old: Any,
    new: Any,
) -> dict[str, Any]:
    return {
        "link_id": link_id,
        "side": side,
        "record_id": record_id,
        "action": action,
        "field": field_name,
        "old": old,
        "new": new,
    }


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
            from dealsync.note_engine import run_notes

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
