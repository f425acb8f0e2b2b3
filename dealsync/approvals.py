"""Deletions the brake held, put to a person: kept in the ledger, and asked in the orchestrator.

A run records the deletions its brake held (so `dealsync deletions approve` applies exactly those),
and, where someone can answer while it waits (a Prefect flow run), asks: approved, they go ahead in
this run; rejected or unanswered, they stay held and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dealsync.ledger import Ledger
from dealsync.model import Delete, Plan

SAMPLE = 10  # deletions shown to the person asked


@dataclass(frozen=True)
class HeldForApproval:
    """What a person is asked about: the partner, how many, why, and a sample."""

    partner: str
    object_type: str
    reason: str
    deletions: tuple[Delete, ...]

    def sample(self) -> list[str]:
        """A few of the deletions, one line each."""
        return [
            f"{d.action} {'vendor' if d.source == 'partner' else 'partner'} record {d.target_id} "
            f"(deleted on the {d.source} side; link {d.link_id})"
            for d in self.deletions[:SAMPLE]
        ]


# True: approve; False: reject; None: nobody answered in time.
Approver = Callable[[HeldForApproval], bool | None]


def settle_held(
    ledger: Ledger, pair: str, object_type: str, plan: Plan, approver: Approver | None
) -> None:
    """Record the plan's held deletions; ask the approver, if any, and act on the answer."""
    ledger.hold_deletions(pair, object_type, plan.held_deletes)
    if not plan.held_deletes or approver is None:
        return
    held = HeldForApproval(pair, object_type, plan.brake_reason, tuple(plan.held_deletes))
    answer = approver(held)
    link_ids = [d.link_id for d in held.deletions if d.link_id is not None]
    if answer is True:
        ledger.decide_deletions(pair, "approved", "Prefect UI", link_ids, object_type)
        plan.deletes += plan.held_deletes
        plan.held_deletes = []
        plan.notes.append(
            f"{len(held.deletions)} held deletions were approved in the Prefect UI and applied"
        )
        plan.brake_reason = ""
    elif answer is False:
        ledger.decide_deletions(pair, "rejected", "Prefect UI", link_ids, object_type)
        plan.brake_reason += " Rejected in the Prefect UI: they stay held."
    else:
        plan.brake_reason += " Nobody answered in the Prefect UI in time: they stay held."
