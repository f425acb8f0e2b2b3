"""The vendor hub: the vendor portal is shared by every partner, so it is read once for all of them.

A hub read searches the vendor's changes since its own cursor over every record that carries a share
mark (the pairs' rules with `{partner}` left open: `dealsync_partner` has a value), counts those
records once against its own census (narrowing by id ranges only when the count falls short), and
routes what it read to the pairs through the ledger (`hub_routing.py`): a linked record to the pair
whose link holds it, unless nothing of it asks for a run (`echoes.py`); an unlinked one to the
partners its mark names; a note by its link or its deals; a record the count no longer finds, to
check by id. Each pair's run then takes its vendor side from its inbox, and its commit consumes
what it took. A run that needs the vendor fresher than the last hub read (one started alone: the UI,
a webhook, `dealsync run --partner`) reads the hub itself first, under the hub's lease; the others
wait for that read and use it.

A pair is served by the hub when the vendor CRM counts records (HubSpot) and its mapping names the
partner in the vendor's share mark (`equals: "{partner}"`) and marks the twins it creates there; any
other pair reads the vendor by itself, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from connectors.base import CountRule, PropertyMatch
from dealsync.config import Config
from dealsync.mapping import (
    DealMapping,
    NotesMapping,
    file_digest,
    load_mapping,
    load_notes_mapping,
)

DEALS, NOTES = "deals", "notes"
MAX_GROUPS = 5  # HubSpot search: at most 5 filter groups (one per alternative of the hub's rule)


@dataclass(frozen=True)
class Hub:
    """The pairs whose vendor side the hub reads, and what it reads per object type."""

    deal_mappings: Mapping[str, DealMapping]  # partner -> its deal mapping
    note_pairs: frozenset[str]  # partners whose vendor notes come from the hub too
    rules: Mapping[str, CountRule]  # object type -> the records the hub reads and counts
    properties: Mapping[str, tuple[str, ...]]  # object type -> what it asks for

    def serves(self, pair: str, object_type: str) -> bool:
        """Whether a pair's vendor side of an object type comes from the hub."""
        if object_type == DEALS:
            return pair in self.deal_mappings
        return object_type == NOTES and pair in self.note_pairs


def _open_match(match: PropertyMatch, pair: str) -> PropertyMatch:
    """A pair's condition with the partner left open: any value of a property that names it."""
    if pair.lower() in match.value.lower():
        return PropertyMatch(match.property, "present")
    return match


def _rule_of(alternatives: Sequence[PropertyMatch]) -> CountRule | None:
    """One rule of distinct alternatives, if a search can ask it."""
    unique = tuple(dict.fromkeys(alternatives))
    return CountRule(unique) if 0 < len(unique) <= MAX_GROUPS else None


def hub_of(config: Config) -> Hub | None:
    """The hub of a configuration, or None where the vendor cannot be read once for all."""
    if config.vendor_crm.kind != "hubspot":
        return None
    files = {f for p in config.partners for f in (p.mapping_path, p.notes_mapping_path)}
    # Mapping files change under a long-lived worker: the hub is worked out again when they do.
    versions = tuple(sorted((str(f), file_digest(f)) for f in files if f is not None))
    partners = tuple((p.id, p.mapping_path, p.notes_mapping_path) for p in config.partners)
    return _hub(partners, versions)


@lru_cache(maxsize=8)
def _hub(
    partners: tuple[tuple[str, Path, Path | None], ...], _versions: tuple[tuple[str, str], ...]
) -> Hub | None:
    deal_mappings: dict[str, DealMapping] = {}
    notes: dict[str, NotesMapping] = {}
    for pair, deal_path, notes_path in partners:
        mapping = load_mapping(deal_path)
        rule = mapping.conversion
        template = (rule.equals or "") + (rule.contains or "")
        marks_twins = rule.matches(mapping.on_create_values("vendor", pair), pair)
        if "{partner}" in template and marks_twins:
            deal_mappings[pair] = mapping
            if notes_path is not None:
                notes[pair] = load_notes_mapping(str(notes_path))
    if not deal_mappings:
        return None
    rules: dict[str, CountRule] = {}
    properties: dict[str, tuple[str, ...]] = {}
    deal_rule = _rule_of(
        [_open_match(m.conversion.count_match(p), p) for p, m in deal_mappings.items()]
    )
    if deal_rule is None:
        return None
    rules[DEALS] = deal_rule
    properties[DEALS] = tuple(
        dict.fromkeys(prop for m in deal_mappings.values() for prop in m.properties("vendor"))
    )
    note_alternatives = [
        _open_match(match, pair)
        for pair, mapping in notes.items()
        for match in _note_rule(mapping, pair).alternatives
    ]
    note_rule = _rule_of(note_alternatives)
    if note_rule is not None and notes:
        rules[NOTES] = note_rule
        properties[NOTES] = tuple(
            dict.fromkeys(prop for m in notes.values() for prop in m.properties("vendor"))
        )
    return Hub(
        deal_mappings,
        frozenset(notes) if NOTES in rules else frozenset(),
        rules,
        properties,
    )


def _note_rule(mapping: NotesMapping, pair: str) -> CountRule:
    """The vendor notes a pair counts: marked shared, and comments (as `NotePhase.count_rule`)."""
    alternatives = [mapping.share("vendor").count_match(pair)]
    if reply_to := mapping.reply_to("vendor"):
        alternatives.append(PropertyMatch(reply_to, "present"))
    return CountRule(tuple(alternatives))
