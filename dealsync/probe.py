"""Whether a pair's run would find anything to do, for at most what a quiet run costs.

`sync-all-partners` asks this before it starts a partner's run: a flow run is a process on a worker
and a dozen orchestrated steps, seconds of CPU even when it finds nothing, so fifty quiet partners
cost minutes. The probe reads what a quiet run reads, in the same order, and stops at the first sign
of work: a changed record on either side's change feed, a count of shared records that differs from
the census, records in quarantine, an unconfirmed create, held deletions, a mapping whose synced
fields changed, linked records the count cannot vouch for. Whatever it cannot judge (a CRM without a
change feed, a pair never synced) needs a run. On a vendor side the hub serves, the cycle's hub read
has already looked: the pair needs a run when it routed something to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import Record, counts_records
from dealsync.config import Config
from dealsync.context import RunContext, open_context
from dealsync.echoes import settled_deal
from dealsync.fanout import each_at_once
from dealsync.ledger import Ledger
from dealsync.mapping_changes import MappingChange, field_fingerprints
from dealsync.merges import side_id
from dealsync.model import SIDES, Side
from dealsync.phases.deals import DealPhase
from dealsync.phases.note_phase import NotePhase
from dealsync.pipeline.phase import Phase
from dealsync.pipeline.tracking import CursorTracker, InboxTracker


@dataclass(frozen=True)
class Look:
    """What the look before a cycle found of one partner."""

    partner: str
    reason: str | None  # why it needs a run; None: nothing new
    calls: int  # the API calls it took to tell


def look_at_partners(config: Config, ledger: Ledger) -> list[Look]:
    """Every partner looked at, side by side (each partner's portal has its own budget)."""
    return each_at_once(lambda p: look_at(config, p.id, ledger), config.partners)


def look_at(config: Config, partner_id: str, ledger: Ledger) -> Look:
    """Whether a partner needs a run, for at most what a quiet run costs; when it does not, its
    cursors move past what the look read (all of it settled), as a run finding nothing would."""
    try:
        ctx = open_context(config, partner_id, ledger, dry_run=True)
        read: dict[tuple[str, str], int] = {}
        reason = pending_work(ctx, read)
        if reason is None:
            # What a run would have found: nothing. Its cursors move as that run's would have,
            # so the next look does not read the same settled changes again.
            ledger.advance_cursors(partner_id, read)
    except Exception as exc:  # the run itself will say what is wrong, properly
        return Look(partner_id, f"could not look ({type(exc).__name__}): run it", 0)
    return Look(partner_id, reason, sum(c.calls for c in ctx.connectors.values()))


def pending_work(ctx: RunContext, read: dict[tuple[str, str], int] | None = None) -> str | None:
    """Why the pair needs a run; None when a run would read nothing new and write nothing (then
    `read` holds how far each side's change feed was read, by (side, object type))."""
    ledger, pair = ctx.ledger, ctx.pair
    if ledger.due_quarantine(pair, ctx.mapping_versions()):
        return "records in quarantine to retry"
    if ledger.has_pending_intents(pair):
        return "a create to confirm"
    if any(h.state != "rejected" for h in ledger.held_deletions(pair)):
        return "held deletions to ask about or apply"
    phases: list[Phase] = [DealPhase(ctx)]
    if ctx.notes_mapping is not None:
        phases.append(NotePhase(ctx))
    for phase in phases:
        reason = _phase_work(phase, {} if read is None else read)
        if reason is not None:
            return f"{phase.object_type}: {reason}"
    return None


def _phase_work(phase: Phase, read: dict[tuple[str, str], int]) -> str | None:
    ctx = phase.ctx
    fields = ctx.ledger.mapping_fields(ctx.pair, phase.object_type)
    if MappingChange.between(fields, field_fingerprints(phase.mapping.synced_fields())).differs:
        return "the mapping's synced fields changed"
    for side in SIDES:
        tracker = phase.tracker(side)
        if isinstance(tracker, InboxTracker):  # the cycle's hub read looked at the vendor
            if tracker.entries:
                return f"{side} records the hub routed to it"
            continue
        if not isinstance(tracker, CursorTracker):
            return f"the {side} CRM has no change feed (its run scans it)"
        if tracker.since is None:
            return f"the {side} side was never synced"
        if phase.extra_ids(side):
            return f"{side} records to read"
        for page in tracker.pages():
            if _asks_for_run(phase, side, page):
                return f"{side} records changed"
        census, counter = tracker.census, counts_records(ctx.connectors[side])
        if census is None or counter is None or not census.ready:
            return f"the {side} side cannot be counted (its run reads every link)"
        if census.linked_outside():
            return f"linked {side} records outside the count (its run reads them)"
        if counter.count(phase.object_type, census.rule) < census.expected():
            return f"fewer shared {side} records than the census (deleted or unshared)"
        if tracker.cursor is not None:
            read[(side, phase.object_type)] = tracker.cursor
    return None


def _asks_for_run(phase: Phase, side: Side, records: list[Record]) -> bool:
    """Whether changed records give a run something to do. A deal the run would leave as it is
    does not: linked, still shared, every field merged on every run as the link's base holds it
    (dealsync's own writes read back); unlinked and not shared with the pair (a private deal).
    Any note, and any record in quarantine, does."""
    if not records:
        return False
    if not isinstance(phase, DealPhase):
        return True
    ctx = phase.ctx
    ids = [r.id for r in records]
    links = {side_id(lk, side): lk for lk in ctx.ledger.links_for(ctx.pair, side, ids)}
    waiting = {e.record_id for e in ctx.ledger.open_quarantine(ctx.pair, side)}
    for record in records:
        link = links.get(record.id)
        if record.id in waiting or record.merged_from:
            return True
        if link is None:
            if phase.visible(side, record, (), False):
                return True
        elif not settled_deal(phase.mapping, ctx.pair, side, link, record.properties):
            return True
    return False
