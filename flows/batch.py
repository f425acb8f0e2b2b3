"""Many partners in one flow run: a cycle runs the partners that have work in batches, so a process
start (seconds of CPU) is paid per batch, not per partner. Each partner in a batch is still a run of
its own in the Prefect UI: a subflow with its lease, its report artifacts, and its failure kept from
the others; its steps run as plain calls (no task bookkeeping per step).

A subflow costs Prefect about half a CPU-second (its states, logs and artifacts, on the worker and
the server) where the run itself costs a tenth: with `subflows=False` a batch runs its partners as
plain calls instead, each still under its lease, its failure still kept from the others, and reports
them in one table artifact (a partner's own artifacts only where there is something to look at)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger
from prefect.settings import temporary_settings
from prefect.states import Failed, State

from dealsync.config import Config, load_config
from dealsync.context import open_context
from dealsync.ledger import Ledger
from dealsync.ledger.lease import PairBusy
from dealsync.outcomes import RunReport
from dealsync.run import run_pair
from flows.approval import ask_in_ui
from flows.artifacts import publish_batch, publish_report
from flows.pair_runs import (
    AlreadyFollowing,
    ensure_pair_limits,
    finish_run,
    held_too_long,
    hold_pair,
    hold_pairs,
    pairs_in_use,
    vendor_budget,
)


class BatchFailed(Exception):
    """Some runs of a batch failed (the others completed); what each partner's run did."""

    def __init__(self, message: str, results: dict[str, Any]) -> None:
        super().__init__(message, results)  # both in args: a pickled copy is made from them
        self.results = results

    def __str__(self) -> str:
        return str(self.args[0])


PAIRS_HELD_TOGETHER = 10  # a batch takes the Prefect slots of this many pairs in one lease


@dataclass(frozen=True)
class _Batch:
    """What a batch's runs share: the config, loaded once, one ledger, the pair slots it holds."""

    config: Config
    ledger: Ledger
    held: set[str] = field(default_factory=set)  # partners whose pair slot the batch holds now


@dataclass(frozen=True)
class _RunOptions:
    """How a batch runs each of its partners (the batch's parameters)."""

    dry_run: bool = False
    full_resync: bool = False
    vendor_read_since_ms: int | None = None
    after_running: bool = False


_batch: ContextVar[_Batch | None] = ContextVar("dealsync_batch", default=None)


@contextmanager
def _shared(config_path: str | None) -> Iterator[_Batch]:
    config = load_config(config_path)
    ledger = Ledger.open(config.ledger_url)
    batch = _Batch(config, ledger)
    token = _batch.set(batch)
    try:
        yield batch
    finally:
        _batch.reset(token)
        ledger.close()


@flow(name="sync-partner-in-batch", flow_run_name="{partner_id}")
def sync_partner_in_batch(
    partner_id: str,
    dry_run: bool = False,
    full_resync: bool = False,
    config_path: str | None = None,
    vendor_read_since_ms: int | None = None,
    after_running: bool = False,
) -> dict[str, Any] | State:
    """One partner of a `sync-partners` batch (its parameters are the batch's)."""
    batch = _batch.get()
    if batch is None:  # started by itself: load what a batch would have shared
        with _shared(config_path):
            return sync_partner_in_batch.fn(
                partner_id, dry_run, full_resync, config_path, vendor_read_since_ms, after_running
            )

    options = _RunOptions(dry_run, full_resync, vendor_read_since_ms, after_running)
    return finish_run(partner_id, lambda: _run_one(batch, partner_id, options))


@contextmanager
def _holding(batch: _Batch, partner_ids: list[str], take: bool) -> Iterator[None]:
    """The pair slots of several partners taken at once for their runs, when none is taken (else
    each run takes its own)."""
    with ExitStack() as held:
        if take and hold_pairs(partner_ids, held):
            batch.held.update(partner_ids)
        try:
            yield
        finally:
            batch.held.clear()


def _run_one(
    batch: _Batch,
    partner_id: str,
    options: _RunOptions,
) -> RunReport:
    """One partner's run in a batch, under its pair's Prefect limit (as a subflow or not)."""
    with ExitStack() as held:
        if partner_id not in batch.held:
            hold_pair(partner_id, held, options.after_running)
        ctx = open_context(
            batch.config,
            partner_id,
            batch.ledger,
            options.dry_run,
            options.full_resync,
            approver=ask_in_ui,
            hub_since_ms=options.vendor_read_since_ms,
        )
        return run_pair(ctx)


def _run_inline(
    batch: _Batch,
    partner_id: str,
    options: _RunOptions,
) -> tuple[Any, bool]:
    """One partner of a batch without a subflow: its summary (or why it did nothing, or failed)
    and whether it did not fail; its own artifacts only when something in it needs a person."""
    logger = get_run_logger()
    try:
        report = _run_one(batch, partner_id, options)
    except AlreadyFollowing as exc:
        logger.info(str(exc))
        return f"Completed: {exc}", True
    except (PairBusy, TimeoutError) as exc:
        message = str(exc) if isinstance(exc, PairBusy) else held_too_long(partner_id)
        logger.warning(message)
        return f"Cancelled: {message}", True
    except Exception as exc:  # one partner's failure is its own: the batch goes on
        logger.error("partner %s: run failed", partner_id, exc_info=True)
        return f"Failed: {type(exc).__name__}: {exc}", False
    if report.quarantined or report.conflicts or report.brake:
        publish_report(report)
    logger.info("partner %s: %s", partner_id, report.summary())
    return report.summary(), True


def _in_subflow(
    batch: _Batch,
    partner_id: str,
    options: _RunOptions,
) -> tuple[Any, bool]:
    """One partner of a batch as a subflow: its summary (or its state) and whether it did not fail."""
    state = sync_partner_in_batch(
        partner_id,
        options.dry_run,
        options.full_resync,
        str(batch.config.path),
        options.vendor_read_since_ms,
        options.after_running,
        return_state=True,
    )
    if state.is_completed():
        return state.result(raise_on_failure=False), True
    return f"{state.name}: {state.message}", not (state.is_failed() or state.is_crashed())


@flow(name="sync-partners")
def sync_partners(
    partner_ids: list[str],
    dry_run: bool = False,
    full_resync: bool = False,
    config_path: str | None = None,
    vendor_read_since_ms: int | None = None,
    subflows: bool = True,
    after_running: bool = False,
) -> dict[str, Any] | State:
    """Sync several partners in one flow run, one after another, each a subflow of its own.

    Args:
        partner_ids: The partners, as in dealsync.yaml.
        dry_run: Plan and report only.
        full_resync: Compare every record instead of reading from the cursors.
        config_path: The config file (default: $DEALSYNC_CONFIG, else ./dealsync.yaml).
        vendor_read_since_ms: Set by sync-all-partners: the time of its read of the vendor for every
            partner, which these runs use instead of reading the vendor again.
        subflows: Each partner a subflow of its own (true); false: plain calls reported in one
            table, for programmes whose cycles Prefect's per-run cost would slow down.
        after_running: For partners woken by a change (webhooks): the partners no run holds go
            first; each of the others waits for its running run and runs after it (or returns at
            once when another woken run already waits).
    """
    logger = get_run_logger()
    results: dict[str, Any] = {}
    failed: list[str] = []
    with _shared(config_path) as batch:
        for partner_id in partner_ids:
            batch.config.partner(partner_id)  # an unknown partner stops the batch before any run
        ensure_pair_limits(partner_ids)
        if after_running:  # a partner behind a running run waits at the end, holding up no other
            busy = pairs_in_use(partner_ids)
            partner_ids = sorted(partner_ids, key=lambda p: p in busy)
        # The batch's own heartbeat speaks for its subflows: each would otherwise start a thread
        # and wait for it at its end (half a second a partner, 60 s in a batch of 125).
        with vendor_budget(batch.config), temporary_settings({"flows.heartbeat_frequency": None}):
            run = _in_subflow if subflows else _run_inline
            options = _RunOptions(dry_run, full_resync, vendor_read_since_ms, after_running)
            # A woken batch takes each pair's slot as its run starts (it may wait behind a run).
            together = 1 if after_running else PAIRS_HELD_TOGETHER
            for start in range(0, len(partner_ids), together):
                chunk = partner_ids[start : start + together]
                with _holding(batch, chunk, take=not after_running):
                    for partner_id in chunk:
                        results[partner_id], ok = run(batch, partner_id, options)
                        if not ok:
                            failed.append(partner_id)
            if not subflows:
                publish_batch(results)
    logger.info("%d of %d partners completed", len(partner_ids) - len(failed), len(partner_ids))
    if failed:
        message = (
            f"the runs of {', '.join(failed)} failed (each run's state says why); the other "
            f"{len(partner_ids) - len(failed)} partners of this batch completed"
        )
        return Failed(message=message, data=BatchFailed(message, results))
    return results


def batch_results(state: State) -> dict[str, Any]:
    """What a finished batch did, by partner, whether it completed or some of its runs failed."""
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BatchFailed):
        return outcome.results
    return outcome if state.is_completed() and isinstance(outcome, dict) else {}
