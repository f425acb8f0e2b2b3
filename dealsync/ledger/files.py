"""The ledger's snapshots of complete scans, shared files and files of deals."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from dealsync.ledger.models import (
    DealFileRow,
    FileRow,
    SnapshotRow,
)
from dealsync.ledger.store import LedgerBase
from dealsync.snapshots import Seen


class FilesMixin(LedgerBase):
    """Snapshots, shared files by content, and files of deals."""

    def snapshot(self, pair: str, side: str, object_type: str = "deals") -> dict[str, Seen]:
        """record id -> content hash (and when it was first seen) of the last synced scan of a side."""
        with self.sessions() as s:
            rows = s.execute(
                sa.select(
                    SnapshotRow.record_id, SnapshotRow.content_hash, SnapshotRow.seen_at_ms
                ).where(
                    SnapshotRow.pair == pair,
                    SnapshotRow.side == side,
                    SnapshotRow.object_type == object_type,
                )
            )
            return {rid: Seen(digest, at) for rid, digest, at in rows.all()}

    def save_snapshot(
        self, pair: str, side: str, hashes: dict[str, Seen], object_type: str = "deals"
    ) -> None:
        """Replace a side's snapshot with the hashes of a complete scan."""
        with self.sessions.begin() as s:
            s.execute(
                sa.delete(SnapshotRow).where(
                    SnapshotRow.pair == pair,
                    SnapshotRow.side == side,
                    SnapshotRow.object_type == object_type,
                )
            )
            s.add_all(
                SnapshotRow(
                    pair=pair,
                    side=side,
                    object_type=object_type,
                    record_id=rid,
                    content_hash=seen.hash,
                    seen_at_ms=seen.at_ms,
                )
                for rid, seen in hashes.items()
            )

    def files_by_ids(self, pair: str, side: str, file_ids: Iterable[str]) -> dict[str, FileRow]:
        """Known shared files by their id on one side."""
        ids = list(set(file_ids))
        if not ids:
            return {}
        column = FileRow.partner_file_id if side == "partner" else FileRow.vendor_file_id
        with self.sessions() as s:
            rows = s.scalars(sa.select(FileRow).where(FileRow.pair == pair, column.in_(ids)))
            return {
                file_id: r
                for r in rows
                if (file_id := r.partner_file_id if side == "partner" else r.vendor_file_id)
            }

    def file_by_sha(self, pair: str, sha256: str) -> FileRow | None:
        """A shared file by its content hash."""
        with self.sessions() as s:
            return s.scalars(
                sa.select(FileRow).where(FileRow.pair == pair, FileRow.sha256 == sha256)
            ).first()

    def save_file(
        self, pair: str, sha256: str, size: int, name: str, side: str, file_id: str | None
    ) -> None:
        """Record (or clear, with file_id None) where a file lives on one side."""
        with self.sessions.begin() as s:
            row = s.scalars(
                sa.select(FileRow).where(FileRow.pair == pair, FileRow.sha256 == sha256)
            ).first()
            if row is None:
                row = FileRow(pair=pair, sha256=sha256, size=size, name=name)
                s.add(row)
            if side == "partner":
                row.partner_file_id = file_id
            else:
                row.vendor_file_id = file_id

    def deal_files(self, pair: str) -> list[DealFileRow]:
        """The pair's active deal files."""
        with self.sessions() as s:
            return list(
                s.scalars(
                    sa.select(DealFileRow)
                    .where(DealFileRow.pair == pair, DealFileRow.state == "active")
                    .order_by(DealFileRow.id)
                )
            )

    def add_deal_file(self, row: DealFileRow) -> None:
        """Record a file now on both sides (committed at once: the copy exists in both CRMs)."""
        with self.sessions.begin() as s:
            s.add(row)

    def end_deal_files(self, ids: Iterable[int], state: str) -> None:
        """Mark deal files deleted (on both sides) or unlinked (left where they are)."""
        wanted = list(ids)
        if wanted:
            with self.sessions.begin() as s:
                s.execute(
                    sa.update(DealFileRow).where(DealFileRow.id.in_(wanted)).values(state=state)
                )
