"""Step 1 for the vendor side of the pairs the hub serves: one read of the vendor portal for all of
them, routed to their inboxes (see `dealsync/hub.py`), and a run's wait for a read fresh enough."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from connectors.base import Connector, Record, counts_records
from dealsync.config import Config
from dealsync.connections import build_connector
from dealsync.context import RunContext
from dealsync.echoes import settled_deal
from dealsync.hub import DEALS, NOTES, Hub, hub_of
from dealsync.hub_routing import MarkIndex, Routed, route_checks, route_deals, route_notes
from dealsync.ledger import Ledger
from dealsync.ledger.fencing import Fence
from dealsync.ledger.inbox import HUB, HubCommit
from dealsync.ledger.lease import PairBusy, PairLease
from dealsync.model import Link
from dealsync.pipeline.census import Census
from dealsync.pipeline.tracking import CursorTracker

WAIT_POLL_S = 0.2
WAIT_LIMIT_S = 900.0  # a run waits this long for another's hub read before it gives up


class HubUnavailable(RuntimeError):
    """The hub could not be read fresh enough for this run (another read held it too long)."""


@dataclass
class HubRead:
    """What one hub read found and routed."""

    started_ms: int
    routed: dict[str, list[Routed]] = field(default_factory=dict)  # object type -> entries
    calls: int = 0
    number: int | None = None  # the committed read's number (None: not committed)

    def for_pair(self, pair: str, object_type: str) -> list[Routed]:
        """The entries routed to one pair."""
        return [r for r in self.routed.get(object_type, []) if r.pair == pair]


def read_hub(
    hub: Hub, ledger: Ledger, vendor: Connector, *, commit: bool = True, fence: Fence | None = None
) -> HubRead:
    """Read the vendor's changes once for every pair the hub serves, and route them (committed to
    the pairs' inboxes, under the hub's lease, unless `commit` is false: a dry run keeps them to
    itself)."""
    read = HubRead(int(time.time() * 1000))
    calls_before = vendor.calls
    done: list[HubCommit] = []
    for object_type, rule in hub.rules.items():
        since = ledger.cursor(HUB, "vendor", object_type)
        census = Census.start(
            rule, ledger.known_census(HUB, "vendor", object_type), complete=since is None, owner=HUB
        )
        properties = list(hub.properties[object_type])
        tracker = CursorTracker(vendor, object_type, since, properties, census, scoped=True)
        records: dict[str, Record] = {}
        for page in tracker.pages():
            records.update((r.id, r) for r in page)
        uncounted = _uncounted(census, vendor, object_type)
        routed = _route(hub, ledger, vendor, object_type, list(records.values()))
        owners = ledger.vendor_links(object_type, uncounted - set(records))
        routed += route_checks(owners, {i: pair for i, (pair, _link) in owners.items()})
        served = [r for r in routed if hub.serves(r.pair, object_type)]
        read.routed[object_type] = served
        done.append(
            HubCommit(
                object_type,
                [(r.pair, r.record_id, r.kind, r.record, r.parents) for r in served],
                tracker.cursor,
                census.change(),
            )
        )
    read.calls = vendor.calls - calls_before
    if commit:
        read.number = ledger.commit_hub(read.started_ms, done, fence)
    return read


def _uncounted(census: Census, vendor: Connector, object_type: str) -> set[str]:
    """The records the hub's count cannot vouch for: those it no longer finds (deleted, unmarked),
    and linked ones it never counted."""
    counter = counts_records(vendor)
    assert counter is not None, "the hub reads only a vendor that counts records"
    if not census.ready:
        census.rebuild(counter, object_type)  # once: a census never built, the hub's cursor kept
        return set(census.linked_outside())
    missing = census.uncounted(counter, object_type)
    return set(missing or ()) | census.linked_outside()


def _route(
    hub: Hub, ledger: Ledger, vendor: Connector, object_type: str, records: list[Record]
) -> list[Routed]:
    """The changed records of an object type, for the pairs' runs."""
    if not records:
        return []
    ids = [r.id for r in records]
    if object_type == DEALS:
        linked = ledger.vendor_links(DEALS, ids)
        marks = MarkIndex({p: m.conversion for p, m in hub.deal_mappings.items()})

        def settled(pair: str, link: Link, record: Record) -> bool:
            mapping = hub.deal_mappings.get(pair)
            return mapping is not None and settled_deal(
                mapping, pair, "vendor", link, record.properties
            )

        return route_deals(records, linked, marks, settled)
    parents = vendor.associations(NOTES, DEALS, ids)
    notes = {note: pair for note, (pair, _link) in ledger.vendor_links(NOTES, ids).items()}
    deals = {d for found in parents.values() for d in found}
    deal_pairs = {deal: pair for deal, (pair, _link) in ledger.vendor_links(DEALS, deals).items()}
    return route_notes(records, notes, deal_pairs, parents)


def refresh_hub(
    hub: Hub, ledger: Ledger, vendor: Connector, since_ms: int, limit_s: float = WAIT_LIMIT_S
) -> HubRead | None:
    """Make sure a hub read that started at or after `since_ms` has committed: read it here, or
    wait for the one another run is making (and use it when it started late enough)."""
    deadline = time.monotonic() + limit_s
    while not ledger.hub_read_after(since_ms):
        try:
            with PairLease(ledger, HUB) as lease:
                if ledger.hub_read_after(since_ms):
                    return None
                return read_hub(hub, ledger, vendor, fence=lease.fence)
        except PairBusy:
            if time.monotonic() > deadline:
                raise HubUnavailable(
                    f"the vendor hub was being read by another run for over {limit_s:.0f} s; "
                    "this run did nothing. Run it again; `dealsync status` shows what runs."
                ) from None
            time.sleep(WAIT_POLL_S)
    return None


def hub_step(ctx: RunContext) -> None:
    """Step 0 of a run the hub serves: a hub read fresh enough for it (one that started at or after
    `ctx.hub_since_ms`, else the run's start). A dry run reads the hub for itself and commits none of
    it, so its preview shows the newest vendor changes."""
    hub = ctx.hub
    if hub is None or not any(ctx.served_by_hub(o) for o in hub.rules):
        return
    vendor = ctx.connectors["vendor"]
    if ctx.dry_run:
        read = read_hub(hub, ctx.ledger, vendor, commit=False)
        ctx.hub_routed = {o: read.for_pair(ctx.pair, o) for o in read.routed}
        return
    since = ctx.hub_since_ms if ctx.hub_since_ms is not None else int(time.time() * 1000)
    refresh_hub(hub, ctx.ledger, vendor, since)


def read_for_cycle(config: Config, ledger: Ledger) -> int | None:
    """The one hub read of a cycle over every partner, before it looks at them; the time (epoch
    ms) from which that read serves their runs (None: no hub, each run reads the vendor itself)."""
    hub = hub_of(config)
    if hub is None:
        return None
    started = int(time.time() * 1000)
    refresh_hub(hub, ledger, build_connector(config.vendor_crm, "vendor"), started)
    return started
