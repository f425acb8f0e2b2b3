"""Active deal registrations per partner: counted from the ledger, reported on a vendor company."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.base import PropertySpec, WriteInput
from dealsync.ledger import Ledger
from dealsync.ledger.models import PairState

if TYPE_CHECKING:
    from dealsync.context import RunContext

# Vendor stages after which a shared deal no longer counts as an active registration.
CLOSED_STAGES = frozenset({"closedwon", "closedlost"})
PARTNER_KEY = "dealsync_partner_id"


def tracking_properties(count_property: str) -> list[PropertySpec]:
    """The vendor company properties the registration count needs."""
    return [
        PropertySpec(PARTNER_KEY, "dealsync partner id", unique=True, group="companyinformation"),
        PropertySpec(
            count_property,
            "Active deal registrations",
            type="number",
            field_type="number",
            group="companyinformation",
        ),
    ]


def active_registrations(ledger: Ledger, pair: str) -> int:
    """Shared deals of a pair that are neither archived nor closed on the vendor side."""
    return ledger.count_active_excluding(pair, "vendor_stage", CLOSED_STAGES)


def report_registrations(ctx: RunContext) -> int | None:
    """Write the count to the partner's vendor company when it changed; returns the count written."""
    prop = ctx.config.registrations_property
    if not prop:
        return None
    count = active_registrations(ctx.ledger, ctx.pair)
    with ctx.ledger.sessions.begin() as s:
        state = s.get(PairState, ctx.pair) or PairState(pair=ctx.pair, owner_turn=0)
        if state.registrations_reported == count:
            return None
        vendor = ctx.connectors["vendor"]
        company = ctx.partner.vendor_company_id
        if company:
            outcome = vendor.update(
                "companies", [WriteInput(company, {prop: str(count)}, id=company)]
            )[0]
        else:
            values = {"name": f"Partner {ctx.pair}", prop: str(count)}
            outcome = vendor.upsert("companies", PARTNER_KEY, [WriteInput(ctx.pair, values)])[0]
        if not outcome.ok:
            raise RuntimeError(f"could not write {prop} for partner {ctx.pair}: {outcome.error}")
        state.registrations_reported = count
        s.add(state)
    return count
