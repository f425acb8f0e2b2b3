"""SQLAlchemy models of the ledger (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Now, timezone-aware."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the ledger's tables."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Run(Base):
    """One run of one pair."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pair: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="running")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    full_resync: Mapped[bool] = mapped_column(Boolean, default=False)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class LinkRow(Base):
    """A partner deal and its vendor twin, with the values both sides last agreed on."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("pair", "object_type", "partner_id", name="uq_links_partner"),
        UniqueConstraint("pair", "object_type", "vendor_id", name="uq_links_vendor"),
        # A vendor record is shared with one partner at a time: no pair can link it while another does.
        Index(
            "uq_links_vendor_active",
            "object_type",
            "vendor_id",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pair: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(16), default="deals")
    partner_id: Mapped[str] = mapped_column(String(64))
    vendor_id: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default="active", index=True)
    base: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Cursor(Base):
    """How far incremental pulls have read, per pair, side and object type."""

    __tablename__ = "cursors"
    pair: Mapped[str] = mapped_column(String(64), primary_key=True)
    side: Mapped[str] = mapped_column(String(8), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    # Whether `census` holds the side's counted records (built by a complete pull).
    census_ready: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class CensusRow(Base):
    """A record a side's count rule matched when last known (what a quiet run's count should find)."""

    __tablename__ = "census"
    pair: Mapped[str] = mapped_column(String(64), primary_key=True)
    side: Mapped[str] = mapped_column(String(8), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class OwnerCacheRow(Base):
    """A side's owners as last read, so runs that need them do not read them every time."""

    __tablename__ = "owner_cache"
    pair: Mapped[str] = mapped_column(String(64), primary_key=True)
    side: Mapped[str] = mapped_column(String(8), primary_key=True)
    read_at_ms: Mapped[int] = mapped_column(BigInteger)
    owners: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class MappingFieldRow(Base):
    """A synced field of a pair's mapping as the pair's links were last synced with it."""

    __tablename__ = "mapping_fields"
    pair: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    field: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(32))


class HeldDeletionRow(Base):
    """A deletion the brake held: `held` until a person approves or rejects it."""

    __tablename__ = "held_deletions"
    pair: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    link_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(8))  # the side where the record was deleted
    target_id: Mapped[str] = mapped_column(String(64))  # the twin the deletion would reach
    action: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # held | approved | rejected
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class RateBudgetRow(Base):
    """A portal's API budget shared by every process: when its next permit is free (epoch seconds
    of the database's clock, so workers on several machines agree)."""

    __tablename__ = "rate_budgets"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    next_free_s: Mapped[float] = mapped_column(Float)


class ChangeRow(Base):
    """The audit: one field value written to one record by one run."""

    __tablename__ = "changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    pair: Mapped[str] = mapped_column(String(64), index=True)
    link_id: Mapped[int | None] = mapped_column(Integer)
    side: Mapped[str] = mapped_column(String(8))
    record_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    field: Mapped[str] = mapped_column(String(128))
    old_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConflictRow(Base):
    """A field changed on both sides: all three values and the rule that decided."""

    __tablename__ = "conflicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    pair: Mapped[str] = mapped_column(String(64), index=True)
    link_id: Mapped[int | None] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(128))
    base_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    partner_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    vendor_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    rule: Mapped[str] = mapped_column(String(16))
    winner: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QuarantineRow(Base):
    """A record that failed validation, planning or a push, kept with its reasons: a retriable failure
    is retried by the next run; any other waits for the record, the mapping or a person to change."""

    __tablename__ = "quarantine"
    __table_args__ = (
        UniqueConstraint("pair", "side", "object_type", "record_id", name="uq_quarantine_record"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pair: Mapped[str] = mapped_column(String(64), index=True)
    side: Mapped[str] = mapped_column(String(8))
    object_type: Mapped[str] = mapped_column(String(16), default="deals")
    record_id: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    retriable: Mapped[bool] = mapped_column(Boolean, default=True)
    # The version of the mapping that judged a failure only a change can fix: a new one retries it.
    mapping_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_run_id: Mapped[int | None] = mapped_column(Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CreateIntent(Base):
    """A create about to be sent, recorded first: only a pending intent lets a later run adopt the
    record carrying its key (pending: it may have happened; done: it did; failed: the CRM refused it)."""

    __tablename__ = "create_intents"
    __table_args__ = (UniqueConstraint("pair", "object_type", "key", name="uq_intents_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pair: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(16), default="deals")
    key: Mapped[str] = mapped_column(String(200))
    target_side: Mapped[str] = mapped_column(String(8))
    source_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    target_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FileRow(Base):
    """One file shared on notes of a pair: the same bytes (by sha256) on the partner and the vendor side."""

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("pair", "sha256", name="uq_files_sha"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pair: Mapped[str] = mapped_column(String(64), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255))
    partner_file_id: Mapped[str | None] = mapped_column(String(64), index=True)
    vendor_file_id: Mapped[str | None] = mapped_column(String(64), index=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class SnapshotRow(Base):
    """The content hash of a record as last synced, for CRMs found by comparing complete scans."""

    __tablename__ = "snapshots"
    pair: Mapped[str] = mapped_column(String(64), primary_key=True)
    side: Mapped[str] = mapped_column(String(8), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    seen_at_ms: Mapped[int | None] = mapped_column(BigInteger)  # when a scan first saw this content


class InboxRow(Base):
    """A vendor record the hub read routed to a pair, waiting for the pair's run: changed (with
    what the hub read) or to check by id; a later hub read replaces it (`seq`), a commit consumes it."""

    __tablename__ = "inbox"
    pair: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # changed | check
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parents: Mapped[list[Any]] = mapped_column(JSON, default=list)
    seq: Mapped[int] = mapped_column(BigInteger)
    routed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class HubStateRow(Base):
    """The vendor hub's reads: how many committed, and when the newest of them started."""

    __tablename__ = "hub_state"
    key: Mapped[str] = mapped_column(String(16), primary_key=True)
    reads: Mapped[int] = mapped_column(BigInteger, default=0)
    last_started_ms: Mapped[int] = mapped_column(BigInteger, default=0)


class Lease(Base):
    """Who syncs a pair, or last did: the lease is free once `expires_at` has passed. The row stays
    after a release, so `fence` grows with every acquisition and names who took the pair last."""

    __tablename__ = "leases"
    pair: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    fence: Mapped[int] = mapped_column(Integer, default=1, server_default="0")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PairState(Base):
    """Small per-pair state: the round-robin position, the registration count last written to the vendor."""

    __tablename__ = "pair_state"
    pair: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_turn: Mapped[int] = mapped_column(Integer, default=0)
    registrations_reported: Mapped[int | None] = mapped_column(Integer, nullable=True)


class DealFileRow(Base):
    """A file on a shared deal whose partner CRM keeps files on the deal (BottleCRM attachments):
    the attachment, and the vendor's shared note and file carrying the same bytes."""

    __tablename__ = "deal_files"
    __table_args__ = (
        UniqueConstraint("pair", "partner_file_id", name="uq_deal_files_partner"),
        UniqueConstraint("pair", "vendor_note_id", "vendor_file_id", name="uq_deal_files_vendor"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pair: Mapped[str] = mapped_column(String(64), index=True)
    deal_link_id: Mapped[int] = mapped_column(Integer, index=True)
    origin: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    partner_file_id: Mapped[str] = mapped_column(String(64))
    vendor_note_id: Mapped[str] = mapped_column(String(64))
    vendor_file_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="active", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
