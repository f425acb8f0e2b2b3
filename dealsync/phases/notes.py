"""Shared notes and comments on the pair's shared deals, with their files.

What only notes have: they belong to deals (a note's parents), they cross when marked shared or when
they answer a shared note, private ones never leave, the notes of a deal shared in this run are read
though they did not change, authors are matched or named, files travel with them, and a conversion's
welcome note is dealsync's own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from connectors.hubspot_settings import NOTE_TO_DEAL
from dealsync.claims import Intent
from dealsync.context import RunContext
from dealsync.field_times import newest_field_times
from dealsync.isolation import (
    IsolationError,
    check_partner_writes,
    check_vendor_writes,
    partner_ids_of,
)
from dealsync.merges import side_id
from dealsync.model import SIDES, Side, other
from dealsync.note_model import NoteCreate, NotePlan, NotePlanInput, NoteRecord
from dealsync.note_plan import adopt_interrupted_creates, make_note_plan
from dealsync.outcomes import audit_row
from dealsync.phases.deal_files import FILES
from dealsync.phases.note_files import (
    FileMover,
    NoteFiles,
    attachment_ids,
    delete_removed_files,
    note_files_synced,
)
from dealsync.phases.note_files import read_files as read_note_files
from dealsync.phases.note_phase import NOTES, NotePhase
from dealsync.pipeline import checking, reading, recording, writing
from dealsync.pipeline.checking import Checked
from dealsync.pipeline.reading import Pulled
from dealsync.pipeline.recording import CreateRecording, Recorded
from dealsync.pipeline.writing import Pushed
from dealsync.twins import TwinWrite, create_twins


def pull(phase: NotePhase) -> Pulled:
    """1. Pull: changed, quarantined and linked notes, with their deals; deletions; merges."""
    return reading.pull(phase)


def read_files(phase: NotePhase, pulled: Pulled, folder: str) -> NoteFiles:
    """1b. The files the pulled notes list, read once (where both CRMs keep files on notes)."""
    return read_note_files(phase.ctx, pulled, folder)


def validate(phase: NotePhase, pulled: Pulled) -> Checked:
    """2-3. Validate and map: raw schema, canonical values."""
    return checking.check(phase, pulled)


def plan(phase: NotePhase, pulled: Pulled, checked: Checked, files: NoteFiles) -> NotePlan:
    """4. Plan: authors resolved, files known, the ledger's word on keys; the pure planner decides
    (again field by field where a `newest` conflict needs the property history)."""
    ctx, mapping = phase.ctx, phase.mapping
    authors = {
        side: _authors(ctx, side, _author_refs(phase, pulled, checked, side))
        if any(checked.records.values())
        else _Authors({}, {})
        for side in SIDES
    }
    notes: dict[Side, dict[str, NoteRecord]] = {"partner": {}, "vendor": {}}
    for side in SIDES:
        for note_id, side_record in checked.records[side].items():
            record = pulled.records[side][note_id]
            ref = record.properties.get(mapping.owner(side)) or ""
            author = authors[side].by_ref.get(ref) or ((ref, "") if "@" in ref else None)
            shas = {
                files.files[side][f]
                for f in attachment_ids(ctx, record, side)
                if f in files.files[side]
            }
            notes[side][note_id] = NoteRecord(
                side_record,
                pulled.parents[side].get(note_id, ()),
                tuple(sorted(shas)),
                author[0] if author else None,
                author[1] if author else "",
            )
    intents, known = _ledger_word(phase, pulled, notes)
    inp = NotePlanInput(
        pair=ctx.pair,
        mapping=mapping,
        links=tuple(pulled.links),
        notes=notes,
        # A run with no notes to plan needs no deal twins (read lazily: a quiet run never reads them).
        deal_twins=phase.deal_twins
        if any(notes.values()) or pulled.links or pulled.gone
        else {"partner": {}, "vendor": {}},
        owners={side: authors[side].by_email for side in SIDES},
        gone=frozenset(pulled.gone),
        welcome=tuple(phase.welcome),
        sync_files=note_files_synced(ctx),
        intents=intents,
        known=known,
    )
    decided = make_note_plan(inp)
    if times := newest_field_times(ctx, NOTES, decided.conflicts, inp.links, mapping.fields):
        timed = {
            side: {
                n: replace(note, record=replace(note.record, field_ms=times.get((side, n), {})))
                for n, note in by_id.items()
            }
            for side, by_id in notes.items()
        }
        decided = make_note_plan(replace(inp, notes=timed))
    keyless = [c.key for c in decided.creates if not mapping.key(c.target)]
    interrupted = ctx.ledger.earlier_intents(ctx.pair, NOTES, keyless, ctx.run_id or -1)
    adopt_interrupted_creates(decided, mapping, notes, interrupted, pulled.links)
    return decided


@dataclass(frozen=True)
class _Authors:
    by_email: dict[str, str]  # email -> owner id, where a note's author can be set
    by_ref: dict[str, tuple[str, str]]  # owner id or email -> (email, name)


def _author_refs(phase: NotePhase, pulled: Pulled, checked: Checked, side: Side) -> list[str]:
    """Who wrote a side's notes of this run (owner ids, or emails where the CRM names authors so)."""
    prop = phase.mapping.owner(side)
    return [pulled.records[side][n].properties.get(prop) or "" for n in checked.records[side]]


def _authors(ctx: RunContext, side: Side, wanted: list[str]) -> _Authors:
    """A side's owners: who may author a note there, and how to name the author of one of its notes."""
    connector = ctx.connectors[side]
    owners = ctx.owner_book.owners(side, wanted)
    # Where a note's author cannot be set, every author is named in an author line instead.
    by_email = (
        {o.email.lower(): o.id for o in owners} if connector.capabilities.note_authors else {}
    )
    by_ref = {o.id: (o.email, f"{o.first_name} {o.last_name}".strip()) for o in owners}
    # Some CRMs name a note's author by email (BottleCRM's commented_by): resolve those too.
    by_ref.update({email: (email, name) for email, name in list(by_ref.values())})
    return _Authors(by_email, by_ref)


def _ledger_word(
    phase: NotePhase, pulled: Pulled, notes: dict[Side, dict[str, NoteRecord]]
) -> tuple[dict[str, Intent], frozenset[tuple[Side, str]]]:
    """What the ledger says about the unlinked notes' keys: note intents by key, and the notes it
    knows (linked before, or made by dealsync: welcome notes and the files phase's file notes)."""
    ctx, mapping = phase.ctx, phase.mapping
    linked = {side: {side_id(link, side) for link in pulled.links} for side in SIDES}
    unlinked = {side: [n for n in notes[side] if n not in linked[side]] for side in SIDES}
    keys: dict[Side, dict[str, str]] = {"partner": {}, "vendor": {}}
    for side in SIDES:
        if prop := mapping.key(side):
            for n in unlinked[side]:
                if key := (notes[side][n].record.raw.get(prop) or "").strip():
                    keys[side][n] = key
    every_key = [k for by_note in keys.values() for k in by_note.values()]
    intents = ctx.ledger.intents(ctx.pair, [NOTES], every_key)
    known = set(ctx.ledger.known_records(ctx.pair, NOTES, unlinked))
    # A file note whose files-phase create was interrupted carries that phase's key: its own.
    made_by_files = ctx.ledger.intents(ctx.pair, [FILES], every_key)
    known |= {
        (side, n)
        for side in SIDES
        for n, key in keys[side].items()
        if key in made_by_files and made_by_files[key].target_side == side
    }
    return intents, frozenset(known)


def push(phase: NotePhase, pulled: Pulled, plan: NotePlan, files: NoteFiles) -> Pushed:
    """5. Push: isolation checked at the last moment; creates (parents before replies, files
    copied), updates with their files, deletions, the copies of removed files."""
    ctx, mapping = phase.ctx, phase.mapping
    assert ctx.run_id is not None
    _guard(ctx, plan)
    mover = FileMover(ctx, files)
    creates: dict[str, Any] = {}
    made: dict[tuple[Side, str], str] = {}  # (source side, source id) -> twin id
    for wave in (
        [c for c in plan.creates if not c.reply_to_source],
        [c for c in plan.creates if c.reply_to_source],
    ):
        writes = [
            TwinWrite(
                c.key,
                c.target,
                c.source_id,
                _create_props(phase, c, mover, made),
                (("deals", c.deal_id, NOTE_TO_DEAL),),
            )
            for c in wave
        ]
        outcomes = create_twins(ctx, NOTES, mapping.key, writes)
        creates.update(outcomes)
        pairs: dict[Side, list[tuple[str, str]]] = {"partner": [], "vendor": []}
        for create in wave:
            outcome = outcomes[create.key]
            if outcome.ok and outcome.record is not None:
                made[(other(create.target), create.source_id)] = outcome.record.id
                pairs[create.target].append((outcome.record.id, create.deal_id))
        for target, associated in pairs.items():
            if associated:  # an upsert does not associate: make sure every note is on its deal
                ctx.connectors[target].associate(NOTES, "deals", associated, NOTE_TO_DEAL)
    updates = writing.write_updates(
        ctx, NOTES, ((u.target, u.record_id, _update_props(phase, u, mover)) for u in plan.updates)
    )
    deletes = writing.write_deletes(ctx, NOTES, plan.deletes)
    removed = delete_removed_files(ctx, pulled, plan, files)
    failed = writing.failures(
        NOTES,
        "note",
        "note",
        [(c, {}) for c in plan.creates if not c.welcome],
        creates,
        updates,
        deletes,
    )
    return Pushed(creates, updates, deletes, failed, mover.copied, removed)


def _guard(ctx: RunContext, plan: NotePlan) -> None:
    """Every note write must stay within this pair's links (the planner decided so already)."""
    foreign = sorted(
        {c.deal_id for c in plan.creates if c.target == "partner"}
        - partner_ids_of(ctx.ledger, ctx.pair, "deals")
    )
    if foreign:
        raise IsolationError(
            f"refusing to put notes on partner {ctx.pair}'s deals {', '.join(foreign)}: not linked to this pair"
        )
    check_partner_writes(
        ctx.ledger,
        ctx.pair,
        NOTES,
        [c.source_id for c in plan.creates if c.target == "partner" and not c.welcome],
        [u.record_id for u in plan.updates if u.target == "partner"]
        + [d.target_id for d in plan.deletes if d.source == "vendor" and d.action != "unlink"],
    )
    check_vendor_writes(
        ctx.ledger, ctx.pair, "deals", [c.deal_id for c in plan.creates if c.target == "vendor"]
    )
    check_vendor_writes(
        ctx.ledger,
        ctx.pair,
        NOTES,
        [u.record_id for u in plan.updates if u.target == "vendor" and u.link_id is not None]
        + [d.target_id for d in plan.deletes if d.source == "partner" and d.action != "unlink"],
    )


def _create_props(
    phase: NotePhase, create: NoteCreate, mover: FileMover, made: dict[tuple[Side, str], str]
) -> dict[str, str]:
    """A new note's properties, with the twin of the note it answers and its files' ids."""
    mapping = phase.mapping
    props = {k: v for k, v in create.properties.items() if k != mapping.key(create.target)}
    reply_to, attachments = mapping.reply_to(create.target), mapping.attachments(create.target)
    if create.reply_to_source and reply_to:
        parent = made.get((other(create.target), create.reply_to_source))
        if parent:
            props[reply_to] = parent
    if create.files and attachments:
        props[attachments] = ";".join(mover.ids_on(create.target, create.files))
    return props


def _update_props(phase: NotePhase, update: Any, mover: FileMover) -> dict[str, str]:
    """An update's properties, with the ids of the files the note should hold on its side."""
    props = dict(update.properties)
    attachments = phase.mapping.attachments(update.target)
    if update.files is not None and attachments:
        props[attachments] = ";".join(mover.ids_on(update.target, update.files))
    return props


@dataclass
class NotesDone:
    """What the notes phase recorded, with its files' figures."""

    recorded: Recorded
    files_copied: int = 0
    files_deleted: int = 0


def commit(
    phase: NotePhase,
    pulled: Pulled,
    checked: Checked,
    plan: NotePlan,
    pushed: Pushed,
    files: NoteFiles,
) -> NotesDone:
    """6. Commit: what the CRMs confirmed; an event per new shared note; welcome notes recorded as
    dealsync's own; files that read well again leave quarantine."""
    ctx = phase.ctx

    def rows(create: Any, twin_id: str) -> list[dict[str, Any]]:
        field_name = "welcome_note" if create.welcome else "note"
        return [audit_row(None, create.target, twin_id, "create", field_name, None, create.key)]

    def event(create: Any, twin_id: str) -> str | None:
        if create.welcome:
            return None
        return (
            f"New shared note from the {other(create.target)} on shared deal {create.deal_id} "
            f"({create.target} CRM)"
        )

    recorded = recording.record(
        ctx,
        NOTES,
        "note",
        pulled,
        checked,
        plan,
        pushed,
        CreateRecording(links=lambda c: not c.welcome, rows=rows, event=event),  # type: ignore[attr-defined]
        extra_quarantine=files.quarantined,
        found=plan.found,
        conflict_prefix="note.",
        delete_field="note",
    )
    bad = {(q.side, q.record_id) for q in recorded.quarantined}
    for side in SIDES:
        healthy = [f for f in files.files[side] if (side, f) not in bad]
        recorded.resolved += ctx.ledger.resolve_quarantine(ctx.pair, side, healthy, FILES)
    return NotesDone(recorded, pushed.files_copied, pushed.files_deleted)
