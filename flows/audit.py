"""The nightly audit: a full reconciliation of every pair, reporting the drift it found and repaired."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from dealsync.config import load_config
from flows.sync import sync_partner


def _drift(summary: dict[str, Any]) -> int:
    """How many writes a full run needed: what incremental runs had missed."""
    return int(summary.get("writes", 0))


@flow(name="audit")
def audit(config_path: str | None = None) -> dict[str, Any]:
    """Compare both CRMs of every pair with the ledger, repair drift under the same rules, report it.

    Incremental runs read from cursors, so they can miss what does not change a modification time (an
    archived record, a deleted file, an edit that did not bump it) or anything behind a lost cursor. The
    audit runs every pair as a full resync and reports each write it needed as drift.

    Args:
        config_path: The config file (default: $DEALSYNC_CONFIG, else ./dealsync.yaml).
    """
    config = load_config(config_path)
    found: dict[str, Any] = {}
    lines = [
        "# dealsync audit",
        "",
        "| partner | drift repaired | quarantined | result |",
        "|---|---:|---:|---|",
    ]
    for partner in config.partners:
        state = sync_partner(
            partner.id, full_resync=True, config_path=config_path, return_state=True
        )
        if state.is_completed():
            summary = state.result()
            found[partner.id] = {"drift": _drift(summary), **summary}
            lines.append(
                f"| {partner.id} | {_drift(summary)} | {summary['quarantined']} | completed |"
            )
        else:
            found[partner.id] = {"result": f"{state.name}: {state.message}"}
            lines.append(f"| {partner.id} | - | - | {state.name}: {state.message} |")
    create_markdown_artifact(
        "\n".join(lines), key="dealsync-audit", description="nightly reconciliation"
    )
    return found
