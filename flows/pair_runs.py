"""What every flow that runs a pair shares: the pair's Prefect limits (two runs of a pair never
overlap; one woken run may wait behind the running one), the vendor's budget shared by every run on
every worker, and how a run's outcome becomes the flow run's result or state."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any

import httpx
from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Completed, Failed, State

from dealsync.config import Config
from dealsync.ledger.fencing import LeaseLost
from dealsync.ledger.lease import PairBusy
from dealsync.outcomes import RunReport
from flows.artifacts import publish_report
from flows.rate_budget import shared_budget

PAIR_LIMIT_WAIT_S = 30.0
FOLLOW_UP_WAIT_S = 3600.0  # a run woken by a change waits this long for the pair's running one
# A pair's Prefect slot is leased for Prefect's shortest term and renewed while its run goes: a
# host cut off (or a server gone) for longer gives it up, so the pair can be taken over. The
# ledger's fenced lease is what keeps runs apart; a failed renewal therefore never stops a run.
SLOT_LEASE_S = 60.0


def pair_limit_name(partner_id: str) -> str:
    """The Prefect global concurrency limit that keeps two runs of one pair apart."""
    return f"dealsync-pair-{partner_id}"


def follow_up_limit_name(partner_id: str) -> str:
    """The limit that lets one woken run of a pair wait behind the running one (and no second)."""
    return f"dealsync-pair-{partner_id}-next"


def ensure_pair_limit(partner_id: str) -> None:
    """Create the pair's limits (1 slot each) if they do not exist yet; strict acquisition needs them."""
    with get_client(sync_client=True) as client:
        for name in (pair_limit_name(partner_id), follow_up_limit_name(partner_id)):
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )


def _pair_limits(client: SyncPrefectClient) -> dict[str, int]:
    """Every global concurrency limit's active slots, by name (listed a page of 200 at a time)."""
    active: dict[str, int] = {}
    while True:
        page = client.read_global_concurrency_limits(limit=200, offset=len(active))
        active |= {limit.name: limit.active_slots for limit in page}
        if len(page) < 200:
            return active


def ensure_pair_limits(partner_ids: list[str]) -> None:
    """`ensure_pair_limit` for many partners: the existing limits listed once, the missing made."""
    with get_client(sync_client=True) as client:
        existing = _pair_limits(client)
        for partner_id in partner_ids:
            for name in (pair_limit_name(partner_id), follow_up_limit_name(partner_id)):
                if name not in existing:
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=1)
                    )


def pairs_in_use(partner_ids: list[str]) -> set[str]:
    """The partners whose pair a run holds now (its Prefect limit's slot is taken)."""
    with get_client(sync_client=True) as client:
        active = _pair_limits(client)
    return {p for p in partner_ids if active.get(pair_limit_name(p), 0)}


class AlreadyFollowing(Exception):
    """Another run of the pair already waits behind the running one; it will see this change too."""


def _slot_taken(exc: ConcurrencySlotAcquisitionError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 423


def _slot(
    names: str | list[str], timeout_seconds: float | None = None, max_retries: int | None = None
) -> AbstractContextManager[None]:
    """One slot of each named limit, all in one lease for SLOT_LEASE_S, renewed while held."""
    return concurrency(
        names,
        occupy=1,
        strict=True,
        timeout_seconds=timeout_seconds,
        max_retries=max_retries,
        lease_duration=SLOT_LEASE_S,
        raise_on_lease_renewal_failure=False,
    )


def hold_pair(partner_id: str, held: ExitStack, after_running: bool) -> None:
    """Take the pair's slot into `held`: within 30 s, or for a woken run behind the running one."""
    pair = pair_limit_name(partner_id)
    if not after_running:
        held.enter_context(_slot(pair, timeout_seconds=PAIR_LIMIT_WAIT_S))
        return
    try:
        place_in_line = _slot(follow_up_limit_name(partner_id), max_retries=0)
        with place_in_line:  # given up once the pair's slot is ours: the next change may queue
            held.enter_context(_slot(pair, timeout_seconds=FOLLOW_UP_WAIT_S))
    except ConcurrencySlotAcquisitionError as exc:
        if _slot_taken(exc):
            raise AlreadyFollowing(
                f"partner {partner_id}: another run already waits to run next; it carries this "
                "change"
            ) from None
        raise


def hold_pairs(partner_ids: list[str], held: ExitStack) -> bool:
    """Take the slots of several pairs at once (one lease: a tenth of the calls, threads and events
    of taking them one by one) into `held`; False, taking none, when a run holds one of them."""
    try:
        held.enter_context(_slot([pair_limit_name(p) for p in partner_ids], max_retries=0))
    except ConcurrencySlotAcquisitionError as exc:
        if _slot_taken(exc):
            return False
        raise
    return True


def vendor_budget(config: Config) -> AbstractContextManager[object]:
    """The vendor portal's budget, shared with every run on every worker (kept in the ledger)."""
    if config.vendor_crm.kind != "hubspot":
        return nullcontext()
    return shared_budget(config.vendor_crm, config.ledger_url)


def held_too_long(partner_id: str) -> str:
    """Why a run that waited in vain for its pair's slot did nothing."""
    return (
        f"partner {partner_id}: another run held the pair for over {PAIR_LIMIT_WAIT_S:.0f} s; "
        "this run did nothing"
    )


def finish_run(partner_id: str, attempt: Callable[[], RunReport]) -> dict[str, Any] | State:
    """A flow's run of one pair: its report published and its summary returned, or the state that
    says why it did nothing (another run holds or waits for the pair)."""
    logger = get_run_logger()
    try:
        report = attempt()
    except AlreadyFollowing as exc:
        logger.info(str(exc))
        return Completed(message=str(exc))
    except PairBusy as exc:
        logger.warning(str(exc))
        return Cancelled(message=str(exc))
    except LeaseLost as exc:  # paused past its lease: the run that took the pair over carries on
        logger.error(str(exc))
        return Failed(message=str(exc))
    except TimeoutError:
        message = held_too_long(partner_id)
        logger.warning(message)
        return Cancelled(message=message)
    publish_report(report)
    logger.info("partner %s: %s", partner_id, report.summary())
    return report.summary()
