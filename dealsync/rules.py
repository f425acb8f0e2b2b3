"""Conflict rules, the deletion brake and owner assignment: pure decisions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dealsync.model import Side, Value


def resolve_conflict(
    rule: str, partner: Value, vendor: Value, partner_modified_ms: int, vendor_modified_ms: int
) -> Side:
    """Which side's value wins when both changed a field to different values."""
    if rule == "partner":
        return "partner"
    if rule == "newest":
        # Ties go to the vendor: it owns the deal once it is registered.
        return "partner" if partner_modified_ms > vendor_modified_ms else "vendor"
    return "vendor"


def brake_engaged(
    deletions: int, active_links: int, max_deletions: int, max_fraction: float
) -> bool:
    """True when a run would delete more than `max_deletions` records and more than `max_fraction` of the links."""
    if deletions <= max_deletions:
        return False
    return active_links == 0 or deletions / active_links > max_fraction


@dataclass(frozen=True)
class OwnerAssignment:
    """How registrations get a vendor owner (config: vendor.owner_assignment)."""

    strategy: Literal["round_robin", "by_field", "fixed"] = "round_robin"
    pool: tuple[str, ...] = ()
    fallback: str | None = None
    property: str | None = None  # by_field: the vendor-side property whose value picks the owner
    table: Mapping[str, str] = field(default_factory=dict)  # by_field: value -> owner email
    owner: str | None = None  # fixed


@dataclass(frozen=True)
class OwnerChoice:
    """The owner picked for one record, and why."""

    owner_id: str | None
    email: str | None
    note: str
    next_turn: int
    used_fallback: bool = False


def assign_owner(
    rules: OwnerAssignment,
    values: Mapping[str, str | None],
    active_owners: Mapping[str, str],
    turn: int,
) -> OwnerChoice:
    """Pick a vendor owner for a new registration.

    `active_owners` maps lower-cased email -> owner id (archived owners are absent). `turn` is the
    round-robin position, persisted by the caller; candidates that are not active owners are skipped.
    """
    candidates: Sequence[str] = ()
    if rules.strategy == "round_robin":
        candidates = rules.pool
    elif rules.strategy == "by_field" and rules.property:
        chosen = rules.table.get((values.get(rules.property) or "").strip())
        candidates = (chosen,) if chosen else ()
    elif rules.strategy == "fixed" and rules.owner:
        candidates = (rules.owner,)
    size = len(candidates)
    for step in range(size):
        email = candidates[(turn + step) % size]
        owner_id = active_owners.get(email.lower())
        if owner_id:
            note = f"{rules.strategy}: {email}"
            if step:
                skipped = ", ".join(candidates[(turn + s) % size] for s in range(step))
                note += f" (skipped {skipped}: not an active owner)"
            return OwnerChoice(owner_id, email, note, (turn + step + 1) % size if size else 0)
    next_turn = (turn + 1) % size if size else 0
    if rules.fallback and rules.fallback.lower() in active_owners:
        why = "no candidate is an active owner" if candidates else "no rule matched"
        return OwnerChoice(
            active_owners[rules.fallback.lower()],
            rules.fallback,
            f"fallback {rules.fallback}: {why}",
            next_turn,
            True,
        )
    return OwnerChoice(
        None,
        None,
        "no owner: neither a candidate nor the fallback is an active owner",
        next_turn,
        True,
    )
