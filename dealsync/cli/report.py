"""Readable run reports and plans for the terminal (rich) and for Prefect artifacts (markdown)."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from dealsync.model import Plan
from dealsync.note_model import NotePlan
from dealsync.outcomes import RunReport


def plan_table(plan: Plan, title: str) -> Table:
    """Every write a plan intends, one row each (values are CRM users' text: never rich markup)."""
    table = Table(title=title, title_justify="left")
    for column in ("action", "side", "record", "what"):
        table.add_column(column)
    for create in plan.creates:
        fields = ", ".join(f"{k}={v!r}" for k, v in sorted(create.properties.items()))
        table.add_row(
            "create",
            create.target,
            f"from {create.source_id}",
            Text(f"{fields}; owner: {create.owner_note or '-'}"),
        )
    for update in plan.updates:
        changes = ", ".join(f"{c.field}: {c.old!r} -> {c.new!r}" for c in update.changes)
        table.add_row("update", update.target, update.record_id, Text(changes))
    for delete in plan.deletes:
        table.add_row(
            delete.action,
            "vendor" if delete.source == "partner" else "partner",
            delete.target_id,
            f"deleted on the {delete.source} side",
        )
    for adopt in plan.adopts:
        table.add_row(
            "adopt",
            "both",
            f"{adopt.partner_id} <-> {adopt.vendor_id}",
            "twin found by its key; linked without writing",
        )
    for conflict in plan.conflicts:
        table.add_row(
            "conflict",
            conflict.winner,
            str(conflict.link_id),
            Text(
                f"{conflict.field}: base {conflict.base!r}, partner {conflict.partner!r}, vendor {conflict.vendor!r} -> {conflict.rule} rule"
            ),
        )
    if not table.rows:
        table.add_row("-", "-", "-", "nothing to write")
    return table


def note_plan_table(plan: NotePlan) -> Table:
    """The notes a dry run would write."""
    table = Table(title="Notes plan (nothing was written)", title_justify="left")
    for column in ("action", "side", "note", "what"):
        table.add_column(column)
    for create in plan.creates:
        files = f", {len(create.files)} file(s)" if create.files else ""
        table.add_row(
            "create", create.target, f"from {create.source_id}", f"on deal {create.deal_id}{files}"
        )
    for update in plan.updates:
        table.add_row("update", update.target, update.record_id, ", ".join(update.changed))
    for delete in plan.deletes:
        table.add_row(
            delete.action,
            "vendor" if delete.source == "partner" else "partner",
            delete.target_id,
            f"deleted on the {delete.source} side",
        )
    if not table.rows:
        table.add_row("-", "-", "-", "nothing to write")
    return table


def report_renderable(report: RunReport, show_plan: bool = False) -> Group:
    """The run summary, plus quarantine, notes and (for dry runs) the plan."""
    title = f"Partner {report.pair}: " + (
        "dry run, nothing written" if report.dry_run else f"run {report.run_id}"
    )
    summary = Table(title=title, title_justify="left")
    for column in ("", "partner", "vendor"):
        summary.add_column(column, justify="right" if column else "left")
    summary.add_row(
        "changed records pulled",
        str(report.pulled.get("partner changed", 0)),
        str(report.pulled.get("vendor changed", 0)),
    )
    summary.add_row(
        "relevant to this pair",
        str(report.pulled.get("partner relevant", 0)),
        str(report.pulled.get("vendor relevant", 0)),
    )
    summary.add_row("created", str(report.created["partner"]), str(report.created["vendor"]))
    summary.add_row("updated", str(report.updated["partner"]), str(report.updated["vendor"]))
    summary.add_row("deleted", str(report.deleted["partner"]), str(report.deleted["vendor"]))
    parts: list[RenderableType] = [summary]
    facts = [
        f"conflicts resolved: {len(report.conflicts)}",
        f"quarantined: {len(report.quarantined)}",
        f"left quarantine: {report.resolved}",
        f"twins adopted: {report.adopted}",
        *(
            [f"active registrations: {report.active_registrations}"]
            if report.active_registrations is not None
            else []
        ),
        *(f"{k}: {v}" for k, v in report.notes.items() if isinstance(v, int) and v),
        f"API calls: {report.api_calls}",
        f"{report.seconds:.2f}s",
    ]
    parts.append(Text(" | ".join(facts)))
    if report.brake:
        parts.append(Text(report.brake, style="bold red"))
    for event in report.security:
        parts.append(Text(f"security: {event}", style="bold red"))
    if report.conflicts:
        conflicts = Table(title="Conflicts (both sides changed a field)", title_justify="left")
        for column in ("field", "base", "partner", "vendor", "rule", "winner"):
            conflicts.add_column(column)
        for c in report.conflicts:
            conflicts.add_row(
                c["field"],
                Text(repr(c.get("base"))),
                Text(repr(c.get("partner"))),
                Text(repr(c.get("vendor"))),
                c["rule"],
                c["winner"],
            )
        parts.append(conflicts)
    if report.quarantined:
        quarantine = Table(
            title="Quarantined (a failure for now is retried by the next run; a refusal waits for "
            "a change of the record or the mapping, or `dealsync quarantine retry`)",
            title_justify="left",
        )
        for column in ("side", "record", "stage", "reason", "retried"):
            quarantine.add_column(column)
        for q in report.quarantined:
            # Reasons quote what CRM users typed: shown as text, never read as rich markup.
            quarantine.add_row(
                q["side"],
                Text(q["record_id"]),
                q["stage"],
                Text("; ".join(q["reasons"])),
                "next run" if q.get("waits_for", "next run") == "next run" else "on a change",
            )
        parts.append(quarantine)
    for note in report.messages:
        parts.append(Text(f"note: {note}", style="yellow"))
    note_plan = report.notes.get("plan")
    if show_plan and note_plan is not None:
        parts.append(note_plan_table(note_plan))
    if show_plan and report.plan is not None:
        title = "Plan (nothing was written)" if report.dry_run else "What this run wrote"
        parts.append(plan_table(report.plan, title))
    return Group(*parts)


def print_report(console: Console, report: RunReport, show_plan: bool = False) -> None:
    """Print a run report."""
    console.print(report_renderable(report, show_plan))
