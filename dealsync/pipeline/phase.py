"""What a synced object brings to the shared steps: the answers that differ from object to object."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from connectors.base import Record
from dealsync.context import RunContext
from dealsync.mapping import MappingBase
from dealsync.model import Link, Side
from dealsync.pipeline.tracking import ChangeTracker


class Phase(Protocol):
    """One synced object (deals, notes): its mapping, how its changes are found, what may cross."""

    ctx: RunContext
    object_type: str  # the CRM object and the ledger's object type
    noun: str  # how reports name one record ("deal", "note")

    @property
    def mapping(self) -> MappingBase: ...

    def properties(self, side: Side) -> list[str]:
        """What a read asks for on a side."""
        ...

    def tracker(self, side: Side) -> ChangeTracker:
        """How this run finds the side's changes."""
        ...

    def extra_ids(self, side: Side) -> list[str]:
        """Records to read though they did not change (e.g. notes of deals shared in this run)."""
        ...

    def parents(self, side: Side, records: Sequence[Record]) -> Mapping[str, tuple[str, ...]]:
        """The records each record belongs to (a note's deals); empty for top-level objects."""
        ...

    def visible(self, side: Side, record: Record, parents: tuple[str, ...], linked: bool) -> bool:
        """Whether this pair may see the record at all (visibility is a rule, decided early)."""
        ...

    def lost(
        self, records: Mapping[Side, Mapping[str, Record]], links: Iterable[Link]
    ) -> set[tuple[Side, str]]:
        """Linked records that count as gone for the other side though they exist (made private)."""
        ...

    def settled(self, side: Side, record: Record, link: Link) -> bool:
        """Whether a linked record reads as its link's base agreed (a run's own writes read back):
        nothing for a run to do, unless its twin changed too."""
        ...
