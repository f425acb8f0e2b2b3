"""When each property last changed, for the records in a `newest` conflict (CRMs with property history)."""

from __future__ import annotations

from collections.abc import Iterable

from dealsync.context import RunContext
from dealsync.merges import side_id
from dealsync.model import SIDES, Conflict, FieldRule, Link, Side


def newest_field_times(
    ctx: RunContext,
    object_type: str,
    conflicts: Iterable[Conflict],
    links: Iterable[Link],
    fields: Iterable[FieldRule],
) -> dict[tuple[Side, str], dict[str, int]]:
    """For the records in a `newest` conflict only: when each conflicting property last changed, on
    the sides whose CRM keeps property history (one batch read per 100 records a side)."""
    by_link = {link.id: link for link in links}
    rules = {rule.name: rule for rule in fields}
    wanted: dict[Side, dict[str, set[str]]] = {"partner": {}, "vendor": {}}
    for conflict in conflicts:
        if conflict.rule != "newest" or conflict.link_id not in by_link:
            continue
        for side in SIDES:
            record_id = side_id(by_link[conflict.link_id], side)
            wanted[side].setdefault(record_id, set()).add(rules[conflict.field].prop(side) or "")
    times: dict[tuple[Side, str], dict[str, int]] = {}
    for side in SIDES:
        connector = ctx.connectors[side]
        if not wanted[side] or not connector.capabilities.property_history:
            continue
        props = sorted(set().union(*wanted[side].values()) - {""})
        for record_id, per_prop in connector.property_times(
            object_type, list(wanted[side]), props
        ).items():
            times[(side, record_id)] = per_prop
    return times
