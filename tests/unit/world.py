"""An in-memory pair of CRMs and a ledger of links, to drive the pure planner in tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from dealsync.claims import Intent
from dealsync.mapping import DealMapping, load_mapping
from dealsync.model import Link, Plan, Side
from dealsync.plan import PlanInput, make_plan
from dealsync.rules import OwnerAssignment

MAPPING: DealMapping = load_mapping("mappings/shared_deal.yaml")
VENDOR_OWNERS = {"rep1@vendor.test": "v-1", "rep2@vendor.test": "v-2"}
PARTNER_OWNERS = {"ann@acme.test": "p-1"}
ROUND_ROBIN = OwnerAssignment(
    "round_robin", ("rep1@vendor.test", "rep2@vendor.test"), "rep1@vendor.test"
)


@dataclass
class World:
    """Two CRMs as dicts of raw properties, archived ids, modification clocks and the ledger's links."""

    pair: str = "acme"
    records: dict[Side, dict[str, dict[str, str | None]]] = field(
        default_factory=lambda: {"partner": {}, "vendor": {}}
    )
    archived: dict[Side, set[str]] = field(
        default_factory=lambda: {"partner": set(), "vendor": set()}
    )
    modified: dict[tuple[Side, str], int] = field(default_factory=dict)
    links: dict[int, Link] = field(default_factory=dict)
    owner_turn: int = 0
    intents: dict[str, Intent] = field(default_factory=dict)  # the ledger's create intents
    ids: itertools.count = field(default_factory=lambda: itertools.count(1000))
    clock: itertools.count = field(default_factory=lambda: itertools.count(1))
    approved: frozenset[int] = frozenset()  # links whose held deletion a person approved

    def add(self, side: Side, **props: str) -> str:
        """A user creates a record."""
        record_id = f"{side[0]}{next(self.ids)}"
        self.records[side][record_id] = dict(props)
        self.modified[(side, record_id)] = next(self.clock)
        return record_id

    def edit(self, side: Side, record_id: str, **props: str | None) -> None:
        """A user (or the sync) changes properties of an active record."""
        self.records[side][record_id].update(props)
        self.modified[(side, record_id)] = next(self.clock)

    def archive(self, side: Side, record_id: str) -> None:
        """A user deletes a record."""
        self.records[side].pop(record_id, None)
        self.archived[side].add(record_id)

    def plan(self) -> Plan:
        """What a sync would do now (every active record observed, as a full resync)."""
        active = [link for link in self.links.values() if link.state == "active"]
        records = {
            side: {
                rid: MAPPING.side_record(side, rid, raw, self.modified[(side, rid)])
                for rid, raw in self.records[side].items()
            }
            for side in ("partner", "vendor")
        }
        gone = frozenset(
            (side, rid)
            for link in active
            for side, rid in (("partner", link.partner_id), ("vendor", link.vendor_id))
            if rid in self.archived[side]
        )
        return make_plan(
            PlanInput(
                pair=self.pair,
                mapping=MAPPING,
                links=tuple(active),
                records=records,
                gone=gone,
                owners={"vendor": VENDOR_OWNERS, "partner": PARTNER_OWNERS},
                owner_rules=ROUND_ROBIN,
                owner_turn=self.owner_turn,
                active_links=len(active),
                intents=dict(self.intents),
                known=frozenset(self.known()),
                approved_deletions=self.approved,
            )
        )

    def known(self) -> set[tuple[Side, str]]:
        """What the ledger knows: records of links in any state, and twins its creates made."""
        linked = {
            (side, rid)
            for link in self.links.values()
            for side, rid in (("partner", link.partner_id), ("vendor", link.vendor_id))
        }
        made = {
            (i.target_side, i.target_id)
            for i in self.intents.values()
            if i.state == "done" and i.target_id
        }
        return linked | made

    def push(self, plan: Plan) -> dict[str, str]:
        """Send a plan's creates as a run does (intents first) without committing: key -> new id."""
        made = {}
        for create in plan.creates:
            self.intents.setdefault(create.key, Intent(create.key, create.target, create.source_id))
            made[create.key] = self.add(create.target, **create.properties)
        return made

    def sync(self) -> Plan:
        """Plan, then apply the plan as a run whose every write succeeds."""
        plan = self.plan()
        made = self.push(plan)
        for create in plan.creates:
            new_id = made[create.key]
            self.intents[create.key] = Intent(
                create.key, create.target, create.source_id, "done", new_id
            )
            partner_id, vendor_id = (
                (create.source_id, new_id)
                if create.target == "vendor"
                else (new_id, create.source_id)
            )
            link_id = len(self.links) + 1
            origin = "partner" if create.target == "vendor" else "vendor"
            self.links[link_id] = Link(link_id, partner_id, vendor_id, origin, dict(create.base))
        for update in plan.updates:
            self.edit(update.target, update.record_id, **update.properties)
        for delete in plan.deletes:
            link = self.links[delete.link_id]
            if delete.action == "archive":
                self.archive(
                    "vendor" if delete.source == "partner" else "partner", delete.target_id
                )
            self.links[delete.link_id] = Link(
                link.id, link.partner_id, link.vendor_id, link.origin, link.base, "archived"
            )
        for link_id, base in plan.new_bases.items():
            link = self.links[link_id]
            self.links[link_id] = Link(link.id, link.partner_id, link.vendor_id, link.origin, base)
        self.owner_turn = plan.next_owner_turn
        return plan

    def twin(self, side: Side, record_id: str) -> str | None:
        """The id of a record's twin on the other side, by the ledger."""
        for link in self.links.values():
            if side == "partner" and link.partner_id == record_id:
                return link.vendor_id
            if side == "vendor" and link.vendor_id == record_id:
                return link.partner_id
        return None
