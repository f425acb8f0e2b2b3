"""The connector kits the contract suite runs against: one per CRM kind, each on a real server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from connectors.base import Connector, PropertySpec
from connectors.hubspot import HubSpotConnector


@dataclass
class ConnectorKit:
    """A connector plus what a contract test needs around it (a CRM user's direct edits)."""

    connector: Connector
    deal_name_property: str
    key_property: str
    edit_deal: Callable[[str, dict[str, str]], None]
    archive_deal: Callable[[str], None]


def hubspot_kit(sandbox, api) -> ConnectorKit:
    """The HubSpot connector against a reset sandbox, with the unique key property in place."""
    connector = HubSpotConnector(
        sandbox.base_url, sandbox.token, connection="contract-hubspot", lookback_ms=0
    )
    connector.ensure_properties(
        "deals", [PropertySpec("dealsync_key", "dealsync key", unique=True)]
    )

    def edit_deal(deal_id: str, properties: dict[str, str]) -> None:
        api(
            "PATCH", f"/crm/v3/objects/deals/{deal_id}", json={"properties": properties}
        ).raise_for_status()

    def archive_deal(deal_id: str) -> None:
        api("DELETE", f"/crm/v3/objects/deals/{deal_id}").raise_for_status()

    return ConnectorKit(connector, "dealname", "dealsync_key", edit_deal, archive_deal)


@pytest.fixture(params=["hubspot"])
def kit(request, sandbox, api) -> ConnectorKit:
    """Each connector kind in turn (BottleCRM joins this list when its connector lands)."""
    return {"hubspot": hubspot_kit}[request.param](sandbox, api)
