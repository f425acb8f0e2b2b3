"""The ledger's repository: every read and write the engine makes, each in its own transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from dealsync.claims import Intent
from dealsync.ledger.models import (
    ChangeRow,
    ConflictRow,
    CreateIntent,
    Cursor,
    DealFileRow,
    FileRow,
    LinkRow,
    PairState,
    QuarantineRow,
    Run,
    SnapshotRow,
    utcnow,
)
from dealsync.model import Link, Value, from_json, to_json
from dealsync.snapshots import Seen

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Which creates make records of an object type (a vendor file note is a note made by the files phase).
MADE_AS = {"deals": ("deals",), "notes": ("notes", "files")}


@dataclass(frozen=True)
class QuarantineEntry:
    """A quarantined record as reports show it."""

    side: str
    object_type: str
    record_id: str
    stage: str
    reasons: list[str]
    attempts: int
    retriable: bool
    first_seen: Any
    last_seen: Any


def _link(row: LinkRow) -> Link:
    return Link(
        row.id,
        row.partner_id,
        row.vendor_id,
        row.origin,  # type: ignore[arg-type]
        {k: from_json(v) for k, v in (row.base or {}).items()},
        row.state,  # type: ignore[arg-type]
    )


def _json_base(base: dict[str, Value]) -> dict[str, Any]:
    return {k: to_json(v) for k, v in base.items()}


class LedgerUnavailable(RuntimeError):
    """The ledger's database cannot be opened: names the URL (never its password) and what to check."""


def redacted(url: str) -> str:
    """A database URL safe to print: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<an unreadable database URL>"


class Ledger:
    """The ledger behind a SQLAlchemy URL (sqlite:///... or postgresql+psycopg://...)."""

    @classmethod
    def open(cls, url: str) -> Ledger:
        """The ledger at `url`, migrated to the newest schema; LedgerUnavailable when it cannot be."""
        try:
            ledger = cls(url)
            ledger.migrate()
        except (OSError, sa.exc.SQLAlchemyError) as exc:
            raise LedgerUnavailable(_unavailable(url, exc)) from None
        return ledger

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine: Engine = sa.create_engine(url, pool_pre_ping=True)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # ---- runs ----------------------------------------------------------------------------
    def start_run(self, pair: str, dry_run: bool, full_resync: bool) -> int:
        """Record that a run started; returns its id."""
        with self.sessions.begin() as s:
            run = Run(pair=pair, dry_run=dry_run, full_resync=full_resync, summary={})
            s.add(run)
            s.flush()
            return run.id

    def finish_run(
        self, run_id: int, status: str, summary: dict[str, Any], error: str | None = None
    ) -> None:
        """Record how a run ended."""
        with self.sessions.begin() as s:
            run = s.get(Run, run_id)
            run.status, run.summary, run.error, run.finished_at = status, summary, error, utcnow()

    def last_run(self, pair: str) -> Run | None:
        """The newest run of a pair."""
        with self.sessions() as s:
            return s.scalars(
                sa.select(Run).where(Run.pair == pair).order_by(Run.id.desc()).limit(1)
            ).first()

    # ---- links, cursors, state -----------------------------------------------------------
    def links_for(
        self, pair: str, side: str, record_ids: Iterable[str], object_type: str = "deals"
    ) -> list[Link]:
        """Active links whose record on `side` is one of `record_ids`."""
        ids = list(set(record_ids))
        column = LinkRow.partner_id if side == "partner" else LinkRow.vendor_id
        found: list[Link] = []
        with self.sessions() as s:
            for start in range(0, len(ids), 500):
                rows = s.scalars(
                    sa.select(LinkRow).where(
                        LinkRow.pair == pair,
                        LinkRow.object_type == object_type,
                        LinkRow.state == "active",
                        column.in_(ids[start : start + 500]),
                    )
                )
                found += [_link(r) for r in rows]
        return found

    def active_links(self, pair: str, object_type: str = "deals") -> list[Link]:
        """Every active link of a pair."""
        with self.sessions() as s:
            rows = s.scalars(
                sa.select(LinkRow).where(
                    LinkRow.pair == pair,
                    LinkRow.object_type == object_type,
                    LinkRow.state == "active",
                )
            )
            return [_link(r) for r in rows]

    def count_links(self, pair: str, state: str = "active", object_type: str = "deals") -> int:
        """How many links of a pair are in a state."""
        with self.sessions() as s:
            return s.scalar(
                sa.select(sa.func.count())
                .select_from(LinkRow)
                .where(
                    LinkRow.pair == pair, LinkRow.object_type == object_type, LinkRow.state == state
                )
            )

    def cursor(self, pair: str, side: str, object_type: str = "deals") -> int | None:
        """The stored cursor, or None before the first completed run."""
        with self.sessions() as s:
            row = s.get(Cursor, (pair, side, object_type))
            return row.value if row else None

    def owner_turn(self, pair: str) -> int:
        """The round-robin position of owner assignment."""
        with self.sessions() as s:
            row = s.get(PairState, pair)
            return row.owner_turn if row else 0

    # ---- quarantine ----------------------------------------------------------------------
    def quarantine(
        self,
        run_id: int | None,
        pair: str,
        side: str,
        record_id: str,
        stage: str,
        reasons: Sequence[str],
        payload: dict[str, Any],
        retriable: bool = True,
        object_type: str = "deals",
    ) -> None:
        """Put (or keep) a record in quarantine with its newest reasons."""
        with self.sessions.begin() as s:
            row = s.scalars(
                sa.select(QuarantineRow).where(
                    QuarantineRow.pair == pair,
                    QuarantineRow.side == side,
                    QuarantineRow.object_type == object_type,
                    QuarantineRow.record_id == record_id,
                )
            ).first()
            if row is None:
                s.add(
                    QuarantineRow(
                        pair=pair,
                        side=side,
                        object_type=object_type,
                        record_id=record_id,
                        stage=stage,
                        reasons=list(reasons),
                        payload=payload,
                        retriable=retriable,
                        attempts=1,
                        last_run_id=run_id,
                    )
                )
                return
            row.attempts = 1 if row.resolved_at else row.attempts + 1
            row.stage, row.reasons, row.payload, row.retriable = (
                stage,
                list(reasons),
                payload,
                retriable,
            )
            row.last_seen, row.resolved_at, row.last_run_id = utcnow(), None, run_id

    def resolve_quarantine(
        self, pair: str, side: str, record_ids: Iterable[str], object_type: str = "deals"
    ) -> int:
        """Mark quarantined records as fixed; returns how many left quarantine."""
        ids = list(set(record_ids))
        if not ids:
            return 0
        with self.sessions.begin() as s:
            result = s.execute(
                sa.update(QuarantineRow)
                .where(
                    QuarantineRow.pair == pair,
                    QuarantineRow.side == side,
                    QuarantineRow.object_type == object_type,
                    QuarantineRow.record_id.in_(ids),
                    QuarantineRow.resolved_at.is_(None),
                )
                .values(resolved_at=utcnow())
            )
            return result.rowcount or 0

    def open_quarantine(
        self, pair: str | None = None, side: str | None = None
    ) -> list[QuarantineEntry]:
        """Records still in quarantine."""
        query = (
            sa.select(QuarantineRow)
            .where(QuarantineRow.resolved_at.is_(None))
            .order_by(QuarantineRow.id)
        )
        if pair:
            query = query.where(QuarantineRow.pair == pair)
        if side:
            query = query.where(QuarantineRow.side == side)
        with self.sessions() as s:
            return [
                QuarantineEntry(
                    r.side,
                    r.object_type,
                    r.record_id,
                    r.stage,
                    list(r.reasons),
                    r.attempts,
                    r.retriable,
                    r.first_seen,
                    r.last_seen,
                )
                for r in s.scalars(query)
            ]

    def quarantine_pairs(self) -> dict[str, int]:
        """Open quarantine entries per pair."""
        with self.sessions() as s:
            rows = s.execute(
                sa.select(QuarantineRow.pair, sa.func.count())
                .where(QuarantineRow.resolved_at.is_(None))
                .group_by(QuarantineRow.pair)
            )
            return dict(rows.all())

    # ---- creates -------------------------------------------------------------------------
    def record_intents(
        self, run_id: int, pair: str, object_type: str, intents: Iterable[tuple[str, str, str]]
    ) -> None:
        """Record (key, target side, source id) before the creates are sent.

        An intent an earlier run left pending stays as it is (its create may have happened); one
        that failed or completed before is pending again, for this run."""
        wanted = {key: (target, source_id) for key, target, source_id in intents}
        if not wanted:
            return
        with self.sessions.begin() as s:
            existing = {
                row.key: row
                for row in s.scalars(
                    sa.select(CreateIntent).where(
                        CreateIntent.pair == pair,
                        CreateIntent.object_type == object_type,
                        CreateIntent.key.in_(list(wanted)),
                    )
                )
            }
            for key, (target, source_id) in wanted.items():
                row = existing.get(key)
                if row is None:
                    s.add(
                        CreateIntent(
                            pair=pair,
                            object_type=object_type,
                            key=key,
                            target_side=target,
                            source_id=source_id,
                            run_id=run_id,
                        )
                    )
                elif row.state != "pending":
                    row.state, row.run_id, row.target_id = "pending", run_id, None
                    row.target_side, row.source_id = target, source_id

    def earlier_intents(
        self, pair: str, object_type: str, keys: Iterable[str], run_id: int
    ) -> set[str]:
        """Keys whose create an earlier run announced and never confirmed (it may have happened)."""
        wanted = list(set(keys))
        if not wanted:
            return set()
        with self.sessions() as s:
            return set(
                s.scalars(
                    sa.select(CreateIntent.key).where(
                        CreateIntent.pair == pair,
                        CreateIntent.object_type == object_type,
                        CreateIntent.key.in_(wanted),
                        CreateIntent.state == "pending",
                        CreateIntent.run_id != run_id,
                    )
                )
            )

    def intents(
        self, pair: str, object_types: Iterable[str], keys: Iterable[str]
    ) -> dict[str, Intent]:
        """This pair's create intents of these object types carrying these keys, by key."""
        wanted = list({k for k in keys if k})
        found: dict[str, Intent] = {}
        with self.sessions() as s:
            for start in range(0, len(wanted), 500):
                rows = s.scalars(
                    sa.select(CreateIntent).where(
                        CreateIntent.pair == pair,
                        CreateIntent.object_type.in_(list(object_types)),
                        CreateIntent.key.in_(wanted[start : start + 500]),
                    )
                )
                found.update(
                    {
                        r.key: Intent(r.key, r.target_side, r.source_id, r.state, r.target_id)  # type: ignore[arg-type]
                        for r in rows
                    }
                )
        return found

    def known_records(
        self, pair: str, object_type: str, ids: Mapping[str, Iterable[str]]
    ) -> set[tuple[str, str]]:
        """The (side, id) of these records that this pair's ledger knows: linked now or before, or
        made by one of its creates (a welcome note, a file note). What it knows, a key cannot claim."""
        known: set[tuple[str, str]] = set()
        with self.sessions() as s:
            for side, record_ids in ids.items():
                wanted = list(set(record_ids))
                column = LinkRow.partner_id if side == "partner" else LinkRow.vendor_id
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    linked = s.scalars(
                        sa.select(column).where(
                            LinkRow.pair == pair,
                            LinkRow.object_type == object_type,
                            LinkRow.state != "disputed",
                            column.in_(chunk),
                        )
                    )
                    made = s.scalars(
                        sa.select(CreateIntent.target_id).where(
                            CreateIntent.pair == pair,
                            CreateIntent.object_type.in_(MADE_AS[object_type]),
                            CreateIntent.target_side == side,
                            CreateIntent.state == "done",
                            CreateIntent.target_id.in_(chunk),
                        )
                    )
                    known.update((side, i) for i in [*linked, *made] if i)
                    if object_type == "notes" and side == "vendor":
                        carriers = s.scalars(
                            sa.select(DealFileRow.vendor_note_id).where(
                                DealFileRow.pair == pair, DealFileRow.vendor_note_id.in_(chunk)
                            )
                        )
                        known.update((side, i) for i in carriers)
        return known

    def linked_elsewhere(
        self, pair: str, object_type: str, vendor_ids: Iterable[str]
    ) -> dict[str, str]:
        """Vendor records (of these ids) actively linked to a pair other than `pair`: id -> that pair."""
        ids = list(set(vendor_ids))
        found: dict[str, str] = {}
        with self.sessions() as s:
            for start in range(0, len(ids), 500):
                rows = s.execute(
                    sa.select(LinkRow.vendor_id, LinkRow.pair).where(
                        LinkRow.object_type == object_type,
                        LinkRow.pair != pair,
                        LinkRow.state == "active",
                        LinkRow.vendor_id.in_(ids[start : start + 500]),
                    )
                )
                found.update(dict(rows.all()))
        return found

    def welcome_notes(self, pair: str, side: str) -> set[str]:
        """Ids of the welcome notes dealsync wrote on a side (they are never copied back)."""
        with self.sessions() as s:
            return set(
                s.scalars(
                    sa.select(CreateIntent.target_id).where(
                        CreateIntent.pair == pair,
                        CreateIntent.target_side == side,
                        CreateIntent.state == "done",
                        CreateIntent.key.like("%:welcome"),
                    )
                )
            )

    # ---- the commit of a run -------------------------------------------------------------
    def commit_run(self, run_id: int, pair: str, outcome: RunCommit) -> list[Link]:
        """Write what the CRMs confirmed, in one transaction: links, bases, audit, cursors.

        A link is written once: a new link for a record this pair already linked (in any state),
        or for a vendor record another pair links now, is refused and returned, never overwritten.
        The schema enforces the same (unique constraints), so a race ends in an error, not a takeover.
        """
        refused: list[Link] = []
        with self.sessions.begin() as s:
            for link in outcome.new_links:
                clash = s.scalars(
                    sa.select(LinkRow.id).where(
                        LinkRow.object_type == outcome.object_type,
                        sa.or_(
                            sa.and_(LinkRow.pair == pair, LinkRow.partner_id == link.partner_id),
                            sa.and_(LinkRow.pair == pair, LinkRow.vendor_id == link.vendor_id),
                            sa.and_(LinkRow.vendor_id == link.vendor_id, LinkRow.state == "active"),
                        ),
                    )
                ).first()
                if clash is not None:
                    refused.append(link)
                    continue
                s.add(
                    LinkRow(
                        pair=pair,
                        object_type=outcome.object_type,
                        partner_id=link.partner_id,
                        vendor_id=link.vendor_id,
                        origin=link.origin,
                        base=_json_base(dict(link.base)),
                        created_run_id=run_id,
                    )
                )
            for link_id, (side, new_id) in outcome.relinks.items():
                row = s.get(LinkRow, link_id)
                column = LinkRow.partner_id if side == "partner" else LinkRow.vendor_id
                clash = s.scalars(
                    sa.select(LinkRow.id).where(
                        LinkRow.object_type == outcome.object_type,
                        LinkRow.id != link_id,
                        column == new_id,
                        sa.or_(LinkRow.pair == pair, LinkRow.state == "active")
                        if side == "vendor"
                        else LinkRow.pair == pair,
                    )
                ).first()
                if clash is not None:
                    row.state = "merged"
                    continue
                setattr(row, "partner_id" if side == "partner" else "vendor_id", new_id)
            for link_id in outcome.merged_away:
                s.get(LinkRow, link_id).state = "merged"
            for link_id, base in outcome.bases.items():
                row = s.get(LinkRow, link_id)
                row.base = _json_base(base)
            for link_id, state in outcome.link_states.items():
                s.get(LinkRow, link_id).state = state
            for key, target_id in outcome.intents_done.items():
                s.execute(
                    sa.update(CreateIntent)
                    .where(
                        CreateIntent.pair == pair,
                        CreateIntent.object_type == outcome.object_type,
                        CreateIntent.key == key,
                    )
                    .values(state="done", target_id=target_id)
                )
            if outcome.intents_failed:
                s.execute(
                    sa.update(CreateIntent)
                    .where(
                        CreateIntent.pair == pair,
                        CreateIntent.object_type == outcome.object_type,
                        CreateIntent.key.in_(outcome.intents_failed),
                    )
                    .values(state="failed")
                )
            s.add_all(
                ChangeRow(
                    run_id=run_id,
                    pair=pair,
                    link_id=c["link_id"],
                    side=c["side"],
                    record_id=c["record_id"],
                    action=c["action"],
                    field=c["field"],
                    old_value=c["old"],
                    new_value=c["new"],
                )
                for c in outcome.changes
            )
            s.add_all(
                ConflictRow(
                    run_id=run_id,
                    pair=pair,
                    link_id=c["link_id"],
                    field=c["field"],
                    base_value=c["base"],
                    partner_value=c["partner"],
                    vendor_value=c["vendor"],
                    rule=c["rule"],
                    winner=c["winner"],
                )
                for c in outcome.conflicts
            )
            for (side, object_type), value in outcome.cursors.items():
                row = s.get(Cursor, (pair, side, object_type))
                if row is None:
                    s.add(Cursor(pair=pair, side=side, object_type=object_type, value=value))
                elif value > row.value:
                    row.value = value
            if outcome.owner_turn is not None:
                state = s.get(PairState, pair)
                if state is None:
                    s.add(PairState(pair=pair, owner_turn=outcome.owner_turn))
                else:
                    state.owner_turn = outcome.owner_turn
        return refused

    # ---- snapshots -----------------------------------------------------------------------
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

    # ---- files ---------------------------------------------------------------------------
    def files_by_ids(self, pair: str, side: str, file_ids: Iterable[str]) -> dict[str, FileRow]:
        """Known shared files by their id on one side."""
        ids = list(set(file_ids))
        if not ids:
            return {}
        column = FileRow.partner_file_id if side == "partner" else FileRow.vendor_file_id
        with self.sessions() as s:
            rows = s.scalars(sa.select(FileRow).where(FileRow.pair == pair, column.in_(ids)))
            return {(r.partner_file_id if side == "partner" else r.vendor_file_id): r for r in rows}

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

    # ---- files on deals (a partner CRM whose files belong to the deal) ---------------------
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

    # ---- reports -------------------------------------------------------------------------
    def conflicts(self, pair: str | None = None, limit: int = 50) -> list[ConflictRow]:
        """The newest conflicts."""
        query = sa.select(ConflictRow).order_by(ConflictRow.id.desc()).limit(limit)
        if pair:
            query = query.where(ConflictRow.pair == pair)
        with self.sessions() as s:
            return list(s.scalars(query))

    def count(self, model: type, pair: str) -> int:
        """Rows of a per-pair table."""
        with self.sessions() as s:
            return s.scalar(sa.select(sa.func.count()).select_from(model).where(model.pair == pair))

    def session(self) -> Session:
        """A plain session, for reports and tests."""
        return self.sessions()


@dataclass
class RunCommit:
    """What one run writes to the ledger once the CRMs confirmed its writes."""

    new_links: list[Link]
    bases: dict[int, dict[str, Value]]
    link_states: dict[int, str]
    changes: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    cursors: dict[tuple[str, str], int]
    intents_done: dict[str, str]
    owner_turn: int | None = None
    object_type: str = "deals"
    intents_failed: list[str] = field(default_factory=list)  # creates the CRM refused for good
    # Links of records a user merged: follow the survivor (link id -> side, new id), or end.
    relinks: dict[int, tuple[str, str]] = field(default_factory=dict)
    merged_away: list[int] = field(default_factory=list)


def _unavailable(url: str, exc: Exception) -> str:
    """What went wrong opening the ledger, in one line, and what to check."""
    cause = getattr(exc, "orig", None) or exc
    detail = (getattr(cause, "strerror", None) or str(cause)).strip().splitlines()[0]
    if getattr(cause, "filename", None):
        detail = f"{detail}: {cause.filename}"
    if url.startswith("sqlite"):
        hint = (
            "check that the folder of the file exists or can be created (no plain file in its path) "
            "and is writable"
        )
    else:
        hint = (
            "check that the database server is running and reachable from here, that the database "
            "exists, and that the user may connect"
        )
    return f"the ledger {redacted(url)} cannot be opened: {detail}. {hint.capitalize()}; or point `ledger:` in the config at another database."


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.execute("PRAGMA foreign_keys=ON")
    dbapi_conn.execute("PRAGMA busy_timeout=10000")
