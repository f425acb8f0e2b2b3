"""Creating twins idempotently: every create is recorded in the ledger as an intent before it is sent."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.base import WriteInput, WriteOutcome
from dealsync.context import RunContext
from dealsync.model import SIDES, Side


@dataclass(frozen=True)
class TwinWrite:
    """One twin to create: its key, where, from which source record, with what."""

    key: str
    target: Side
    source_id: str
    properties: Mapping[str, Any]
    associations: Sequence[tuple[str, str, int]] = ()


def create_twins(
    ctx: RunContext,
    object_type: str,
    key_property: Callable[[Side], str | None],
    wanted: Sequence[TwinWrite],
    intent_object: str | None = None,
) -> dict[str, WriteOutcome]:
    """Create twins by key, recording each intent in the ledger first (as `intent_object`, by
    default the CRM object). A create an earlier run left pending may have happened: it is an upsert
    on the key. Any other is a plain create, which a CRM with unique keys refuses when a record
    already carries the key (someone else's claim, never adopted)."""
    assert ctx.run_id is not None
    kind = intent_object or object_type
    earlier = ctx.ledger.earlier_intents(ctx.pair, kind, [c.key for c in wanted], ctx.run_id)
    ctx.hold_lease()
    ctx.ledger.record_intents(
        ctx.run_id, ctx.pair, kind, [(c.key, c.target, c.source_id) for c in wanted]
    )
    outcomes: dict[str, WriteOutcome] = {}
    for target in SIDES:
        prop = key_property(target)
        batch = [c for c in wanted if c.target == target]
        retry = [c for c in batch if c.key in earlier and prop]
        fresh = [c for c in batch if c not in retry]
        connector = ctx.connectors[target]
        if retry and prop:
            inputs = [
                WriteInput(c.key, {k: v for k, v in c.properties.items() if k != prop})
                for c in retry
            ]
            outcomes.update({o.ref: o for o in connector.upsert(object_type, prop, inputs)})
        if fresh:
            inputs = [
                WriteInput(
                    c.key, {**c.properties, **({prop: c.key} if prop else {})}, None, c.associations
                )
                for c in fresh
            ]
            outcomes.update({o.ref: o for o in connector.create(object_type, inputs)})
    return outcomes


def refused_creates(creates: Sequence[Any], outcomes: Mapping[str, WriteOutcome]) -> list[str]:
    """Keys of creates the CRM refused for good (they did not happen: their intents failed)."""
    return [
        c.key
        for c in creates
        if c.key in outcomes
        and not outcomes[c.key].ok
        and not getattr(outcomes[c.key].error, "retriable", True)
    ]
