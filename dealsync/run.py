"""One run of one pair, top to bottom: for deals, then their notes, then the files of their deals, the
steps of ARCHITECTURE.md: 1 pull, 2-3 validate and map, 4 plan, 5 push, 6 commit.

Each step is a function of its object's phase (`dealsync/phases/`), built on the shared steps of
`dealsync/pipeline/`. `run_pair(ctx, call)` runs them in order; a Prefect flow passes `call` to run each
step as a task. A dry run stops after planning and writes nothing anywhere.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

from connectors.errors import ConnectorError
from dealsync.approvals import settle_held
from dealsync.context import RunContext
from dealsync.heap import settled_state
from dealsync.ledger.lease import PairLease
from dealsync.model import Link, Welcome, other
from dealsync.notify import send
from dealsync.outcomes import NotesSummary, RunReport, skipped
from dealsync.phases import deal_files, deals, notes
from dealsync.phases.deals import DealPhase, DealsDone
from dealsync.phases.note_phase import NotePhase
from dealsync.phases.notes import NotesDone
from dealsync.pipeline.checking import Checked
from dealsync.pipeline.hub_read import hub_step
from dealsync.pipeline.reading import Pulled
from dealsync.tracking import active_registrations, report_registrations

Step = Callable[..., Any]


def run_pair(ctx: RunContext, call: Callable[..., Any] | None = None) -> RunReport:
    """One run of one pair, step by step (one run of a pair at a time: its lease in the ledger)."""
    step: Step = call or (lambda fn, *args: fn(*args))
    if ctx.dry_run:
        return _run(ctx, step)
    with PairLease(ctx.ledger, ctx.pair, ttl_s=ctx.config.lease_seconds) as lease:
        ctx.lease = lease
        for connector in ctx.connectors.values():
            connector.guard_writes(lease.check)  # a run that lost its pair writes nothing more
        try:
            return _run(ctx, step)
        finally:
            for connector in ctx.connectors.values():
                connector.guard_writes(None)
            ctx.lease = None


def _run(ctx: RunContext, step: Step) -> RunReport:
    started = time.monotonic()
    report = RunReport(ctx.pair, None, ctx.dry_run)
    if not ctx.dry_run:
        ctx.run_id = report.run_id = ctx.ledger.start_run(ctx.pair, ctx.dry_run, ctx.full_resync)
    try:
        if ctx.hub_since_ms is None:
            ctx.hub_since_ms = int(time.time() * 1000)  # the vendor as it is now, at least
        step(hub_step, ctx)  # 0. the vendor, read once for every pair the hub serves
        new_deals: list[Link] = []
        welcome: list[Welcome] = []
        if "deals" in ctx.objects:
            new_deals, welcome = _deals(ctx, step, report)
        if ctx.notes_mapping is not None and "notes" in ctx.objects:
            _notes(ctx, step, report, new_deals, welcome)
        if not ctx.dry_run:
            _track_and_notify(ctx, report)
    except Exception as exc:
        if ctx.run_id is not None:
            ctx.ledger.finish_run(ctx.run_id, "failed", {}, f"{type(exc).__name__}: {exc}")
        raise
    report.api_calls = sum(connector.calls for connector in ctx.connectors.values())
    report.messages += [n for connector in ctx.connectors.values() for n in connector.notices]
    report.seconds = time.monotonic() - started
    if ctx.run_id is not None:
        ctx.ledger.finish_run(ctx.run_id, "completed", report.summary())
    return report


def _deals(ctx: RunContext, step: Step, report: RunReport) -> tuple[list[Link], list[Welcome]]:
    """The deals: registrations, conversions, the shared fields of linked deals."""
    phase = DealPhase(ctx)
    pulled = step(deals.pull, phase)  # 1. pull
    with settled_state():
        checked = step(deals.validate, phase, pulled)  # 2-3. validate and map
        plan = step(deals.plan, phase, pulled, checked)  # 4. plan
    report.pulled, report.plan = pulled.counts, plan
    report.messages += _mapping_message(ctx, pulled)
    if not ctx.dry_run:  # held deletions wait in the ledger for a person (asked now, if one can be)
        settle_held(ctx.ledger, ctx.pair, phase.object_type, plan, ctx.approver)
    if ctx.dry_run:
        _preview_deals(report, checked, plan)
        return [], []
    pushed = step(deals.push, phase, pulled, plan)  # 5. push
    done: DealsDone = step(deals.commit, phase, pulled, checked, plan, pushed)  # 6. commit
    recorded = done.recorded
    report.created, report.updated, report.deleted = (
        recorded.created,
        recorded.updated,
        recorded.deleted,
    )
    report.adopted, report.resolved = recorded.adopted, recorded.resolved
    report.conflicts, report.changes = recorded.conflicts, recorded.changes
    report.quarantined = [q.row() for q in recorded.quarantined]
    report.events += recorded.events
    report.messages += recorded.messages
    report.brake = plan.brake_reason
    return recorded.new_links, done.welcome


def _mapping_message(ctx: RunContext, pulled: Pulled) -> list[str]:
    """What the run says of a mapping whose synced fields changed since the last commit."""
    change = pulled.mapping_change
    if change is None or not change.differs:
        return []
    return [f"{pulled.object_type}: {change.describe(pulled.backfilled, ctx.dry_run)}"]


def _preview_deals(report: RunReport, checked: Checked, plan: Any) -> None:
    """What a dry run shows of the deals: the plan, and what would be quarantined."""
    for create in plan.creates:
        report.created[create.target] += 1
    for update in plan.updates:
        report.updated[update.target] += 1
    for delete in plan.deletes:
        if delete.action != "unlink":
            report.deleted[other(delete.source)] += 1
    report.adopted = len(plan.adopts)
    report.conflicts = [
        {k: getattr(c, k) for k in ("field", "base", "partner", "vendor", "rule", "winner")}
        for c in plan.conflicts
    ]
    report.quarantined = [q.row() for q in [*checked.quarantined, *skipped(plan.skips)]]
    report.messages += list(plan.notes)
    report.brake = plan.brake_reason


def _notes(
    ctx: RunContext, step: Step, report: RunReport, new_deals: list[Link], welcome: list[Welcome]
) -> None:
    """The shared notes and comments of the pair's shared deals, their files, and the files of a
    CRM that keeps them on the deal."""
    phase = NotePhase(ctx, new_deals, welcome)
    summary = report.notes_summary = NotesSummary()
    with tempfile.TemporaryDirectory(prefix="dealsync-files-") as folder:
        pulled: Pulled = step(notes.pull, phase)  # 1. pull
        files = step(notes.read_files, phase, pulled, folder)
        checked = step(notes.validate, phase, pulled)  # 2-3. validate and map
        plan = step(notes.plan, phase, pulled, checked, files)  # 4. plan
        report.messages += _mapping_message(ctx, pulled)
        if ctx.dry_run:
            for create in plan.creates:
                summary.created[create.target] += 1
            summary.updated["partner"] = len(plan.updates)
            summary.deleted["partner"] = len(plan.deletes)
            summary.quarantined = [*files.quarantined, *checked.quarantined]
            summary.preview = plan
        else:
            pushed = step(notes.push, phase, pulled, plan, files)  # 5. push
            done: NotesDone = step(notes.commit, phase, pulled, checked, plan, pushed, files)  # 6.
            _add_notes(report, summary, done)
        if "files" in ctx.objects and phase.mapping.attachments("partner") is None:
            _add_deal_files(report, summary, step(deal_files.sync_deal_files, ctx, pulled, folder))


def _add_notes(report: RunReport, summary: NotesSummary, done: NotesDone) -> None:
    recorded = done.recorded
    summary.created, summary.updated, summary.deleted = (
        recorded.created,
        recorded.updated,
        recorded.deleted,
    )
    summary.files_copied, summary.files_deleted = done.files_copied, done.files_deleted
    summary.quarantined = list(recorded.quarantined)
    summary.resolved, summary.conflicts = recorded.resolved, len(recorded.conflicts)
    report.events += recorded.events
    report.messages += recorded.messages


def _add_deal_files(report: RunReport, summary: NotesSummary, done: deal_files.FilesDone) -> None:
    if done.to_copy is not None:
        summary.files_to_copy, summary.files_to_delete = done.to_copy, done.to_delete
        return
    summary.files_copied += done.copied
    summary.files_deleted += done.deleted
    summary.quarantined += done.quarantined
    summary.resolved += done.resolved
    report.events += done.events
    if done.brake:
        report.messages.append(done.brake)


def _track_and_notify(ctx: RunContext, report: RunReport) -> None:
    """Report the active registration count on the vendor side and notify the pair's recipients."""
    report.active_registrations = active_registrations(ctx.ledger, ctx.pair)
    try:
        report_registrations(ctx)
    except (ConnectorError, RuntimeError) as exc:
        report.messages.append(f"the registration count was not written: {exc}")
    report.messages += send(ctx.partner.notify, f"dealsync: partner {ctx.pair}", report.events)
