"""What one run of one pair works with: its partner, mappings, ledger and both CRMs' connectors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from connectors.base import Connector
from dealsync.approvals import Approver
from dealsync.config import Config, PartnerConfig
from dealsync.connections import build_connector
from dealsync.hub import Hub, hub_of
from dealsync.hub_routing import Routed
from dealsync.ledger import Ledger
from dealsync.ledger.fencing import Fence
from dealsync.ledger.inbox import InboxEntry
from dealsync.ledger.lease import PairLease
from dealsync.mapping import (
    DealMapping,
    NotesMapping,
    check_notes_fit,
    load_mapping,
    load_notes_mapping,
)
from dealsync.model import Side
from dealsync.owners import OwnerBook

Progress = Callable[[str, int, int], None]


@dataclass
class RunContext:
    """Everything one run of one pair works with."""

    pair: str
    partner: PartnerConfig
    mapping: DealMapping
    ledger: Ledger
    connectors: dict[Side, Connector]
    config: Config
    dry_run: bool = False
    full_resync: bool = False
    allow_mass_deletion: bool = False
    run_id: int | None = None
    progress: Progress | None = None
    notes_mapping: NotesMapping | None = None
    objects: frozenset[str] = frozenset({"deals", "notes", "files"})
    approver: Approver | None = None  # asks a person about held deletions (a Prefect flow run)
    hub: Hub | None = None  # the vendor read once for every pair (see hub.py), where it can be
    # A hub read that started at or after this (epoch ms) serves the run; None: the run's start.
    hub_since_ms: int | None = None
    hub_routed: dict[str, list[Routed]] = field(default_factory=dict)  # a dry run's own hub read
    lease: PairLease | None = None  # the pair's lease while the run holds it (None: a dry run)
    _inboxes: dict[str, list[InboxEntry]] = field(default_factory=dict, repr=False)

    @property
    def fence(self) -> Fence | None:
        """What the run's ledger writes prove they still hold (None: a dry run writes nothing)."""
        return self.lease.fence if self.lease is not None else None

    def hold_lease(self) -> None:
        """Before a write: renew the pair's lease, or raise LeaseLost if another run took it."""
        if self.lease is not None:
            self.lease.check()

    @property
    def notes(self) -> NotesMapping:
        """The pair's notes mapping (the notes and files phases run only with one)."""
        if self.notes_mapping is None:
            raise RuntimeError(f"partner {self.pair} has no notes mapping")
        return self.notes_mapping

    @cached_property
    def owner_book(self) -> OwnerBook:
        """Both sides' owners, read when this run first needs them."""
        return OwnerBook(
            self.ledger, self.pair, self.connectors, fresh=self.full_resync, keep=not self.dry_run
        )

    def served_by_hub(self, object_type: str) -> bool:
        """Whether this run takes the vendor side of an object type from the hub's routing (a full
        resync reads the vendor by itself)."""
        return (
            self.hub is not None
            and self.hub.serves(self.pair, object_type)
            and not self.full_resync
        )

    def inbox(self, object_type: str) -> list[InboxEntry] | None:
        """What the hub routed to this pair for an object type (read once per run), with a dry
        run's own uncommitted routing on top; None where the hub does not serve this run."""
        if not self.served_by_hub(object_type):
            return None
        if object_type not in self._inboxes:
            entries = {e.record_id: e for e in self.ledger.inbox(self.pair, object_type)}
            for routed in self.hub_routed.get(object_type, []):
                entries[routed.record_id] = InboxEntry(
                    routed.record_id, routed.kind, routed.record, routed.parents, -1
                )
            self._inboxes[object_type] = [entries[i] for i in sorted(entries)]
        return self._inboxes[object_type]

    def mapping_versions(self) -> dict[str, str]:
        """The version of the mapping that judges each object type (files travel with notes)."""
        notes = self.notes_mapping.version if self.notes_mapping else self.mapping.version
        return {"deals": self.mapping.version, "notes": notes, "files": notes}

    def properties(self, side: Side) -> list[str]:
        """What a pull reads on a side: the mapping's properties plus what owner rules look at."""
        names = self.mapping.properties(side)
        rule_prop = self.config.owner_assignment.property
        if side == "partner" and rule_prop:
            names.append(rule_prop)
        return list(dict.fromkeys(names))


def open_context(
    config: Config,
    partner_id: str,
    ledger: Ledger,
    dry_run: bool = False,
    full_resync: bool = False,
    allow_mass_deletion: bool = False,
    progress: Progress | None = None,
    objects: frozenset[str] = frozenset({"deals", "notes", "files"}),
    approver: Approver | None = None,
    hub_since_ms: int | None = None,
) -> RunContext:
    """Resolve a pair's mapping and connectors (tokens are resolved here, at the edge)."""
    partner = config.partner(partner_id)
    connectors: dict[Side, Connector] = {
        "partner": build_connector(partner.crm, f"partner {partner_id}"),
        "vendor": build_connector(config.vendor_crm, "vendor"),
    }
    notes_mapping = (
        load_notes_mapping(partner.notes_mapping_path) if partner.notes_mapping_path else None
    )
    for side, connector in connectors.items():
        if notes_mapping is not None:
            check_notes_fit(notes_mapping, side, connector.kind, connector.capabilities.files_on)
    return RunContext(
        pair=partner_id,
        partner=partner,
        mapping=load_mapping(partner.mapping_path),
        notes_mapping=notes_mapping,
        ledger=ledger,
        connectors=connectors,
        config=config,
        dry_run=dry_run,
        full_resync=full_resync,
        allow_mass_deletion=allow_mass_deletion,
        progress=progress,
        objects=objects,
        approver=approver,
        hub=hub_of(config),
        hub_since_ms=hub_since_ms,
    )
