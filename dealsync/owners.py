"""A side's owners: read only when a run needs them, at most once a run, and kept in the ledger for an
hour, so runs that create nothing never read them and runs that do rarely pay for it. The vendor's
are kept once for every pair."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from connectors.base import Connector, Owner
from dealsync.ledger import Ledger
from dealsync.ledger.census import HUB
from dealsync.model import Side

OWNERS_TTL_MS = 3_600_000


class OwnerBook:
    """The owners of both sides of a pair, as one run sees them."""

    def __init__(
        self,
        ledger: Ledger,
        pair: str,
        connectors: Mapping[Side, Connector],
        fresh: bool = False,
        keep: bool = True,
    ) -> None:
        self.ledger, self.pair, self.connectors = ledger, pair, connectors
        self.fresh, self.keep = fresh, keep  # fresh: ignore the ledger's copy (`--full`)
        self._read: dict[Side, list[Owner]] = {}

    def owners(self, side: Side, wanted: Iterable[str] = ()) -> list[Owner]:
        """A side's active owners. The ledger's copy serves while it is younger than an hour and
        knows every owner email or id in `wanted`; otherwise the CRM is read (once a run)."""
        if side in self._read:
            return self._read[side]
        now = int(time.time() * 1000)
        # The vendor's owners are every pair's: kept once for all of them.
        holder = HUB if side == "vendor" else self.pair
        cached = None if self.fresh else self.ledger.owners_read(holder, side, now - OWNERS_TTL_MS)
        known = {o.email.lower() for o in cached or ()} | {o.id for o in cached or ()}
        if cached is not None and all(e.strip().lower() in known for e in wanted if e):
            self._read[side] = cached
            return cached
        owners = [o for o in self.connectors[side].owners() if not o.archived]
        if self.keep:
            self.ledger.keep_owners(holder, side, owners, now)
        self._read[side] = owners
        return owners

    def by_email(self, side: Side, wanted: Iterable[str] = ()) -> dict[str, str]:
        """Owner id by lowercased email."""
        return {o.email.lower(): o.id for o in self.owners(side, wanted)}
