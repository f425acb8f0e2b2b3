"""Held deletions asked in the Prefect UI: the flow run pauses with a form showing the partner, how
many, why and a sample; a person approves or rejects, or nobody answers before the wait ends."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Running
from pydantic import Field

from dealsync.approvals import HeldForApproval

APPROVAL_WAIT_S = 3600  # how long a paused run waits for an answer (it holds its pair meanwhile)
APPROVAL_POLL_S = 5


class DeletionApproval(RunInput):
    """A person's answer to deletions the brake held."""

    approve: bool = Field(
        default=False, description="Tick to delete these records now; leave it to reject them."
    )


def describe(held: HeldForApproval) -> str:
    """The form's text: partner, count, the brake's reason, a sample."""
    sample = "\n".join(f"- {line}" for line in held.sample())
    more = len(held.deletions) - len(held.sample())
    return (
        f"### Partner {held.partner}: {len(held.deletions)} {held.object_type} deletions held\n\n"
        f"{held.reason}\n\n{sample}\n" + (f"- ... and {more} more\n" if more > 0 else "") + "\n"
        "Approve to apply exactly these in this run; reject to keep them held "
        "(`dealsync deletions approve` can still release them later)."
    )


def ask_in_ui(held: HeldForApproval) -> bool | None:
    """Pause the flow run until a person answers (True approve, False reject, None no answer)."""
    try:
        answer = pause_flow_run(
            wait_for_input=DeletionApproval.with_initial_data(
                description=describe(held), approve=False
            ),
            timeout=APPROVAL_WAIT_S,
            poll_interval=APPROVAL_POLL_S,
        )
    except FlowPauseTimeout:
        _running_again()
        return None
    get_run_logger().info(
        "partner %s: held deletions %s in the Prefect UI",
        held.partner,
        "approved" if answer.approve else "rejected",
    )
    return answer.approve


def _running_again() -> None:
    """Nobody answered: the run goes on (deletions stay held) instead of failing as paused."""
    context = FlowRunContext.get()
    if context is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(context.flow_run.id, Running(), force=True)
