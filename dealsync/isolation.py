"""The last check before anything is written to either CRM: it must belong to this pair.

Visibility is decided early (pulls drop what a pair may not see, the planner refuses keys the ledger
did not issue); these guards re-check every write against the ledger, so that no mapping, bug or
stale record can put a deal, note or file of one partner into another partner's CRM, nor write into
the vendor's record of another partner.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from dealsync.ledger import Ledger
from dealsync.ledger.models import LinkRow


class IsolationError(RuntimeError):
    """A write would cross from one partner's shared data into another partner's CRM; the run stops."""


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
    stolen = ledger.linked_elsewhere(pair, object_type, created_from_vendor)
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


def check_vendor_writes(
    ledger: Ledger, pair: str, object_type: str, vendor_targets: Iterable[str]
) -> None:
    """Raise IsolationError unless every vendor record about to be written is linked to `pair` now."""
    wanted = sorted(set(vendor_targets))
    if not wanted:
        return
    with ledger.session() as s:
        owned = set(
            s.scalars(
                sa.select(LinkRow.vendor_id).where(
                    LinkRow.pair == pair,
                    LinkRow.object_type == object_type,
                    LinkRow.state == "active",
                    LinkRow.vendor_id.in_(wanted),
                )
            )
        )
    foreign = [v for v in wanted if v not in owned]
    if foreign:
        raise IsolationError(
            f"refusing to write to the vendor CRM for partner {pair}: vendor {object_type} "
            f"{', '.join(foreign)} are not linked to this pair"
        )
