"""How a run on a CRM with a change feed finds deletions without reading every linked record.

Deleting a record changes no modification time, so a cursor never sees it. Instead each side keeps a
census in the ledger: the ids its count rule (the share rule) matched when last known, updated by every
record the run pulls and writes. A run asks the CRM to count the records the rule matches (one search
`total`); when the count is what the census expects, nothing was deleted. When it falls short, id
ranges are counted to find which (`count_search`), and only those ids are read. Linked records the
rule does not count (e.g. unshared since) are read directly. `--full` and the nightly audit still read
every link.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.base import CountRule, CountsRecords, Record
from dealsync.count_search import find_missing
from dealsync.ledger.census import CensusChange


@dataclass
class Census:
    """The records a side's count rule matches as the ledger knew them, kept up to date by this run."""

    rule: CountRule
    known: set[str] | None  # as the ledger held it (None: never built)
    ids: set[str] = field(default_factory=set)
    rebuilt: bool = False

    @classmethod
    def start(cls, rule: CountRule, known: set[str] | None, complete: bool) -> Census:
        """The census at the start of a run; a complete pull (`complete`) builds it anew."""
        if complete:
            return cls(rule, known, set(), rebuilt=True)
        return cls(rule, known, set(known or ()))

    @property
    def ready(self) -> bool:
        """Whether counts can be checked against it."""
        return self.rebuilt or self.known is not None

    def saw(self, record: Record) -> None:
        """A record as the CRM holds it now (pulled, or as written)."""
        self.mark(record.id, self.rule.matches(record.properties) and not record.archived)

    def mark(self, record_id: str, counted: bool) -> None:
        """Whether a record is one the count finds."""
        if counted:
            self.ids.add(record_id)
        else:
            self.ids.discard(record_id)

    def change(self) -> CensusChange | None:
        """What the commit writes (nothing for a census never built)."""
        if self.rebuilt:
            return CensusChange(frozenset(self.ids), frozenset(), rebuilt=True)
        if self.known is None:
            return None
        return CensusChange(frozenset(self.ids - self.known), frozenset(self.known - self.ids))

    def rebuild(self, counter: CountsRecords, object_type: str) -> None:
        """Build the census from the CRM's listing of the records the rule matches."""
        self.ids = set(counter.matching_ids(object_type, self.rule))
        self.rebuilt = True

    def uncounted(self, counter: CountsRecords, object_type: str) -> set[str]:
        """The census ids the CRM no longer counts (deleted, merged away, or no longer matching):
        they leave the census; ids the CRM counts that it lacked join it."""
        live = counter.count(object_type, self.rule)
        if live >= len(self.ids):
            return set()  # what a quiet run costs: this one call
        found = find_missing(
            [int(i) for i in self.ids],
            live,
            lambda low, high: counter.count(object_type, self.rule, low, high),
            lambda low, high: {
                int(i) for i in counter.matching_ids(object_type, self.rule, low, high)
            },
        )
        missing = {str(i) for i in found.missing}
        self.ids = (self.ids - missing) | {str(i) for i in found.unexpected}
        return missing

    @staticmethod
    def countable(ids: set[str]) -> bool:
        """Whether ids can be searched by range (numeric, as HubSpot's are)."""
        return all(i.isdigit() for i in ids)
