"""Files on shared notes (both CRMs keep files on notes): the same bytes on both sides, by sha256."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from connectors.base import Record, files_on_notes
from connectors.errors import ConnectorError
from dealsync.context import RunContext
from dealsync.model import SIDES, Side
from dealsync.note_model import NotePlan
from dealsync.outcomes import Quarantined
from dealsync.phases.deal_files import FILES, stream_to, too_big
from dealsync.pipeline.reading import Pulled


@dataclass
class StashedFile:
    """A file read from one side: where it came from and a local copy for uploading elsewhere."""

    side: Side
    file_id: str
    name: str
    size: int
    path: str


@dataclass
class NoteFiles:
    """The files the notes of a run list: their contents (sha256) and local copies to upload."""

    files: dict[Side, dict[str, str]] = field(
        default_factory=lambda: {"partner": {}, "vendor": {}}
    )  # side -> file id -> sha256
    stash: dict[str, StashedFile] = field(default_factory=dict)  # sha256 -> a readable copy
    quarantined: list[Quarantined] = field(default_factory=list)


def attachment_ids(ctx: RunContext, record: Record, side: Side) -> list[str]:
    """The file ids a note lists (none where files belong to the deal)."""
    prop = ctx.notes.attachments(side)
    raw = (record.properties.get(prop) or "") if prop else ""
    return [part.strip() for part in raw.split(";") if part.strip()]


def note_files_synced(ctx: RunContext) -> bool:
    """Whether this run syncs files as part of notes (both CRMs keep files on notes)."""
    mapping = ctx.notes_mapping
    return (
        mapping is not None
        and "files" in ctx.objects
        and all(mapping.attachments(side) for side in SIDES)
    )


def read_files(ctx: RunContext, pulled: Pulled, folder: str) -> NoteFiles:
    """Know the sha256 of every attached file: from the ledger, or by streaming it once to `folder`."""
    found = NoteFiles()
    if not note_files_synced(ctx):
        return found
    for side in SIDES:
        ids = {
            fid
            for record in pulled.records[side].values()
            for fid in attachment_ids(ctx, record, side)
        }
        known = ctx.ledger.files_by_ids(ctx.pair, side, ids)
        connector = ctx.connectors[side]
        files = files_on_notes(connector)
        # A file deleted in the CRM while a note still lists it counts as removed from that note.
        found.files[side] = {
            fid: row.sha256 for fid, row in known.items() if files.file_info(fid) is not None
        }
        for file_id in sorted(ids - set(known)):
            try:
                info = files.file_info(file_id)
                if info is None:
                    continue  # deleted: it counts as removed from the note
                if info.size > ctx.config.max_file_bytes:
                    found.quarantined.append(too_big(ctx, side, file_id, info.name, info.size))
                    continue
                path = os.path.join(folder, f"{side}-{file_id}")
                sha, size = stream_to(path, connector.download_file(file_id))
            except ConnectorError as exc:
                found.quarantined.append(
                    Quarantined(
                        side,
                        file_id,
                        FILES,
                        [f"file could not be downloaded: {exc}"],
                        {},
                        exc.retriable,
                        FILES,
                    )
                )
                continue
            found.files[side][file_id] = sha
            found.stash.setdefault(sha, StashedFile(side, file_id, info.name, size, path))
    return found


class FileMover:
    """Puts the same bytes on a side, uploading at most once per pair and side."""

    def __init__(self, ctx: RunContext, files: NoteFiles) -> None:
        self.ctx, self.files = ctx, files
        self.copied = 0

    def ids_on(self, side: Side, shas: tuple[str, ...]) -> list[str]:
        """File ids on `side` holding these contents, uploading copies where missing."""
        have = {sha: fid for fid, sha in self.files.files[side].items()}
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
            stash = self.files.stash.get(sha)
            if stash is None:
                continue  # never read this run and unknown: nothing to copy from
            with open(stash.path, "rb") as handle:
                info = files_on_notes(self.ctx.connectors[side]).upload_file(
                    stash.name, handle, f"/dealsync/{self.ctx.pair}"
                )
            self.ctx.ledger.save_file(
                self.ctx.pair, sha, stash.size, stash.name, stash.side, stash.file_id
            )
            self.ctx.ledger.save_file(self.ctx.pair, sha, stash.size, stash.name, side, info.id)
            self.files.files[side][info.id] = sha
            self.copied += 1
            ids.append(info.id)
        return ids


def delete_removed_files(ctx: RunContext, pulled: Pulled, plan: NotePlan, files: NoteFiles) -> int:
    """Delete the copies of files removed from shared notes (unless another note still lists them)."""
    deleted = 0
    for side, sha in dict.fromkeys(plan.removed_files):
        still_used = any(
            sha in {files.files[side].get(f) for f in attachment_ids(ctx, r, side)}
            for r in pulled.records[side].values()
            if not any(u.record_id == r.id and u.target == side for u in plan.updates)
        )
        if still_used:
            continue
        for file_id, file_sha in list(files.files[side].items()):
            if file_sha == sha:
                ctx.connectors[side].delete_file(file_id)
                ctx.ledger.save_file(ctx.pair, sha, 0, "", side, None)
                deleted += 1
    return deleted
