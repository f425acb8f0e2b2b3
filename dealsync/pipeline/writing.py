"""Step 5, push: the writes a plan makes, the same way for every synced object.

Creates go through `twins.create_twins` (intents first). Updates are merged per record and sent in
batches; deletions archive or flag per the deletion policy. A failure is the record's own: quarantined
and retried, while the rest of the batch goes on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from connectors.base import WriteInput, WriteOutcome
from dealsync.context import RunContext
from dealsync.model import SIDES, Delete, Side, other
from dealsync.outcomes import Quarantined
from dealsync.pipeline.planned import PlannedCreate

Outcomes = dict[tuple[Side, str], WriteOutcome]


@dataclass
class Pushed:
    """What the CRMs confirmed, and the records that failed (quarantined)."""

    creates: dict[str, WriteOutcome]  # by key
    updates: Outcomes
    deletes: Outcomes
    failures: list[Quarantined]
    files_copied: int = 0
    files_deleted: int = 0


def write_updates(
    ctx: RunContext, object_type: str, writes: Iterable[tuple[Side, str, Mapping[str, str]]]
) -> Outcomes:
    """(target, record id, properties) writes, merged per record, in batches per side."""
    merged: dict[Side, dict[str, dict[str, str]]] = {
        "partner": defaultdict(dict),
        "vendor": defaultdict(dict),
    }
    for target, record_id, properties in writes:
        merged[target][record_id].update(properties)
    outcomes: Outcomes = {}
    for target in SIDES:
        if merged[target]:
            inputs = [WriteInput(rid, props, id=rid) for rid, props in merged[target].items()]
            for outcome in ctx.connectors[target].update(object_type, inputs):
                outcomes[(target, outcome.ref)] = outcome
    return outcomes


def write_deletes(ctx: RunContext, object_type: str, deletes: Sequence[Delete]) -> Outcomes:
    """Apply the deletion policy on the other side: archive, or flag (unlinks write nothing)."""
    outcomes: Outcomes = {}
    for source in SIDES:
        target = other(source)
        archive = [d.target_id for d in deletes if d.source == source and d.action == "archive"]
        if archive:
            for outcome in ctx.connectors[target].archive(object_type, archive):
                outcomes[(target, outcome.ref)] = outcome
        flags = [
            d for d in deletes if d.source == source and d.action == "flag" and d.flag_property
        ]
        if flags:
            inputs = [
                WriteInput(d.target_id, {d.flag_property: "true"}, id=d.target_id)  # type: ignore[dict-item]
                for d in flags
            ]
            for outcome in ctx.connectors[target].update(object_type, inputs):
                outcomes[(target, outcome.ref)] = outcome
    return outcomes


def failures(
    object_type: str,
    noun: str,
    twin: str,
    creates: Iterable[tuple[PlannedCreate, Mapping[str, str]]],
    created: Mapping[str, WriteOutcome],
    updates: Outcomes,
    deletes: Outcomes,
) -> list[Quarantined]:
    """What the CRMs refused, quarantined: a failed create (of a `twin`) on its source's side, with
    its payload; a failed update or deletion on its own side."""
    found = [
        Quarantined(
            other(c.target),
            c.source_id,
            "push",
            [f"creating the {c.target} {twin} failed: {created[c.key].error}"],
            dict(payload),
            _retriable(created[c.key]),
            object_type,
        )
        for c, payload in creates
        if c.key in created and not created[c.key].ok
    ]
    found += [
        Quarantined(
            side,
            rid,
            "push",
            [f"{doing} {side} {noun} {rid} failed: {o.error}"],
            {},
            _retriable(o),
            object_type,
        )
        for doing, outcomes in (("updating", updates), ("deleting", deletes))
        for (side, rid), o in outcomes.items()
        if not o.ok
    ]
    return found


def _retriable(outcome: WriteOutcome) -> bool:
    """Whether a later run may succeed where this write failed (a 5xx or a timeout may pass; a
    refused value waits for a change)."""
    return outcome.error is None or outcome.error.retriable


def progress(ctx: RunContext, what: str, done: int, total: int) -> None:
    """Tell the run's progress reporter (CLI bar, Prefect artifact), if any."""
    if ctx.progress:
        ctx.progress(what, done, total)
