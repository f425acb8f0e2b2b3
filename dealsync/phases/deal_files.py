"""Files of shared deals where the partner CRM keeps files on the deal (BottleCRM attachments).

A partner attachment crosses as a shared note on the vendor's twin deal carrying the same bytes; a file
on a vendor shared note crosses as an attachment of the partner deal. Deleting either deletes the other
(the notes mapping's deletion policy and brake apply). The ledger's `deal_files` rows are the base.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.base import FileInfo, WriteInput, file_changes, files_on_deals, files_on_notes
from connectors.errors import ConnectorError
from connectors.hubspot_settings import NOTE_TO_DEAL
from dealsync.context import RunContext
from dealsync.deal_file_plan import (
    DealFilePlan,
    PartnerFile,
    VendorFile,
    attachment_key,
    file_note_key,
    plan_deal_files,
)
from dealsync.isolation import check_vendor_writes
from dealsync.ledger.models import DealFileRow
from dealsync.ledger.repo import RunCommit
from dealsync.model import Side
from dealsync.note_text import text_to_html
from dealsync.outcomes import Quarantined, audit_row, record_quarantine
from dealsync.pipeline.reading import Pulled
from dealsync.twins import TwinWrite, create_twins

NOTES = "notes"
FILES = "files"


# ---- the I/O around the plan --------------------------------------------------------------
@dataclass
class DealFilesRun:
    """What the phase did, for the report."""

    copied: int = 0
    deleted: int = 0
    events: list[str] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    intents_done: dict[str, str] = field(default_factory=dict)
    good: dict[Side, list[str]] = field(default_factory=lambda: {"partner": [], "vendor": []})
    adopted: set[str] = field(default_factory=set)  # attachments found already there


def _attachments(ctx: RunContext, record_props: Mapping[str, str | None]) -> tuple[str, ...]:
    raw = record_props.get(ctx.notes.attachments("vendor") or "") or ""
    return tuple(part.strip() for part in raw.split(";") if part.strip())


def gather_and_plan(
    ctx: RunContext, pulled: Pulled
) -> tuple[DealFilePlan, list[DealFileRow], dict[str, tuple[str, ...]]]:
    """Read both sides' current files of the pair's shared deals and plan."""
    links = {
        link.id: (link.partner_id, link.vendor_id)
        for link in ctx.ledger.active_links(ctx.pair)
        if link.id is not None
    }
    tracked = ctx.ledger.deal_files(ctx.pair)
    partner_now = _partner_files(ctx, links, tracked)
    candidates = [
        (note_id, deals[0]) for note_id, deals in pulled.parents["vendor"].items() if deals
    ]
    notes = {nid: r.properties for nid, r in pulled.records["vendor"].items()}
    unread = sorted({row.vendor_note_id for row in tracked} - set(notes))
    if unread:
        prop = ctx.notes.attachments("vendor")
        found = ctx.connectors["vendor"].read(NOTES, unread, [prop] if prop else [])
        notes.update({nid: r.properties for nid, r in found.items()})
    vendor_notes = {nid: _attachments(ctx, props) for nid, props in notes.items()}
    plan = plan_deal_files(
        tracked,
        links,
        partner_now,
        vendor_notes,
        candidates,
        ctx.notes,
        ctx.allow_mass_deletion,
    )
    return plan, tracked, vendor_notes


def _partner_files(
    ctx: RunContext, links: Mapping[int, tuple[str, str]], tracked: list[DealFileRow]
) -> dict[str, tuple[FileInfo, ...]]:
    """The partner deals' files: read for every deal, or only for those whose files changed since
    the last run where the CRM can tell (the others keep the files the ledger tracks)."""
    partner = ctx.connectors["partner"]
    deals = [partner_deal for partner_deal, _ in links.values()]
    since = None if ctx.full_resync else ctx.ledger.cursor(ctx.pair, "partner", FILES)
    tracker = file_changes(partner)
    changed = None
    if tracker is not None and since is not None:
        known = {
            r.partner_file_id: links[r.deal_link_id][0] for r in tracked if r.deal_link_id in links
        }
        changed = tracker.deals_with_changed_files(since, known)
        if changed is not None:  # deals shared since: their files were never read
            fresh = ctx.ledger.linked_since(ctx.pair, since)
            changed |= {deal for link_id, (deal, _) in links.items() if link_id in fresh}
    if changed is None:
        return files_on_deals(partner).deal_attachments(deals)
    now = files_on_deals(partner).deal_attachments([d for d in deals if d in changed])
    for row in tracked:
        deal = links[row.deal_link_id][0] if row.deal_link_id in links else None
        if deal is not None and deal not in changed:
            now[deal] = (*now.get(deal, ()), FileInfo(row.partner_file_id, row.name, 0))
    return now


def stream_to(path: str, chunks: Iterator[bytes]) -> tuple[str, int]:
    """Write a download to `path` as it streams; (sha256, size)."""
    digest, size = hashlib.sha256(), 0
    with open(path, "wb") as out:
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def too_big(ctx: RunContext, side: Side, file_id: str, name: str, size: int) -> Quarantined:
    """The quarantine entry of a file over the configured size limit."""
    limit = ctx.config.max_file_bytes
    return Quarantined(
        side,
        file_id,
        FILES,
        [
            f"file {name!r} is {size:,} bytes, over the {limit:,}-byte limit (files.max_bytes); it is not copied"
        ],
        {"name": name, "size": size},
        False,
        FILES,
    )


def copy_to_vendor(ctx: RunContext, item: PartnerFile, folder: str, run: DealFilesRun) -> None:
    """A partner attachment -> a shared vendor note on the twin deal carrying the same bytes."""
    partner, vendor, mapping = (
        ctx.connectors["partner"],
        ctx.connectors["vendor"],
        ctx.notes,
    )
    path = os.path.join(folder, f"partner-{item.file.id}")
    sha, size = stream_to(path, partner.download_file(item.file.id))
    if size > ctx.config.max_file_bytes:
        run.quarantined.append(too_big(ctx, "partner", item.file.id, item.file.name, size))
        return
    with open(path, "rb") as handle:
        uploaded = files_on_notes(vendor).upload_file(
            item.file.name, handle, f"/dealsync/{ctx.pair}"
        )
    body = next(r for r in mapping.fields if r.name == "body").prop("vendor") or ""
    stamp = next(r for r in mapping.fields if r.name == "timestamp").prop("vendor") or ""
    share = mapping.share("vendor")
    key = file_note_key(ctx.pair, item.file.id)
    props = {
        body: text_to_html(f"📎 {item.file.name} (attached to the deal in the partner's CRM)"),
        stamp: str(int(time.time() * 1000)),
        share.property: share.equals or "true",
        mapping.attachments("vendor") or "": uploaded.id,
    }
    write = TwinWrite(
        key, "vendor", item.file.id, props, (("deals", item.vendor_deal, NOTE_TO_DEAL),)
    )
    outcome = create_twins(ctx, NOTES, mapping.key, [write], intent_object=FILES)[key]
    if not outcome.ok or outcome.record is None:
        raise outcome.error or ConnectorError("the vendor note was not created")
    run.intents_done[key] = outcome.record.id
    vendor.associate(NOTES, "deals", [(outcome.record.id, item.vendor_deal)], NOTE_TO_DEAL)
    ctx.ledger.add_deal_file(
        DealFileRow(
            pair=ctx.pair,
            deal_link_id=item.link_id,
            origin="partner",
            sha256=sha,
            name=item.file.name,
            partner_file_id=item.file.id,
            vendor_note_id=outcome.record.id,
            vendor_file_id=uploaded.id,
        )
    )
    run.copied += 1
    run.good["partner"].append(item.file.id)
    run.events.append(
        f"New shared file {item.file.name!r} from the partner on shared deal {item.vendor_deal} (vendor CRM)"
    )
    run.changes.append(
        audit_row(item.link_id, "vendor", outcome.record.id, "create", "file", None, item.file.name)
    )


def _same_attachment(
    ctx: RunContext, item: VendorFile, name: str, sha: str, folder: str
) -> FileInfo | None:
    """An untracked attachment of the deal with the same name and bytes: one an interrupted run
    made after recording its intent, or the same file the partner attached too."""
    partner = ctx.connectors["partner"]
    tracked = {row.partner_file_id for row in ctx.ledger.deal_files(ctx.pair)}
    for info in (
        files_on_deals(partner).deal_attachments([item.partner_deal]).get(item.partner_deal, ())
    ):
        if info.name == name and info.id not in tracked:
            path = os.path.join(folder, f"check-{info.id}")
            if stream_to(path, partner.download_file(info.id))[0] == sha:
                return info
    return None


def copy_to_partner(ctx: RunContext, item: VendorFile, folder: str, run: DealFilesRun) -> None:
    """A file on a vendor shared note -> an attachment of the partner deal, with the same bytes."""
    partner, vendor = ctx.connectors["partner"], ctx.connectors["vendor"]
    info = files_on_notes(vendor).file_info(item.file_id)
    if info is None:
        return  # deleted in the vendor CRM while the note still lists it: nothing to copy
    if info.size > ctx.config.max_file_bytes:
        run.quarantined.append(too_big(ctx, "vendor", item.file_id, info.name, info.size))
        return
    path = os.path.join(folder, f"vendor-{item.file_id}")
    sha, _size = stream_to(path, vendor.download_file(item.file_id))
    key = attachment_key(ctx.pair, item.note_id, item.file_id)
    assert ctx.run_id is not None
    attached = _same_attachment(ctx, item, info.name, sha, folder)
    if attached is not None:
        run.adopted.add(attached.id)
    else:
        ctx.hold_lease()
        ctx.ledger.record_intents(ctx.run_id, ctx.pair, FILES, [(key, "partner", item.file_id)])
        with open(path, "rb") as handle:
            attached = files_on_deals(partner).attach(item.partner_deal, info.name, handle)
    ctx.ledger.add_deal_file(
        DealFileRow(
            pair=ctx.pair,
            deal_link_id=item.link_id,
            origin="vendor",
            sha256=sha,
            name=info.name,
            partner_file_id=attached.id,
            vendor_note_id=item.note_id,
            vendor_file_id=item.file_id,
        )
    )
    run.intents_done[key] = attached.id
    run.copied += 1
    run.good["vendor"].append(item.file_id)
    run.changes.append(
        audit_row(item.link_id, "partner", attached.id, "create", "file", None, info.name)
    )


def remove_files(
    ctx: RunContext,
    plan: DealFilePlan,
    tracked: list[DealFileRow],
    vendor_notes: Mapping[str, tuple[str, ...]],
    run: DealFilesRun,
) -> None:
    """Delete on one side what was deleted on the other; a file note left empty is archived."""
    for row in plan.remove_on_partner:
        try:
            ctx.connectors["partner"].delete_file(row.partner_file_id)
        except ConnectorError as exc:
            run.quarantined.append(_failed("partner", row.partner_file_id, "deleting", exc))
            continue
        plan.ended[row.id] = "deleted"
        run.deleted += 1
        run.changes.append(
            audit_row(
                row.deal_link_id, "partner", row.partner_file_id, "delete", "file", row.name, None
            )
        )
    by_note: dict[str, list[DealFileRow]] = defaultdict(list)
    for row in plan.remove_on_vendor:
        by_note[row.vendor_note_id].append(row)
    for note_id, rows in by_note.items():
        try:
            _remove_from_vendor_note(ctx, plan, note_id, rows, tracked, vendor_notes)
        except ConnectorError as exc:
            run.quarantined.append(_failed("vendor", note_id, "removing files from", exc))
            continue
        for row in rows:
            plan.ended[row.id] = "deleted"
            run.deleted += 1
            run.changes.append(
                audit_row(row.deal_link_id, "vendor", note_id, "delete", "file", row.name, None)
            )


def _remove_from_vendor_note(
    ctx: RunContext,
    plan: DealFilePlan,
    note_id: str,
    rows: list[DealFileRow],
    tracked: list[DealFileRow],
    vendor_notes: Mapping[str, tuple[str, ...]],
) -> None:
    vendor = ctx.connectors["vendor"]
    gone = {row.vendor_file_id for row in rows}
    if note_id in plan.archive_notes:
        outcome = vendor.archive(NOTES, [note_id])[0]
    else:
        keep = ";".join(f for f in vendor_notes.get(note_id, ()) if f not in gone)
        prop = ctx.notes.attachments("vendor") or ""
        outcome = vendor.update(NOTES, [WriteInput(note_id, {prop: keep}, id=note_id)])[0]
    if not outcome.ok:
        raise outcome.error or ConnectorError(f"vendor note {note_id} was not changed")
    ids = {row.id for row in rows}
    still_used = {r.vendor_file_id for r in tracked if r.id not in ids}
    still_used |= {f for n, files in vendor_notes.items() if n != note_id for f in files}
    for file_id in gone - still_used:
        vendor.delete_file(file_id)


def _failed(side: Side, record_id: str, doing: str, exc: ConnectorError) -> Quarantined:
    return Quarantined(
        side, record_id, FILES, [f"{doing} the file failed: {exc}"], {}, exc.retriable, FILES
    )


@dataclass
class FilesDone:
    """What the files-on-deals phase did (a dry run: what it would copy and delete)."""

    copied: int = 0
    deleted: int = 0
    events: list[str] = field(default_factory=list)
    brake: str = ""
    resolved: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    to_copy: int | None = None
    to_delete: int | None = None


def sync_deal_files(ctx: RunContext, pulled: Pulled, folder: str) -> FilesDone:
    """The whole files-on-deals phase: plan, copy both ways, delete, record (a dry run plans only)."""
    started = int(time.time() * 1000)
    plan, tracked, vendor_notes = gather_and_plan(ctx, pulled)
    if ctx.dry_run:
        return FilesDone(
            to_copy=len(plan.to_vendor) + len(plan.to_partner),
            to_delete=len(plan.remove_on_vendor) + len(plan.remove_on_partner),
        )
    check_vendor_writes(ctx.ledger, ctx.pair, "deals", [i.vendor_deal for i in plan.to_vendor])
    run = DealFilesRun()
    # Vendor files first: an attachment found to be one of them is not copied back.
    for vendor_file in plan.to_partner:
        try:
            copy_to_partner(ctx, vendor_file, folder, run)
        except ConnectorError as exc:
            run.quarantined.append(_failed("vendor", vendor_file.file_id, "copying", exc))
    for partner_file in plan.to_vendor:
        if partner_file.file.id in run.adopted:
            continue
        try:
            copy_to_vendor(ctx, partner_file, folder, run)
        except ConnectorError as exc:
            run.quarantined.append(_failed("partner", partner_file.file.id, "copying", exc))
    remove_files(ctx, plan, tracked, vendor_notes, run)
    for state in ("deleted", "unlinked"):
        ctx.ledger.end_deal_files([rid for rid, s in plan.ended.items() if s == state], state)
    assert ctx.run_id is not None
    ctx.ledger.commit_run(
        ctx.run_id,
        ctx.pair,
        RunCommit(
            [],
            {},
            {},
            run.changes,
            [],
            {("partner", FILES): started},  # where a CRM that tracks file changes looks next
            run.intents_done,
            None,
            FILES,
            fence=ctx.fence,
        ),
    )
    record_quarantine(ctx, run.quarantined)
    resolved = sum(
        ctx.ledger.resolve_quarantine(ctx.pair, side, ids, FILES) for side, ids in run.good.items()
    )
    return FilesDone(run.copied, run.deleted, run.events, plan.brake, resolved, run.quarantined)
