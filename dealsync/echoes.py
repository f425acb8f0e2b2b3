"""Whether what a CRM shows of a linked deal is what the ledger already agreed: dealsync's own writes
coming back, or a change no run would act on. Pure.

A run acts on a linked deal only when a field it merges every time (`when: always`) differs from the
base both sides last agreed, or when the share mark no longer names the pair (the link is then held).
Everything else of a linked deal (its name after creation, its key, properties the mapping does not
sync) asks nothing of a run. The webhook receiver asks this of each event once the pair's running
sync has committed, so the events of a run's own writes wake nobody.
"""

from __future__ import annotations

from collections.abc import Mapping

from dealsync.mapping import DealMapping
from dealsync.model import BadValue, FieldRule, Link, Side, Value


def _merged_fields(mapping: DealMapping, side: Side, prop: str) -> list[FieldRule]:
    """The fields merged on every run that a side keeps in `prop`."""
    return [r for r in mapping.synced_fields() if r.when == "always" and r.prop(side) == prop]


def _agreed(rule: FieldRule, side: Side, link: Link, text: str | None) -> bool:
    """Whether a side's text of a field reads as the value the link's base holds."""
    if rule.name not in link.base:
        return False  # a field the pair never agreed on (added to the mapping since)
    try:
        value: Value = None if text is None else rule.read_text(side, text)
    except BadValue:
        return False
    return value == link.base[rule.name]


def settled_property(
    mapping: DealMapping, pair: str, side: Side, link: Link, prop: str, text: str | None
) -> bool:
    """Whether a linked deal's property now holding `text` asks nothing of a run."""
    share = mapping.registration if side == "partner" else mapping.conversion
    if prop == share.property:
        return share.matches({prop: text}, pair)
    return all(_agreed(rule, side, link, text) for rule in _merged_fields(mapping, side, prop))


def settled_deal(
    mapping: DealMapping, pair: str, side: Side, link: Link, properties: Mapping[str, str | None]
) -> bool:
    """Whether nothing of a linked deal, as its CRM holds it now, asks for a run: still marked for
    the pair, every field merged on every run as the link's base holds it."""
    share = mapping.registration if side == "partner" else mapping.conversion
    if not share.matches(properties, pair):
        return False
    for rule in mapping.synced_fields():
        if rule.when != "always":
            continue
        prop = rule.prop(side)
        if prop is not None and not _agreed(rule, side, link, properties.get(prop)):
            return False
    return True
