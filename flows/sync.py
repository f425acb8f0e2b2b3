"""Prefect flows: one pair (`sync-partner`) and every pair (`sync-all-partners`, which runs the
partners with work in batches: `sync-partners`, flows/batch.py), over dealsync's steps."""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.utilities.annotations import quote

from dealsync.config import Config, load_config
from dealsync.context import open_context
from dealsync.ledger import Ledger
from dealsync.outcomes import RunReport
from dealsync.phases import deal_files, deals, notes
from dealsync.pipeline.hub_read import hub_step, read_for_cycle
from dealsync.probe import look_at_partners
from dealsync.run import run_pair
from flows.approval import ask_in_ui
from flows.batch import batch_results, sync_partners
from flows.pair_runs import ensure_pair_limit, finish_run, hold_pair, vendor_budget

SyncObject = Literal["deals", "notes", "files"]
ALL_OBJECTS: list[SyncObject] = ["deals", "notes", "files"]
START_ATTEMPTS = 5  # a Prefect API answering 503 under load is asked again, with backoff
BATCHES = 8  # flow runs a cycle spreads its partners with work over (each a process on a worker)


def _transient_api_error(exc: BaseException) -> bool:
    """A 5xx from the Prefect API: worth asking again."""
    return isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code >= 500


def _task(fn, name: str, io: bool = False):
    """A task over a dealsync step; retries only where the step reads (safe to repeat)."""
    if io:
        return task(fn, name=name, retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
    return task(fn, name=name, cache_policy=NO_CACHE)


# Each step of a run as a Prefect task; the steps that only read retry (safe to repeat).
STEP_TASKS = {
    deals.pull: _task(deals.pull, "pull", io=True),
    deals.validate: _task(deals.validate, "validate"),
    deals.plan: _task(deals.plan, "plan", io=True),
    deals.push: _task(deals.push, "push"),
    deals.commit: _task(deals.commit, "commit"),
    notes.pull: _task(notes.pull, "pull-notes", io=True),
    notes.read_files: _task(notes.read_files, "read-files", io=True),
    notes.validate: _task(notes.validate, "validate-notes"),
    notes.plan: _task(notes.plan, "plan-notes", io=True),
    notes.push: _task(notes.push, "push-notes"),
    notes.commit: _task(notes.commit, "commit-notes"),
    deal_files.sync_deal_files: _task(deal_files.sync_deal_files, "sync-deal-files"),
    hub_step: _task(hub_step, "read-vendor-hub", io=True),
}


def _as_task(step, *args):
    # Quoted: Prefect would otherwise walk every record of a step's inputs looking for futures
    # (2.4 million visits in a 2,000-deal first sync, three quarters of its CPU). Steps take plain
    # values, never futures, so nothing is lost but the dependency arrows in the UI's graph.
    return STEP_TASKS[step](*(quote(arg) for arg in args))


def _progress_reporter(partner_id: str):
    """A progress artifact updated while a run pushes its writes."""
    key = f"dealsync-{partner_id}-progress".lower().replace("_", "-")
    artifact_id = create_progress_artifact(
        0.0, key=key, description=f"dealsync push progress, partner {partner_id}"
    )

    def report(what: str, done: int, total: int) -> None:
        update_progress_artifact(
            artifact_id,
            100.0 * done / total if total else 100.0,
            description=f"{what}: {done}/{total}",
        )

    return report


@flow(name="sync-partner", log_prints=True)
def sync_partner(
    partner_id: str,
    dry_run: bool = False,
    full_resync: bool = False,
    objects: list[SyncObject] = ALL_OBJECTS,
    allow_mass_deletion: bool = False,
    config_path: str | None = None,
    after_running: bool = False,
    vendor_read_since_ms: int | None = None,
) -> dict[str, Any]:
    """Sync one partner's shared deals, notes and files with the vendor CRM.

    Args:
        partner_id: The partner's id, as in dealsync.yaml (e.g. acme).
        dry_run: Compute and report the plan; write nothing to either CRM or the ledger.
        full_resync: Ignore the cursors and compare every record (finds drift incremental runs miss).
        objects: What to sync: deals, notes (shared notes and comments), files (attachments of notes,
            or of deals for a BottleCRM partner; they need notes too).
        allow_mass_deletion: Release the deletion brake for this run.
        config_path: The config file (default: $DEALSYNC_CONFIG, else ./dealsync.yaml).
        after_running: For runs woken by a change (webhooks): when a run of this partner is going,
            wait for it and run after it; when another woken run already waits, return at once.
        vendor_read_since_ms: Set by sync-all-partners (leave empty): the time of its read of the
            vendor for every partner, which this run uses instead of reading the vendor again.
    """
    config = load_config(config_path)
    config.partner(partner_id)  # a clear error for an unknown partner, before anything else
    if "files" in objects and "notes" not in objects:
        raise ValueError(
            f"objects={list(objects)}: files travel with shared notes, so syncing files needs notes "
            "too; run with objects=['notes', 'files'] (or add deals)"
        )
    ensure_pair_limit(partner_id)
    ledger = Ledger.open(config.ledger_url)

    def attempt() -> RunReport:
        with ExitStack() as held:
            hold_pair(partner_id, held, after_running)
            ctx = open_context(
                config,
                partner_id,
                ledger,
                dry_run,
                full_resync,
                allow_mass_deletion,
                progress=None if dry_run else _progress_reporter(partner_id),
                objects=frozenset(objects),
                approver=ask_in_ui,
                hub_since_ms=vendor_read_since_ms,
            )
            with vendor_budget(config):
                return run_pair(ctx, call=_as_task)

    try:
        return finish_run(partner_id, attempt)
    finally:
        ledger.close()


def _read_vendor_once(config: Config) -> int | None:
    """One read of the vendor for every partner the hub serves (their runs use it)."""
    ledger = Ledger.open(config.ledger_url)
    started = time.monotonic()
    try:
        with vendor_budget(config):
            since = read_for_cycle(config, ledger)
    finally:
        ledger.close()
    if since is not None:
        get_run_logger().info(
            "read the vendor once for every partner in %.1f s", time.monotonic() - started
        )
    return since


def _nothing_new(config: Config) -> list[str]:
    """The partners whose CRMs show nothing new since their last run, looked at side by side
    (within the vendor's shared budget), after the cycle's read of the vendor."""
    ledger = Ledger.open(config.ledger_url)
    started = time.monotonic()
    try:
        with vendor_budget(config):
            looks = look_at_partners(config, ledger)
    finally:
        ledger.close()
    quiet = [look.partner for look in looks if look.reason is None]
    get_run_logger().info(
        "%d of %d partners had nothing new (%d API calls to tell, %.1f s); starting the others",
        len(quiet),
        len(config.partners),
        sum(look.calls for look in looks),
        time.monotonic() - started,
    )
    return quiet


@flow(name="sync-all-partners")
def sync_all_partners(
    dry_run: bool = False,
    full_resync: bool = False,
    fan_out: bool = True,
    config_path: str | None = None,
    look_first: bool = True,
    batches: int = BATCHES,
    subflows: bool = True,
) -> dict[str, Any]:
    """Sync every configured partner.

    Args:
        dry_run: Plan and report only.
        full_resync: Compare every record instead of reading from the cursors.
        fan_out: Start the batches as sync-partners deployment runs, so workers run them in
            parallel; when false (or when that deployment does not exist), run them here in turn.
        config_path: The config file (default: $DEALSYNC_CONFIG, else ./dealsync.yaml).
        look_first: Start no run for a partner whose CRMs show nothing new since its last run (checked
            with what a quiet run reads); dry and full runs always run.
        batches: How many flow runs the partners with work are spread over (each a process on a
            worker, running its partners in turn): twice the workers keeps every worker busy.
        subflows: Each partner of a batch a subflow of its own (true), or plain calls reported in
            one table per batch (false): about a fifth of the CPU a partner, for large programmes.
    """
    config = load_config(config_path)
    results: dict[str, Any] = {}
    unstarted: list[str] = []
    read_since = None if dry_run or full_resync else _read_vendor_once(config)
    quiet = _nothing_new(config) if look_first and not (dry_run or full_resync) else []
    results.update({p: "nothing new since its last run: not started" for p in quiet})
    work = [p.id for p in config.partners if p.id not in set(quiet)]
    for batch in split_into(work, batches):
        parameters = {
            "partner_ids": batch,
            "dry_run": dry_run,
            "full_resync": full_resync,
            "config_path": config_path,
            "vendor_read_since_ms": read_since,
            "subflows": subflows,
        }
        if fan_out:
            try:
                run = _start_run("sync-partners/sync-partners", parameters)
                results.update({p: f"started in flow run {run.id}" for p in batch})
                continue
            except ObjectNotFound:
                fan_out = False
            except PrefectHTTPStatusError as exc:  # the API kept refusing: start the others
                results.update({p: f"not started: {exc}" for p in batch})
                unstarted += batch
                continue
        state = sync_partners(**parameters, return_state=True)
        results.update(batch_results(state) or dict.fromkeys(batch, state.message))
    if unstarted:
        raise RuntimeError(
            f"the Prefect API refused to start the runs of {', '.join(unstarted)} (the others "
            f"started): {results}. Their next scheduled cycle starts them; or run sync-partner "
            "for each now."
        )
    return results


def split_into(partners: list[str], batches: int) -> list[list[str]]:
    """The partners dealt into at most `batches` batches of nearly equal size."""
    count = max(1, min(batches, len(partners)))
    return [partners[n::count] for n in range(count) if partners[n::count]]


def _start_run(deployment: str, parameters: dict[str, Any]) -> Any:
    """Start a deployment run; a busy API (5xx) is asked again."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return run_deployment(deployment, parameters=parameters, timeout=0)
        except PrefectHTTPStatusError as exc:
            if not _transient_api_error(exc) or attempt == START_ATTEMPTS:
                raise
            time.sleep(min(2**attempt, 10))
    raise AssertionError("unreachable")
