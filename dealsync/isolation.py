"""The last check before anything is written to a partner CRM: it must belong to this pair.

Visibility is decided early (pulls drop what a pair may not see); this guard re-checks every write
bound for a partner portal against the ledger, so that no mapping, bug or stale record can put a deal,
note or file of one partner into another partner's CRM.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from dealsync.ledger import Ledger
from dealsync.ledger.models import LinkRow


class IsolationError(RuntimeError):
    """A write would cross from one partner's shared data into another partner's CRM; the run stops."""


def owners_elsewhere(
    ledger: Ledger, pair: str, object_type: str, vendor_ids: Iterable[str]
) -> dict[str, str]:
    """Vendor records (of these ids) that are linked to a pair other than `pair`: id -> that pair."""
    ids = list(set(vendor_ids))
    if not ids:
        return {}
    with ledger.session() as s:
        rows = s.execute(
            sa.select(LinkRow.vendor_id, LinkRow.pair).where(
                LinkRow.object_type == object_type, LinkRow.pair != pair, LinkRow.vendor_id.in_(ids)
            )
        )
        return dict(rows.all())


def partner_ids_of(ledger: Ledger, pair: str, object_type: str) -> set[str]:
    """Every partner-side record id this pair has ever linked."""
    with ledger.session() as s:
        rows = s.scalars(
            sa.select(LinkRow.partner_id).where(
                LinkRow.pair == pair, LinkRow.object_type == object_type
            )
        )
        return set(rows)


def check_partner_writes(
    ledger: Ledger,
    pair: str,
    object_type: str,
    created_from_vendor: Iterable[str],
    partner_targets: Iterable[str],
    extra_allowed: Iterable[str] = (),
) -> None:
    """Raise IsolationError unless every partner write belongs to `pair`.

    `created_from_vendor`: vendor record ids whose twins are about to be created in the partner CRM;
    none may be linked to another pair. `partner_targets`: partner record ids about to be written; each
    must be linked to this pair (or be in `extra_allowed`, e.g. deals created earlier in this run).
    """
    stolen = owners_elsewhere(ledger, pair, object_type, created_from_vendor)
    if stolen:
        detail = ", ".join(
            f"vendor {object_type[:-1]} {vid} (partner {other})"
            for vid, other in sorted(stolen.items())
        )
        raise IsolationError(
            f"refusing to write to partner {pair}'s CRM: {detail} belongs to another partner"
        )
    allowed = partner_ids_of(ledger, pair, object_type) | set(extra_allowed)
    foreign = sorted(set(partner_targets) - allowed)
    if foreign:
        raise IsolationError(
            f"refusing to write to partner {pair}'s CRM: {object_type} {', '.join(foreign)} are not linked to this pair"
        )
