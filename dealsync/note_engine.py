"""The notes phase of a run: shared notes, comments and their files on the pair's shared deals."""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Collection
from dataclasses import replace
from typing import Any

import pandas as pd

from connectors.base import Record, WriteInput, WriteOutcome, content_hash
from connectors.errors import ConnectorError
from connectors.hubspot_settings import NOTE_TO_DEAL
from dealsync.claims import Intent
from dealsync.context import RunContext
from dealsync.deal_files import FILES, stream_to, sync_deal_files, too_big
from dealsync.field_times import newest_field_times
from dealsync.isolation import (
    IsolationError,
    check_partner_writes,
    check_vendor_writes,
    partner_ids_of,
)
from dealsync.ledger.repo import RunCommit
from dealsync.mapping import FieldErrors
from dealsync.merge_reads import Merging
from dealsync.model import SIDES, Link, Side, other
from dealsync.note_plan import (
    NoteCreate,
    NotePlan,
    NotePlanInput,
    NoteRecord,
    adopt_interrupted_creates,
    make_note_plan,
)
from dealsync.note_types import NotesOutcome, NotesPulled, StashedFile
from dealsync.outcomes import (
    Quarantined,
    audit_row,
    conflict_rows,
    record_quarantine,
    refused_links,
    skipped,
)
from dealsync.plan import parse_key
from dealsync.record_schemas import raw_schema
from dealsync.snapshots import Seen, observe
from dealsync.twins import TwinWrite, create_twins, refused_creates
from validation.quarantine import SchemaLevelError, split_valid

NOTES = "notes"


# ---- pull ---------------------------------------------------------------------------------
def _deal_twins(links: list[Link]) -> dict[Side, dict[str, str]]:
    return {
        "partner": {link.partner_id: link.vendor_id for link in links},
        "vendor": {link.vendor_id: link.partner_id for link in links},
    }


def _may_cross(
    ctx: RunContext,
    side: Side,
    record: Record,
    deals: tuple[str, ...],
    twins,
    linked: set[str],
    own: Collection[str] = (),
) -> bool:
    """Visibility: linked notes, this pair's twins, and notes on shared deals that are not private."""
    mapping = ctx.notes_mapping
    if record.id in linked:
        return True
    if record.id in own:
        return False  # a welcome note dealsync wrote where notes hold no key: it never crosses back
    key = (record.properties.get(mapping.key(side)) or "").strip() if mapping.key(side) else ""
    on_shared_deal = any(d in twins[side] for d in deals)
    if key:  # a claim: the planner judges it by the ledger's word
        return on_shared_deal or parse_key(ctx.pair, key) is not None
    if not on_shared_deal:
        return False
    share = mapping.share(side)
    flag = (record.properties.get(share.property) or "").strip().lower()
    if flag:
        return share.matches(record.properties, ctx.pair)
    reply_to = mapping.reply_to(side)
    return bool(reply_to and (record.properties.get(reply_to) or "").strip())


def _scan_notes(
    ctx: RunContext, side: Side, twins, pulled_hashes: dict[Side, dict[str, Seen]]
) -> dict[str, Record]:
    """A snapshot CRM: every note on the pair's shared deals; the ones changed since the last scan
    (stamped with when a scan first saw their content)."""
    connector = ctx.connectors[side]
    by_deal = connector.associations("deals", NOTES, list(twins[side]))
    scan = connector.read(
        NOTES, [n for ids in by_deal.values() for n in ids], ctx.notes_mapping.properties(side)
    )
    previous = ctx.ledger.snapshot(ctx.pair, side, NOTES)
    scan_ms = int(time.time() * 1000)
    observed = {note_id: observe(r, previous, scan_ms) for note_id, r in scan.items()}
    pulled_hashes[side] = {note_id: o.seen for note_id, o in observed.items()}
    return {note_id: o.record for note_id, o in observed.items() if ctx.full_resync or o.changed}


def pull_notes(ctx: RunContext, new_deal_links: list[Link]) -> NotesPulled:
    """Changed notes since the cursors, the notes of newly shared deals, quarantined and linked ones."""
    mapping = ctx.notes_mapping
    deal_links = ctx.ledger.active_links(ctx.pair)
    twins = _deal_twins(deal_links)
    records: dict[Side, dict[str, Record]] = {"partner": {}, "vendor": {}}
    deals: dict[Side, dict[str, tuple[str, ...]]] = {"partner": {}, "vendor": {}}
    cursors: dict[Side, int | None] = {}
    links: dict[int, Link] = {}
    hashes: dict[Side, dict[str, Seen]] = {}
    merging = Merging(ctx, NOTES, mapping.properties)
    for side in SIDES:
        connector = ctx.connectors[side]
        candidates: dict[str, Record] = {}
        if connector.capabilities.change_detection == "snapshot":
            cursors[side] = None
            candidates = _scan_notes(ctx, side, twins, hashes)
        else:
            since = None if ctx.full_resync else ctx.ledger.cursor(ctx.pair, side, NOTES)
            cursors[side] = since
            for page in connector.pull_changes(NOTES, since, mapping.properties(side)):
                merging.saw(side, page.records)
                candidates.update({r.id: r for r in page.records})
                cursors[side] = page.cursor
        # Notes that were already on a deal when it became shared are not "changed": read them too.
        new_deals = [
            link.partner_id if side == "partner" else link.vendor_id for link in new_deal_links
        ]
        on_new = [
            n for ids in connector.associations("deals", NOTES, new_deals).values() for n in ids
        ]
        retry = [
            e.record_id
            for e in ctx.ledger.open_quarantine(ctx.pair, side)
            if e.object_type == NOTES
        ]
        extra = [n for n in {*on_new, *retry} if n not in candidates]
        if extra:
            candidates.update({r.id: r for r in merging.read(side, extra).values()})
        note_deals = connector.associations(NOTES, "deals", list(candidates))
        side_links = ctx.ledger.links_for(ctx.pair, side, candidates, NOTES)
        links.update({link.id: link for link in side_links})
        linked = {link.partner_id if side == "partner" else link.vendor_id for link in side_links}
        own = ctx.ledger.welcome_notes(ctx.pair, side) if not mapping.key(side) else set()
        for note_id, record in candidates.items():
            if _may_cross(ctx, side, record, note_deals.get(note_id, ()), twins, linked, own):
                records[side][note_id] = record
                deals[side][note_id] = note_deals.get(note_id, ())
    merging.follow(records, links)
    gone = _note_counterparts(ctx, records, deals, links, hashes, merging)
    gone |= _made_private(ctx, records, links.values())
    return NotesPulled(
        records,
        deals,
        list(links.values()),
        gone,
        cursors,
        twins,
        snapshots=hashes,
        merges=merging.merges,
    )


def _made_private(
    ctx: RunContext, records: dict[Side, dict[str, Record]], links
) -> set[tuple[Side, str]]:
    """Linked notes now marked private: for the other side they are gone (the deletion policy
    applies), so nothing written after the change ever crosses."""
    private: set[tuple[Side, str]] = set()
    for link in links:
        for side, note_id in (("partner", link.partner_id), ("vendor", link.vendor_id)):
            record = records[side].get(note_id)
            rule = ctx.notes_mapping.share(side)
            flag = (record.properties.get(rule.property) or "").strip() if record else ""
            if flag and not rule.matches(record.properties, ctx.pair):
                private.add((side, note_id))
    return private


def _note_counterparts(
    ctx: RunContext,
    records,
    deals,
    links: dict[int, Link],
    scanned: dict[Side, dict[str, Seen]],
    merging: Merging,
) -> set[tuple[Side, str]]:
    """Read the other note of every touched link, find deleted ones, follow merged ones."""
    gone: set[tuple[Side, str]] = set()
    _read_note_counterparts(ctx, records, deals, links, merging, gone)
    all_links = merging.unfollowed(ctx.ledger.active_links(ctx.pair, NOTES))
    for side in SIDES:
        ids = [_id_on(lk, side) for lk in all_links]
        gone.update((side, i) for i in merging.deleted(side, ids, scanned.get(side)))
    merging.follow(records, links)
    for side in SIDES:
        for link in all_links:
            if (side, _id_on(link, side)) in gone:
                links.setdefault(link.id, link)  # type: ignore[arg-type]
    _read_note_counterparts(ctx, records, deals, links, merging, gone)
    return gone


def _read_note_counterparts(
    ctx: RunContext, records, deals, links: dict[int, Link], merging: Merging, gone: set
) -> None:
    """Read the notes of touched links the run has not read yet, with their deals."""
    for side in SIDES:
        wanted = [
            _id_on(lk, side)
            for lk in links.values()
            if _id_on(lk, side) not in records[side] and (side, _id_on(lk, side)) not in gone
        ]
        if wanted:
            found = merging.read(side, wanted)
            records[side].update({n: r for n, r in found.items() if r.id == n})
            gone.update((side, note_id) for note_id in wanted if note_id not in found)
    merging.follow(records, links)
    for side in SIDES:
        missing = [n for n in records[side] if n not in deals[side]]
        if missing:
            deals[side].update(ctx.connectors[side].associations(NOTES, "deals", missing))


# ---- files --------------------------------------------------------------------------------
def attachment_ids(ctx: RunContext, record: Record, side: Side) -> list[str]:
    """The file ids a note lists (none where files belong to the deal)."""
    prop = ctx.notes_mapping.attachments(side)
    raw = (record.properties.get(prop) or "") if prop else ""
    return [part.strip() for part in raw.split(";") if part.strip()]


def files_on_notes(ctx: RunContext) -> bool:
    """Whether this run syncs files as part of notes (both CRMs keep files on notes)."""
    mapping = ctx.notes_mapping
    return "files" in ctx.objects and all(mapping.attachments(side) for side in SIDES)


def read_files(ctx: RunContext, pulled: NotesPulled, folder: str) -> None:
    """Know the sha256 of every attached file: from the ledger, or by streaming it once to `folder`."""
    if not files_on_notes(ctx):
        return
    for side in SIDES:
        ids = {
            fid
            for record in pulled.records[side].values()
            for fid in attachment_ids(ctx, record, side)
        }
        known = ctx.ledger.files_by_ids(ctx.pair, side, ids)
        connector = ctx.connectors[side]
        # A file deleted in the CRM while a note still lists it counts as removed from that note.
        pulled.files[side] = {
            fid: row.sha256 for fid, row in known.items() if connector.file_info(fid) is not None
        }
        for file_id in sorted(ids - set(known)):
            try:
                info = connector.file_info(file_id)
                if info is None:
                    continue  # deleted: it counts as removed from the note
                if info.size > ctx.config.max_file_bytes:
                    pulled.quarantined.append(too_big(ctx, side, file_id, info.name, info.size))
                    continue
                path = os.path.join(folder, f"{side}-{file_id}")
                sha, size = stream_to(path, connector.download_file(file_id))
            except ConnectorError as exc:
                pulled.quarantined.append(
                    Quarantined(
                        side,
                        file_id,
                        "files",
                        [f"file could not be downloaded: {exc}"],
                        {},
                        exc.retriable,
                        "files",
                    )
                )
                continue
            pulled.files[side][file_id] = sha
            pulled.stash.setdefault(sha, StashedFile(side, file_id, info.name, size, path))


# ---- validate and plan --------------------------------------------------------------------
def plan_notes(ctx: RunContext, pulled: NotesPulled) -> tuple[NotePlan, list[Quarantined]]:
    """Validate notes (raw schema, canonical mapping), then plan with owners and deal links."""
    mapping = ctx.notes_mapping
    quarantined: list[Quarantined] = list(pulled.quarantined)
    notes: dict[Side, dict[str, NoteRecord]] = {"partner": {}, "vendor": {}}
    owners_by_email: dict[Side, dict[str, str]] = {}
    owners_by_id: dict[Side, dict[str, tuple[str, str]]] = {}
    for side in SIDES:
        connector = ctx.connectors[side]
        owners = [o for o in connector.owners() if not o.archived]
        # Where a note's author cannot be set, every author is named in an author line instead.
        owners_by_email[side] = (
            {o.email.lower(): o.id for o in owners} if connector.capabilities.note_authors else {}
        )
        owners_by_id[side] = {
            o.id: (o.email, f"{o.first_name} {o.last_name}".strip()) for o in owners
        }
        # Some CRMs name a note's author by email (BottleCRM's commented_by): resolve those too.
        owners_by_id[side].update(
            {email: (email, name) for email, name in owners_by_id[side].values()}
        )
        raw = pulled.records[side]
        if not raw:
            continue
        frame = pd.DataFrame([{"id": r.id, **r.properties} for r in raw.values()])
        schema = raw_schema(connector.kind, mapping, side, NOTES)
        try:
            good, bad = split_valid(frame, schema, "id")
        except SchemaLevelError as exc:
            raise SchemaLevelError(
                f"the {side} CRM's notes do not fit {mapping.path}: {exc}; run `dealsync init`."
            ) from exc
        quarantined += [
            Quarantined(side, rid, "validate", reasons, dict(raw[rid].properties), False, NOTES)
            for rid, reasons in bad.items()
        ]
        for note_id in good["id"]:
            record = raw[str(note_id)]
            try:
                side_record = mapping.side_record(
                    side, record.id, record.properties, record.modified_ms
                )
            except FieldErrors as exc:
                quarantined.append(
                    Quarantined(
                        side,
                        record.id,
                        "validate",
                        exc.errors,
                        dict(record.properties),
                        False,
                        NOTES,
                    )
                )
                continue
            author_ref = record.properties.get(mapping.owner(side)) or ""
            author = owners_by_id[side].get(author_ref) or (
                (author_ref, "") if "@" in author_ref else None
            )
            files = tuple(
                sorted(
                    {
                        pulled.files[side][f]
                        for f in attachment_ids(ctx, record, side)
                        if f in pulled.files.get(side, {})
                    }
                )
            )
            notes[side][record.id] = NoteRecord(
                side_record,
                pulled.deals[side].get(record.id, ()),
                files,
                author[0] if author else None,
                author[1] if author else "",
            )
    intents, known = _ledger_word(ctx, pulled, notes)
    inp = NotePlanInput(
        pair=ctx.pair,
        mapping=mapping,
        links=tuple(pulled.links),
        notes=notes,
        deal_twins=pulled.deal_twins,
        owners=owners_by_email,
        gone=frozenset(pulled.gone),
        welcome=tuple(pulled.welcome),
        sync_files=files_on_notes(ctx),
        intents=intents,
        known=known,
    )
    plan = make_note_plan(inp)
    if times := newest_field_times(ctx, NOTES, plan.conflicts, inp.links, mapping.fields):
        timed = {
            side: {
                n: replace(note, record=replace(note.record, field_ms=times.get((side, n), {})))
                for n, note in by_id.items()
            }
            for side, by_id in notes.items()
        }
        plan = make_note_plan(replace(inp, notes=timed))  # decided again, field by field
    keyless = [c.key for c in plan.creates if not mapping.key(c.target)]
    interrupted = ctx.ledger.earlier_intents(ctx.pair, NOTES, keyless, ctx.run_id or -1)
    adopt_interrupted_creates(plan, mapping, notes, interrupted, pulled.links)
    return plan, quarantined


def _ledger_word(
    ctx: RunContext, pulled: NotesPulled, notes: dict[Side, dict[str, NoteRecord]]
) -> tuple[dict[str, Intent], frozenset[tuple[Side, str]]]:
    """What the ledger says about the unlinked notes' keys: note intents by key, and the notes it
    knows (linked before, or made by dealsync: welcome notes and the files phase's file notes)."""
    mapping = ctx.notes_mapping
    linked = {side: {_id_on(link, side) for link in pulled.links} for side in SIDES}
    unlinked = {side: [n for n in notes[side] if n not in linked[side]] for side in SIDES}
    keys = {
        side: {
            n: key
            for n in unlinked[side]
            if mapping.key(side)
            and (key := (notes[side][n].record.raw.get(mapping.key(side)) or "").strip())
        }
        for side in SIDES
    }
    every_key = [k for by_note in keys.values() for k in by_note.values()]
    intents = ctx.ledger.intents(ctx.pair, [NOTES], every_key)
    known = ctx.ledger.known_records(ctx.pair, NOTES, unlinked)
    # A file note whose files-phase create was interrupted carries that phase's key: its own.
    made_by_files = ctx.ledger.intents(ctx.pair, [FILES], every_key)
    known |= {
        (side, n)
        for side in SIDES
        for n, key in keys[side].items()
        if key in made_by_files and made_by_files[key].target_side == side
    }
    return intents, frozenset(known)  # type: ignore[arg-type]


def _id_on(link: Link, side: Side) -> str:
    return link.partner_id if side == "partner" else link.vendor_id


# ---- push ---------------------------------------------------------------------------------
class FileMover:
    """Puts the same bytes on a side, uploading at most once per pair and side."""

    def __init__(self, ctx: RunContext, pulled: NotesPulled) -> None:
        self.ctx, self.pulled = ctx, pulled
        self.copied = 0

    def ids_on(self, side: Side, shas: tuple[str, ...]) -> list[str]:
        """File ids on `side` holding these contents, uploading copies where missing."""
        have = {sha: fid for fid, sha in self.pulled.files[side].items()}
        ids = []
        for sha in shas:
            if sha in have:
                ids.append(have[sha])
                continue
            row = self.ctx.ledger.file_by_sha(self.ctx.pair, sha)
            existing = (
                (row.partner_file_id if side == "partner" else row.vendor_file_id) if row else None
            )
            if existing:
                ids.append(existing)
                continue
            stash = self.pulled.stash.get(sha)
            if stash is None:
                continue  # never read this run and unknown: nothing to copy from
            with open(stash.path, "rb") as handle:
                info = self.ctx.connectors[side].upload_file(
                    stash.name, handle, f"/dealsync/{self.ctx.pair}"
                )
            self.ctx.ledger.save_file(
                self.ctx.pair, sha, stash.size, stash.name, stash.side, stash.file_id
            )
            self.ctx.ledger.save_file(self.ctx.pair, sha, stash.size, stash.name, side, info.id)
            self.pulled.files[side][info.id] = sha
            self.copied += 1
            ids.append(info.id)
        return ids


def push_notes(ctx: RunContext, pulled: NotesPulled, plan: NotePlan) -> NotesOutcome:
    """Creates (parents before replies), updates with files, deletions, removed files."""
    mapping = ctx.notes_mapping
    assert ctx.run_id is not None
    partner_deals = partner_ids_of(ctx.ledger, ctx.pair, "deals")
    foreign_deals = sorted(
        {c.deal_id for c in plan.creates if c.target == "partner"} - partner_deals
    )
    if foreign_deals:
        raise IsolationError(
            f"refusing to put notes on partner {ctx.pair}'s deals {', '.join(foreign_deals)}: not linked to this pair"
        )
    check_partner_writes(
        ctx.ledger,
        ctx.pair,
        NOTES,
        [
            c.source_id
            for c in plan.creates
            if c.target == "partner" and not c.source_id.startswith("welcome-")
        ],
        [u.note_id for u in plan.updates if u.target == "partner"]
        + [d.target_id for d in plan.deletes if d.source == "vendor" and d.action != "unlink"],
    )
    check_vendor_writes(
        ctx.ledger,
        ctx.pair,
        "deals",
        [c.deal_id for c in plan.creates if c.target == "vendor"],
    )
    check_vendor_writes(
        ctx.ledger,
        ctx.pair,
        NOTES,
        [u.note_id for u in plan.updates if u.target == "vendor" and u.link_id is not None]
        + [d.target_id for d in plan.deletes if d.source == "partner" and d.action != "unlink"],
    )
    mover = FileMover(ctx, pulled)
    creates: dict[str, WriteOutcome] = {}
    new_twin: dict[tuple[Side, str], str] = {}  # (source side, source id) -> twin id
    waves = [
        [c for c in plan.creates if not c.reply_to_source],
        [c for c in plan.creates if c.reply_to_source],
    ]
    for wave in waves:
        for target in SIDES:
            batch = [c for c in wave if c.target == target]
            if not batch:
                continue
            # Where notes hold no key, an interrupted run's creates were adopted while planning.
            ready = [
                TwinWrite(
                    c.key,
                    c.target,
                    c.source_id,
                    _create_props(ctx, c, mover, new_twin),
                    (("deals", c.deal_id, NOTE_TO_DEAL),),
                )
                for c in batch
            ]
            made = create_twins(ctx, NOTES, mapping.key, ready)
            pairs = []
            for create in batch:
                outcome = made[create.key]
                creates[create.key] = outcome
                if outcome.ok and outcome.record is not None:
                    new_twin[(other(target), create.source_id)] = outcome.record.id
                    pairs.append((outcome.record.id, create.deal_id))
            if pairs:
                ctx.connectors[target].associate(NOTES, "deals", pairs, NOTE_TO_DEAL)
    updates: dict[tuple[Side, str], WriteOutcome] = {}
    for target in SIDES:
        inputs = []
        for update in (u for u in plan.updates if u.target == target):
            props = dict(update.properties)
            attachments = mapping.attachments(target)
            if update.files is not None and attachments:
                props[attachments] = ";".join(mover.ids_on(target, update.files))
            inputs.append(WriteInput(update.note_id, props, id=update.note_id))
        if inputs:
            for outcome in ctx.connectors[target].update(NOTES, inputs):
                updates[(target, outcome.ref)] = outcome
    deletes: dict[tuple[Side, str], WriteOutcome] = {}
    for source in SIDES:
        ids = [d.target_id for d in plan.deletes if d.source == source and d.action == "archive"]
        if ids:
            for outcome in ctx.connectors[other(source)].archive(NOTES, ids):
                deletes[(other(source), outcome.ref)] = outcome
    deleted_files = _delete_removed_files(ctx, pulled, plan)
    failures = [
        Quarantined(
            other(c.target),
            c.source_id,
            "push",
            [f"creating the {c.target} note failed: {creates[c.key].error}"],
            {},
            True,
            NOTES,
        )
        for c in plan.creates
        if not creates[c.key].ok and not c.source_id.startswith("welcome-")
    ]
    failures += [
        Quarantined(
            side, rid, "push", [f"updating {side} note {rid} failed: {o.error}"], {}, True, NOTES
        )
        for (side, rid), o in {**updates, **deletes}.items()
        if not o.ok
    ]
    return NotesOutcome(creates, updates, deletes, failures, mover.copied, deleted_files)


def _create_props(
    ctx: RunContext, create: NoteCreate, mover: FileMover, new_twin: dict
) -> dict[str, str]:
    mapping = ctx.notes_mapping
    props = {k: v for k, v in create.properties.items() if k != mapping.key(create.target)}
    reply_to, attachments = mapping.reply_to(create.target), mapping.attachments(create.target)
    if create.reply_to_source and reply_to:
        parent = new_twin.get((other(create.target), create.reply_to_source))
        if parent:
            props[reply_to] = parent
    if create.files and attachments:
        props[attachments] = ";".join(mover.ids_on(create.target, create.files))
    return props


def _delete_removed_files(ctx: RunContext, pulled: NotesPulled, plan: NotePlan) -> int:
    """Delete the copies of files removed from shared notes (unless another note still lists them)."""
    deleted = 0
    for side, sha in dict.fromkeys(plan.removed_files):
        still_used = any(
            sha in {pulled.files[side].get(f) for f in attachment_ids(ctx, r, side)}
            for r in pulled.records[side].values()
            if not any(u.note_id == r.id and u.target == side for u in plan.updates)
        )
        if still_used:
            continue
        for file_id, file_sha in list(pulled.files[side].items()):
            if file_sha == sha:
                ctx.connectors[side].delete_file(file_id)
                ctx.ledger.save_file(ctx.pair, sha, 0, "", side, None)
                deleted += 1
    return deleted


# ---- commit -------------------------------------------------------------------------------
def commit_notes(
    ctx: RunContext,
    pulled: NotesPulled,
    plan: NotePlan,
    outcome: NotesOutcome,
    quarantined: list[Quarantined],
) -> dict[str, Any]:
    """Record note links, bases, audit and cursors; quarantine what failed; return counts."""
    assert ctx.run_id is not None
    new_links, changes, events = [], [], []
    intents: dict[str, str] = dict(plan.found)
    for create in plan.creates:
        result = outcome.creates[create.key]
        if not result.ok or result.record is None:
            continue
        intents[create.key] = result.record.id
        if create.source_id.startswith("welcome-"):
            changes.append(
                audit_row(
                    None,
                    create.target,
                    result.record.id,
                    "create",
                    "welcome_note",
                    None,
                    create.key,
                )
            )
            continue
        source = other(create.target)
        events.append(
            f"New shared note from the {source} on shared deal {create.deal_id} ({create.target} CRM)"
        )
        partner_id, vendor_id = (
            (create.source_id, result.record.id)
            if source == "partner"
            else (result.record.id, create.source_id)
        )
        new_links.append(Link(None, partner_id, vendor_id, source, create.base))
        changes.append(
            audit_row(None, create.target, result.record.id, "create", "note", None, create.key)
        )
    new_links += [Link(None, a.partner_id, a.vendor_id, a.origin, a.base) for a in plan.adopts]
    failed: set[int] = set()
    for update in plan.updates:
        result = outcome.updates.get((update.target, update.note_id))
        if result is None or not result.ok:
            if update.link_id is not None:
                failed.add(update.link_id)
            continue
        changes += [
            audit_row(update.link_id, update.target, update.note_id, "update", name, None, None)
            for name in update.changed
        ]
    states = {}
    for delete in plan.deletes:
        result = outcome.deletes.get((other(delete.source), delete.target_id))
        if delete.action == "unlink" or (result is not None and result.ok):
            if delete.link_id is not None:
                states[delete.link_id] = "unlinked" if delete.action == "unlink" else "archived"
            if delete.action != "unlink":
                changes.append(
                    audit_row(
                        delete.link_id,
                        other(delete.source),
                        delete.target_id,
                        "archive",
                        "note",
                        None,
                        None,
                    )
                )
    bases = {lid: base for lid, base in plan.new_bases.items() if lid not in failed}
    conflicts = conflict_rows(plan.conflicts, prefix="note.")
    cursors = {(side, NOTES): value for side, value in pulled.cursors.items() if value is not None}
    refused = ctx.ledger.commit_run(
        ctx.run_id,
        ctx.pair,
        RunCommit(
            new_links,
            bases,
            states,
            changes,
            conflicts,
            cursors,
            intents,
            None,
            NOTES,
            refused_creates(plan.creates, outcome.creates),
            relinks={m.link.id: (m.side, m.new_id) for m in pulled.merges if m.follows},  # type: ignore[misc]
            merged_away=[m.link.id for m in pulled.merges if not m.follows],  # type: ignore[misc]
        ),
    )
    _save_note_snapshots(ctx, pulled, plan, outcome)
    everything = (
        quarantined
        + outcome.failures
        + skipped(plan.skips, NOTES)
        + refused_links(refused, "note", NOTES)
    )
    record_quarantine(ctx, everything)
    bad = {(q.side, q.record_id) for q in everything}
    resolved = 0
    for side in SIDES:
        resolved += ctx.ledger.resolve_quarantine(
            ctx.pair, side, [r for r in pulled.records[side] if (side, r) not in bad], NOTES
        )
        good_files = [f for f in pulled.files.get(side, {}) if (side, f) not in bad]
        resolved += ctx.ledger.resolve_quarantine(ctx.pair, side, good_files, "files")
    counts: dict[str, Any] = defaultdict(int)
    for create in plan.creates:
        if outcome.creates[create.key].ok:
            counts[f"{create.target} notes created"] += 1
    for (side, _rid), result in outcome.updates.items():
        counts[f"{side} notes updated"] += int(result.ok)
    for (side, _rid), result in outcome.deletes.items():
        counts[f"{side} notes deleted"] += int(result.ok)
    counts["files copied"] = outcome.files_copied
    counts["files deleted"] = outcome.files_deleted
    counts["events"] = events
    counts["messages"] = [m.message("note") for m in pulled.merges]
    counts["quarantined"] = len(everything)
    counts["resolved"] = resolved
    counts["conflicts"] = len(conflicts)
    counts["quarantine"] = [q.row() for q in everything]
    return dict(counts)


def _save_note_snapshots(
    ctx: RunContext, pulled: NotesPulled, plan: NotePlan, outcome: NotesOutcome
) -> None:
    """Keep the scanned hashes, with the notes this run wrote as the CRM returned them."""
    written = [(c.target, outcome.creates[c.key]) for c in plan.creates]
    written += [(side, result) for (side, _), result in outcome.updates.items()]
    now_ms = int(time.time() * 1000)
    for side, hashes in pulled.snapshots.items():
        for target, result in written:
            if target == side and result.ok and result.record is not None:
                hashes[result.record.id] = Seen(content_hash(result.record), now_ms)
        for (target, note_id), result in outcome.deletes.items():
            if target == side and result.ok:
                hashes.pop(note_id, None)
        ctx.ledger.save_snapshot(ctx.pair, side, hashes, NOTES)


def run_notes(
    ctx: RunContext, new_deal_links: list[Link], welcome: list[tuple[str, str, str, str]], call=None
) -> dict[str, Any]:
    """The whole notes phase (a dry run plans and reports only)."""
    invoke = call or (lambda step, *args: step(*args))
    with tempfile.TemporaryDirectory(prefix="dealsync-files-") as folder:
        pulled = invoke(pull_notes, ctx, new_deal_links)
        pulled.welcome = welcome
        invoke(read_files, ctx, pulled, folder)
        plan, quarantined = invoke(plan_notes, ctx, pulled)
        if ctx.dry_run:
            report = {
                "partner notes created": sum(1 for c in plan.creates if c.target == "partner"),
                "vendor notes created": sum(1 for c in plan.creates if c.target == "vendor"),
                "notes updated": len(plan.updates),
                "notes deleted": len(plan.deletes),
                "quarantined": len(quarantined),
                "plan": plan,
            }
        else:
            outcome = invoke(push_notes, ctx, pulled, plan)
            report = invoke(commit_notes, ctx, pulled, plan, outcome, quarantined)
        if "files" in ctx.objects and ctx.notes_mapping.attachments("partner") is None:
            _add_up(report, invoke(sync_deal_files, ctx, pulled, folder))
        return report


def _add_up(report: dict[str, Any], more: dict[str, Any]) -> None:
    """Fold the files-on-deals phase's figures into the notes report."""
    for name, value in more.items():
        if isinstance(value, list):
            report[name] = [*report.get(name, []), *value]
        elif isinstance(value, str):
            report[name] = "; ".join(v for v in (report.get(name), value) if v)
        else:
            report[name] = report.get(name, 0) + value
    report["quarantined"] = report.get("quarantined", 0) + len(more.get("quarantine", []))
