"""Where the vendor hub's reads go: each record to the pair whose link holds it, or, while unlinked,
to the pairs its share mark names. Pure.

The mark is a claim, like the key: a linked record goes to the pair whose link holds it, whatever its
mark says now (that pair's run holds the link until the mark names it again), and never to the pair
a changed mark names; only an unlinked record goes by its mark, and a mark naming no configured
partner sends it nowhere. A note goes to the pair whose link holds it, else to the pairs whose shared
deals it is on (each pair's own visibility rule still decides what its run takes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from connectors.base import Record
from dealsync.mapping import ShareRule
from dealsync.model import Link

Kind = Literal["changed", "check"]


@dataclass(frozen=True)
class Routed:
    """A record for one pair's run: changed (with what the hub read), or to check by id (the hub's
    count no longer finds it: deleted, unmarked, or never counted)."""

    pair: str
    record_id: str
    kind: Kind
    record: Record | None = None
    parents: tuple[str, ...] = ()  # a note's deals, as the hub read them


class MarkIndex:
    """Which configured partners a vendor record's share mark names (each rule's `{partner}`
    filled in with the partner's id), found by value rather than by asking every rule."""

    def __init__(self, rules: Mapping[str, ShareRule]) -> None:
        self._rules = dict(rules)
        self._by_value: dict[tuple[str, str], set[str]] = {}
        for pair, rule in self._rules.items():
            match = rule.count_match(pair)
            self._by_value.setdefault((match.property, match.value.lower()), set()).add(pair)
        self._properties = sorted({rule.property for rule in self._rules.values()})

    def pairs(self, properties: Mapping[str, str | None]) -> set[str]:
        """The partners whose rule the record's mark satisfies."""
        found: set[str] = set()
        for prop in self._properties:
            held = (properties.get(prop) or "").strip().lower()
            if not held:
                continue
            for value in {held, *(part.strip() for part in held.split(";"))}:
                found |= self._by_value.get((prop, value), set())
        return {pair for pair in found if self._rules[pair].matches(properties, pair)}


Settled = Callable[[str, Link, Record], bool]  # (pair, link, record): nothing for its run to do


def route_deals(
    records: Iterable[Record],
    linked: Mapping[str, tuple[str, Link]],
    marks: MarkIndex,
    settled: Settled,
) -> list[Routed]:
    """Changed vendor deals for the pairs' runs: a linked one to its pair unless it asks nothing
    of that pair's run, an unlinked one to the partners its mark names."""
    routed: list[Routed] = []
    for record in records:
        owner = linked.get(record.id)
        if owner is not None:
            pair, link = owner
            if not settled(pair, link, record):
                routed.append(Routed(pair, record.id, "changed", record))
            continue
        routed += [
            Routed(p, record.id, "changed", record) for p in sorted(marks.pairs(record.properties))
        ]
    return routed


def route_notes(
    records: Iterable[Record],
    linked: Mapping[str, str],
    deal_pairs: Mapping[str, str],
    parents: Mapping[str, tuple[str, ...]],
) -> list[Routed]:
    """Changed vendor notes for the pairs' runs: a linked one to the pair of its link, an unlinked
    one to the pairs whose shared deals it is on."""
    routed: list[Routed] = []
    for record in records:
        deals = parents.get(record.id, ())
        if record.id in linked:
            pairs = {linked[record.id]}
        else:
            pairs = {deal_pairs[d] for d in deals if d in deal_pairs}
        routed += [Routed(p, record.id, "changed", record, deals) for p in sorted(pairs)]
    return routed


def route_checks(record_ids: Iterable[str], owners: Mapping[str, str]) -> list[Routed]:
    """Records the hub's count no longer vouches for, to check by the pairs whose links hold them."""
    return [Routed(owners[i], i, "check") for i in sorted(set(record_ids)) if i in owners]
