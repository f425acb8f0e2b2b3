"""Step 6, commit: the ledger records only what the CRMs confirmed, for every synced object.

New links (from creates and adoptions), the bases both sides now agree on, ended links, the audit of
every write, conflicts, cursors, create intents, merges followed and the scans' snapshots, in one
transaction; then quarantine: what failed goes in, what is healthy again comes out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.base import WriteOutcome, content_hash
from dealsync.context import RunContext
from dealsync.ledger.repo import RunCommit
from dealsync.model import (
    SIDES,
    Link,
    Side,
    other,
    to_json,
)
from dealsync.outcomes import (
    Quarantined,
    audit_row,
    conflict_rows,
    record_quarantine,
    refused_links,
    skipped,
)
from dealsync.pipeline.checking import Checked
from dealsync.pipeline.planned import ObjectPlan, PlannedCreate
from dealsync.pipeline.reading import Pulled
from dealsync.pipeline.writing import Pushed
from dealsync.snapshots import Seen
from dealsync.twins import refused_creates


@dataclass
class Recorded:
    """What one object's commit recorded, for the run report."""

    created: dict[Side, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    updated: dict[Side, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    deleted: dict[Side, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    adopted: int = 0
    resolved: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    new_links: list[Link] = field(default_factory=list)


@dataclass(frozen=True)
class CreateRecording:
    """How an object's creates are recorded: which link, which audit rows, which event."""

    links: Callable[[PlannedCreate], bool] = lambda _create: True
    rows: Callable[[PlannedCreate, str], list[dict[str, Any]]] = lambda _c, _twin: []
    event: Callable[[PlannedCreate, str], str | None] = lambda _c, _twin: None


def record(
    ctx: RunContext,
    object_type: str,
    noun: str,
    pulled: Pulled,
    checked: Checked,
    plan: ObjectPlan,
    pushed: Pushed,
    creating: CreateRecording,
    *,
    extra_quarantine: Sequence[Quarantined] = (),
    found: Mapping[str, str] | None = None,
    owner_turn: int | None = None,
    conflict_prefix: str = "",
    delete_field: str = "*",
) -> Recorded:
    """Write what the CRMs confirmed to the ledger in one transaction, then the quarantine."""
    assert ctx.run_id is not None
    done = Recorded(messages=[m.message(noun) for m in pulled.merges])
    intents: dict[str, str] = dict(found or {})
    for create in plan.creates:
        outcome = pushed.creates.get(create.key)
        if outcome is None or not outcome.ok or outcome.record is None:
            continue
        twin_id = outcome.record.id
        if census := pulled.census.get(create.target):
            census.saw(outcome.record)
        intents[create.key] = twin_id
        done.created[create.target] += 1
        done.changes += creating.rows(create, twin_id)
        if event := creating.event(create, twin_id):
            done.events.append(event)
        if creating.links(create):
            source = other(create.target)
            partner_id, vendor_id = (
                (create.source_id, twin_id) if source == "partner" else (twin_id, create.source_id)
            )
            done.new_links.append(Link(None, partner_id, vendor_id, source, create.base))
    for adopt in plan.adopts:
        done.new_links.append(
            Link(None, adopt.partner_id, adopt.vendor_id, adopt.origin, adopt.base)
        )
        done.adopted += 1
    failed_links = _updates(plan, pushed, done)
    link_states = _deletes(plan, pushed, done, delete_field)
    done.conflicts = conflict_rows(list(plan.conflicts), prefix=conflict_prefix)
    for (target, record_id), outcome in pushed.deletes.items():
        if (census := pulled.census.get(target)) and outcome.ok:
            census.mark(record_id, False)
    refused = ctx.ledger.commit_run(
        ctx.run_id,
        ctx.pair,
        RunCommit(
            done.new_links,
            {lid: base for lid, base in plan.new_bases.items() if lid not in failed_links},
            link_states,
            done.changes,
            done.conflicts,
            {(s, object_type): v for s, v in pulled.cursors.items() if v is not None},
            intents,
            owner_turn,
            object_type,
            refused_creates(list(plan.creates), pushed.creates),
            relinks={m.link.id: (m.side, m.new_id) for m in pulled.merges if m.follows},  # type: ignore[misc]
            merged_away=[m.link.id for m in pulled.merges if not m.follows],  # type: ignore[misc]
            census={
                side: change
                for side, census in pulled.census.items()
                if (change := census.change()) is not None
            },
            mapping_fields=pulled.mapping_change.current if pulled.mapping_change else None,
            inbox=pulled.inbox,
            fence=ctx.fence,
        ),
    )
    ctx.hold_lease()
    _save_snapshots(ctx, object_type, pulled, plan, pushed)
    done.quarantined = [
        *extra_quarantine,
        *checked.quarantined,
        *pushed.failures,
        *skipped(list(plan.skips), object_type),
        *refused_links(refused, noun, object_type),
    ]
    record_quarantine(ctx, done.quarantined)
    bad = {(q.side, q.record_id) for q in done.quarantined}
    for side in SIDES:
        healthy = [rid for rid in checked.records[side] if (side, rid) not in bad]
        done.resolved += ctx.ledger.resolve_quarantine(ctx.pair, side, healthy, object_type)
    return done


def _updates(plan: ObjectPlan, pushed: Pushed, done: Recorded) -> set[int]:
    """Audit the confirmed updates; the links whose update failed keep their old base."""
    failed: set[int] = set()
    for update in plan.updates:
        outcome = pushed.updates.get((update.target, update.record_id))
        if outcome is None or not outcome.ok:
            if update.link_id is not None:
                failed.add(update.link_id)
            continue
        done.updated[update.target] += 1
        done.changes += [
            audit_row(
                update.link_id,
                update.target,
                update.record_id,
                "update",
                c.field,
                to_json(c.old),
                to_json(c.new),
            )
            for c in update.changes
        ]
    return failed


def _deletes(plan: ObjectPlan, pushed: Pushed, done: Recorded, field_name: str) -> dict[int, str]:
    """Audit the confirmed deletions; the links they end."""
    states: dict[int, str] = {}
    for delete in plan.deletes:
        target = other(delete.source)
        outcome = pushed.deletes.get((target, delete.target_id))
        if delete.action != "unlink" and (outcome is None or not outcome.ok):
            continue
        if delete.link_id is not None:
            states[delete.link_id] = "unlinked" if delete.action == "unlink" else "archived"
        if delete.action != "unlink":
            done.deleted[target] += 1
            done.changes.append(
                audit_row(
                    delete.link_id, target, delete.target_id, delete.action, field_name, None, None
                )
            )
    return states


def _save_snapshots(
    ctx: RunContext, object_type: str, pulled: Pulled, plan: ObjectPlan, pushed: Pushed
) -> None:
    """Keep each complete scan's hashes, with the records this run wrote as the CRM returned them
    (so dealsync's own writes do not count as changes next run)."""
    written: list[tuple[Side, WriteOutcome]] = [
        (c.target, pushed.creates[c.key]) for c in plan.creates if c.key in pushed.creates
    ]
    written += [(side, outcome) for (side, _), outcome in pushed.updates.items()]
    now_ms = int(time.time() * 1000)
    for side, hashes in pulled.snapshots.items():
        for target, outcome in written:
            if target == side and outcome.ok and outcome.record is not None:
                hashes[outcome.record.id] = Seen(content_hash(outcome.record), now_ms)
        for (target, record_id), outcome in pushed.deletes.items():
            if target == side and outcome.ok:
                hashes.pop(record_id, None)
        ctx.ledger.save_snapshot(ctx.pair, side, hashes, object_type)
