"""Prefect artifacts of a run: a markdown summary and tables of changes, conflicts and quarantine."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from dealsync.outcomes import RunReport

MAX_ROWS = 500  # an artifact is for reading; the ledger keeps everything


def _key(partner_id: str, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return f"dealsync-{partner_id}-{what}".lower().replace("_", "-")


def publish_report(report: RunReport) -> None:
    """Publish what a run did as artifacts of the current flow run."""
    create_markdown_artifact(
        report_markdown(report),
        key=_key(report.pair, "summary"),
        description=f"dealsync run, partner {report.pair}",
    )
    if report.changes:
        rows = [
            {k: str(v) if v is not None else "" for k, v in change.items()}
            for change in report.changes[:MAX_ROWS]
        ]
        create_table_artifact(
            rows,
            key=_key(report.pair, "changes"),
            description=f"field changes written ({len(report.changes)})",
        )
    if report.conflicts:
        rows = [{k: str(v) for k, v in c.items()} for c in report.conflicts[:MAX_ROWS]]
        create_table_artifact(
            rows,
            key=_key(report.pair, "conflicts"),
            description="fields both sides changed, and who won",
        )
    if report.quarantined:
        rows = [
            {
                "side": q["side"],
                "record": q["record_id"],
                "stage": q["stage"],
                "reason": "; ".join(q["reasons"]),
                "retried": "next run" if q.get("waits_for") == "next run" else "on a change",
            }
            for q in report.quarantined[:MAX_ROWS]
        ]
        create_table_artifact(
            rows,
            key=_key(report.pair, "quarantine"),
            description="records kept out: a failure for now is retried by the next run, a "
            "refusal when the record or the mapping changes (or `dealsync quarantine retry`)",
        )


def report_markdown(report: RunReport) -> str:
    """The run summary as markdown (a Prefect artifact)."""
    lines = [
        f"# dealsync: partner `{report.pair}`"
        + (" (dry run)" if report.dry_run else f", run {report.run_id}"),
        "",
        "| | partner | vendor |",
        "|---|---:|---:|",
        f"| created | {report.created['partner']} | {report.created['vendor']} |",
        f"| updated | {report.updated['partner']} | {report.updated['vendor']} |",
        f"| deleted | {report.deleted['partner']} | {report.deleted['vendor']} |",
        "",
        f"Conflicts: {len(report.conflicts)} · quarantined: {len(report.quarantined)} · left quarantine: "
        f"{report.resolved} · API calls: {report.api_calls} · {report.seconds:.1f}s",
    ]
    if report.brake:
        lines += ["", f"**{report.brake}**"]
    if report.security:
        lines += ["", "**Security events** (held writes, refused keys):"]
        lines += [f"- {event}" for event in report.security]
    for q in report.quarantined:
        lines.append(
            f"- quarantined {q['side']} deal {q['record_id']} ({q['stage']}): {'; '.join(q['reasons'])}"
        )
    return "\n".join(lines)


def publish_batch(results: dict[str, Any]) -> None:
    """One table of a batch run without subflows: each partner's outcome in a row."""
    rows = []
    for partner_id, outcome in list(results.items())[:MAX_ROWS]:
        if not isinstance(outcome, dict):
            rows.append({"partner": partner_id, "outcome": str(outcome)})
            continue
        rows.append(
            {
                "partner": partner_id,
                "outcome": "completed",
                "created": _sides(outcome["created"]),
                "updated": _sides(outcome["updated"]),
                "deleted": _sides(outcome["deleted"]),
                "quarantined": str(outcome["quarantined"]),
                "conflicts": str(outcome["conflicts"]),
                "API calls": str(outcome["api_calls"]),
            }
        )
    create_table_artifact(
        rows,
        description=f"{len(results)} partners run in this batch (without a subflow each); a "
        "partner with quarantine, conflicts or held deletions also has its own artifacts",
    )


def _sides(counts: dict[str, int]) -> str:
    return f"partner {counts.get('partner', 0)}, vendor {counts.get('vendor', 0)}"
