"""Prefect flows: one pair (`sync_partner`) and every pair (`sync_all_partners`), over dealsync's steps."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from dealsync import engine, note_engine
from dealsync.config import load_config
from dealsync.ledger import Ledger
from dealsync.report import report_markdown

# Retries only where there is I/O that is safe to repeat: reading the CRMs.
STEP_TASKS = {
    engine.pull: task(
        engine.pull, name="pull", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE
    ),
    engine.validate: task(engine.validate, name="validate", cache_policy=NO_CACHE),
    engine.plan_run: task(
        engine.plan_run, name="plan", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE
    ),
    engine.push: task(engine.push, name="push", cache_policy=NO_CACHE),
    engine.commit: task(engine.commit, name="commit", cache_policy=NO_CACHE),
    note_engine.pull_notes: task(
        note_engine.pull_notes,
        name="pull-notes",
        retries=2,
        retry_delay_seconds=10,
        cache_policy=NO_CACHE,
    ),
    note_engine.read_files: task(
        note_engine.read_files,
        name="read-files",
        retries=2,
        retry_delay_seconds=10,
        cache_policy=NO_CACHE,
    ),
    note_engine.plan_notes: task(note_engine.plan_notes, name="plan-notes", cache_policy=NO_CACHE),
    note_engine.push_notes: task(note_engine.push_notes, name="push-notes", cache_policy=NO_CACHE),
    note_engine.commit_notes: task(
        note_engine.commit_notes, name="commit-notes", cache_policy=NO_CACHE
    ),
}


def _as_task(step, *args):
    return STEP_TASKS[step](*args)


@flow(name="sync-partner", log_prints=True)
def sync_partner(
    partner_id: str,
    dry_run: bool = False,
    full_resync: bool = False,
    allow_mass_deletion: bool = False,
    config_path: str | None = None,
) -> dict[str, Any]:
    """Sync one partner's shared deals with the vendor CRM.

    Args:
        partner_id: The partner's id in dealsync.yaml.
        dry_run: Compute and report the plan; write nothing to either CRM or the ledger.
        full_resync: Ignore cursors and compare every record.
        allow_mass_deletion: Release the deletion brake for this run.
        config_path: Config file (default: $DEALSYNC_CONFIG or ./dealsync.yaml).
    """
    config = load_config(config_path)
    ledger = Ledger(config.ledger_url)
    ledger.migrate()
    try:
        ctx = engine.open_context(
            config, partner_id, ledger, dry_run, full_resync, allow_mass_deletion
        )
        report = engine.run_pair(ctx, call=_as_task)
    finally:
        ledger.close()
    key = f"dealsync-{partner_id}".lower().replace("_", "-")
    create_markdown_artifact(
        report_markdown(report), key=key, description=f"dealsync run for {partner_id}"
    )
    get_run_logger().info("partner %s: %s", partner_id, report.summary())
    return report.summary()


@flow(name="sync-all-partners")
def sync_all_partners(
    dry_run: bool = False, full_resync: bool = False, config_path: str | None = None
) -> dict[str, Any]:
    """Sync every configured partner; one partner's failure does not stop the others."""
    config = load_config(config_path)
    results: dict[str, Any] = {}
    for partner in config.partners:
        state = sync_partner(
            partner.id, dry_run, full_resync, False, config_path, return_state=True
        )
        results[partner.id] = state.result() if state.is_completed() else f"failed: {state.message}"
    return results
