"""Which fields of a pair's mapping changed since the ledger last synced with it. Pure: no I/O.

Each synced field has a fingerprint of everything that decides its values (properties, direction,
when, conflict rule, value map, transforms, type). A field added, or one whose fingerprint changed,
must reach the records already linked: the run reads them all once and plans them (a backfill).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from dealsync.model import FieldRule


def field_fingerprints(rules: Iterable[FieldRule]) -> dict[str, str]:
    """A fingerprint per synced field, by field name."""
    return {rule.name: _fingerprint(rule) for rule in rules}


def _fingerprint(rule: FieldRule) -> str:
    described = {f.name: _plain(getattr(rule, f.name)) for f in fields(rule)}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def _plain(value: object) -> object:
    """A field rule's attribute as JSON (enums by value, mappings and tuples as such)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if hasattr(value, "value"):
        return _plain(value.value)
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}  # type: ignore[arg-type]
    return value


@dataclass(frozen=True)
class MappingChange:
    """How the mapping's synced fields differ from the ones the ledger last synced with."""

    current: dict[str, str]
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @classmethod
    def between(cls, stored: Mapping[str, str] | None, current: dict[str, str]) -> MappingChange:
        """The change from the stored fingerprints (None: never stored, so nothing to backfill:
        the pair's links were synced with what the mapping is now, as far as the ledger knows)."""
        if stored is None:
            return cls(current)
        return cls(
            current,
            tuple(n for n in current if n not in stored),
            tuple(n for n in current if n in stored and stored[n] != current[n]),
            tuple(n for n in stored if n not in current),
        )

    @property
    def differs(self) -> bool:
        """Whether any synced field was added, changed or removed."""
        return bool(self.added or self.changed or self.removed)

    @property
    def backfills(self) -> bool:
        """Whether the linked records must be read and planned again for new or changed fields."""
        return bool(self.added or self.changed)

    def describe(self, twins: int, dry_run: bool) -> str:
        """One line for the run report."""
        parts = [
            *(f"{n} added" for n in self.added),
            *(f"{n} changed" for n in self.changed),
            *(f"{n} removed (no longer synced; values stay)" for n in self.removed),
        ]
        done = (
            f"{twins:,} linked records {'would be' if dry_run else 'were'} read and planned again"
            if self.backfills
            else "nothing to backfill"
        )
        return f"mapping changed: {', '.join(parts)}; {done}"
