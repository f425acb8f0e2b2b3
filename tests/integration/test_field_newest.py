"""`newest` decides field by field: the time each property last changed (HubSpot's property history),
not the time its record last changed for any reason."""

from __future__ import annotations

import time
from datetime import datetime

from tests.integration.test_sync import SHARED, _twin


def _modified_ms(pair, side: str, deal_id: str) -> int:
    text = pair.deal(side, deal_id, "hs_lastmodifieddate")["hs_lastmodifieddate"]
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _after(pair, side: str, deal_id: str) -> None:
    """Wait until the clock has moved past a record's last change (a condition, not a delay)."""
    stamp = _modified_ms(pair, side, deal_id)
    while time.time() * 1000 <= stamp:
        time.sleep(0.001)


def test_the_side_that_changed_the_field_last_wins_not_the_record_changed_last(pair):
    reg = pair.create("partner", dealname="Fields", dealsync_product_interest="Billing", **SHARED)
    pair.cli("run")
    twin = _twin(pair, "vendor", f"acme:partner:{reg}")["id"]

    pair.edit("vendor", twin, dealsync_product_interest="Connect")  # the vendor's change...
    _after(pair, "vendor", twin)
    pair.edit("partner", reg, dealsync_product_interest="Analytics")  # ...the partner's, later
    _after(pair, "partner", reg)
    pair.edit("vendor", twin, amount="750")  # an unrelated field: the vendor record changed last
    result = pair.cli("run")

    assert pair.deal("vendor", twin, "dealsync_product_interest")["dealsync_product_interest"] == (
        "Analytics"
    )
    assert pair.deal("partner", reg, "dealsync_product_interest")["dealsync_product_interest"] == (
        "Analytics"
    )
    conflicts = pair.cli("conflicts").output
    assert "product_interest" in conflicts and "newest" in conflicts and "partner" in conflicts
    assert "conflicts resolved: 1" in result.output
