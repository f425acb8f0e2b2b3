"""Change detection by complete scans, for CRMs with no change feed and no edit times (BottleCRM).

A scan is compared with the content hashes of the last synced scan: a new hash is a change. Such a CRM
records no modification time either, so the time a scan first saw a record's current content stands in
for it (what "newest wins" compares): exact to within one run interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from connectors.base import Record, content_hash


@dataclass(frozen=True)
class Seen:
    """A record's content hash as last synced, and when a scan first saw that content (epoch ms)."""

    hash: str
    at_ms: int | None = None


@dataclass(frozen=True)
class Observed:
    """One record of a scan: stamped with its first-seen time, its snapshot entry, whether it changed."""

    record: Record
    seen: Seen
    changed: bool


def observe(record: Record, previous: Mapping[str, Seen], scan_ms: int) -> Observed:
    """Compare a scanned record with the snapshot; stamp it with when its content was first seen."""
    digest = content_hash(record)
    before = previous.get(record.id)
    seen = before if before is not None and before.hash == digest else Seen(digest, scan_ms)
    stamped = record if seen.at_ms is None else replace(record, updated_at=_iso(seen.at_ms))
    return Observed(stamped, seen, seen is not before)


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
