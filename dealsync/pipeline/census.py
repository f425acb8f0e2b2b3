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

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from connectors.base import CountRule, CountsRecords, Record
from dealsync.count_search import find_missing
from dealsync.ledger.census import CensusChange


class KnownCensus(Protocol):
    """The census as the ledger held it at the start of the run (see `LedgerCensus`)."""

    def size(self) -> int:
        """How many records it holds."""
        ...

    def members(self, record_ids: Iterable[str]) -> set[str]:
        """Which of `record_ids` it holds."""
        ...

    def ids(self) -> set[str]:
        """Every record it holds."""
        ...

    def linked_outside(self) -> list[str]:
        """The side's linked records it does not hold."""
        ...


@dataclass
class Census:
    """The records a side's count rule matches: the ledger's census plus what this run saw.

    Only the records the run touched are held in memory (`counted`: counted or not, as last seen);
    the ledger answers for the rest, so a quiet run never loads the census whole.
    """

    rule: CountRule
    known: KnownCensus | None  # as the ledger holds it (None: never built)
    rebuilt: bool = False
    counted: dict[str, bool] = field(default_factory=dict)
    owner: str = ""  # whose it is in the ledger: the hub's, or (empty) the run's pair's

    @classmethod
    def start(
        cls, rule: CountRule, known: KnownCensus | None, complete: bool, owner: str = ""
    ) -> Census:
        """The census at the start of a run; a complete pull (`complete`) builds it anew."""
        return cls(rule, known, rebuilt=complete, owner=owner)

    @property
    def ready(self) -> bool:
        """Whether counts can be checked against it."""
        return self.rebuilt or self.known is not None

    def saw(self, record: Record) -> None:
        """A record as the CRM holds it now (pulled, or as written)."""
        self.mark(record.id, self.rule.matches(record.properties) and not record.archived)

    def mark(self, record_id: str, counted: bool) -> None:
        """Whether a record is one the count finds."""
        self.counted[record_id] = counted

    def _held(self) -> set[str]:
        """Of the records this run touched, those the ledger's census holds."""
        if self.rebuilt or self.known is None or not self.counted:
            return set()
        return self.known.members(self.counted)

    def expected(self) -> int:
        """How many records the count should find."""
        now = sum(self.counted.values())
        if self.rebuilt or self.known is None:
            return now
        # The records this run touched count as it saw them; the others as the ledger holds them.
        return self.known.size() - len(self._held()) + now

    def ids(self) -> set[str]:
        """Every record the census holds now (loads the ledger's census whole)."""
        base = set() if self.rebuilt or self.known is None else self.known.ids()
        return (base | {i for i, c in self.counted.items() if c}) - {
            i for i, c in self.counted.items() if not c
        }

    def linked_outside(self) -> set[str]:
        """Linked records the ledger's census does not hold, less those this run saw counted."""
        outside = set() if self.known is None else set(self.known.linked_outside())
        return {i for i in outside if not self.counted.get(i, False)}

    def change(self) -> CensusChange | None:
        """What the commit writes (nothing for a census never built)."""
        if self.rebuilt:
            return CensusChange(
                frozenset(i for i, c in self.counted.items() if c), frozenset(), True, self.owner
            )
        if self.known is None:
            return None
        held = self._held()
        return CensusChange(
            frozenset(i for i, c in self.counted.items() if c and i not in held),
            frozenset(i for i, c in self.counted.items() if not c and i in held),
            owner=self.owner,
        )

    def rebuild(self, counter: CountsRecords, object_type: str) -> None:
        """Build the census from the CRM's listing of the records the rule matches."""
        self.counted = dict.fromkeys(counter.matching_ids(object_type, self.rule), True)
        self.rebuilt = True

    def uncounted(self, counter: CountsRecords, object_type: str) -> set[str] | None:
        """The census ids the CRM no longer counts (deleted, merged away, or no longer matching):
        they leave the census; ids the CRM counts that it lacked join it. None when they cannot be
        searched by range (every linked record is then read)."""
        expected = self.expected()
        if not expected:
            return set()  # nothing expected: nothing to count
        live = counter.count(object_type, self.rule)
        if live >= expected:
            return set()  # what a quiet run costs: this one call
        ids = self.ids()
        if not self.countable(ids):
            return None
        found = find_missing(
            [int(i) for i in ids],
            live,
            lambda low, high: counter.count(object_type, self.rule, low, high),
            lambda low, high: {
                int(i) for i in counter.matching_ids(object_type, self.rule, low, high)
            },
        )
        missing = {str(i) for i in found.missing}
        for record_id in missing:
            self.mark(record_id, False)
        for unexpected in found.unexpected:
            self.mark(str(unexpected), True)
        return missing

    @staticmethod
    def countable(ids: Iterable[str]) -> bool:
        """Whether ids can be searched by range (numeric, as HubSpot's are)."""
        return all(i.isdigit() for i in ids)
