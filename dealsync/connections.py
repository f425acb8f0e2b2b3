"""Build the connector a configured CRM needs."""

from __future__ import annotations

from connectors.base import Connector
from connectors.bottlecrm import BottleCrmConnector
from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_http import SalesforceHttp
from dealsync.config import ConfigError, CrmConfig


def build_connector(crm: CrmConfig, connection: str) -> Connector:
    """A connector for one configured CRM; the token is resolved here, at the edge."""
    lookback = (
        {} if crm.lookback_seconds is None else {"lookback_ms": int(crm.lookback_seconds * 1000)}
    )
    if crm.kind == "hubspot":
        return HubSpotConnector(
            crm.base_url, crm.token(), connection=connection, rate_share=crm.rate_share, **lookback
        )
    if crm.kind == "bottlecrm":
        return BottleCrmConnector(crm.base_url, crm.token(), connection=connection)
    if crm.kind == "salesforce":
        assert crm.salesforce is not None
        http = SalesforceHttp(
            crm.salesforce_login(),
            connection,
            share=crm.salesforce.api_share,
            verify=crm.salesforce.ca_bundle or True,
            rate_share=crm.rate_share,
        )
        return SalesforceConnector(http, **lookback)
    raise ConfigError(f"{crm.where}: CRM kind {crm.kind!r} has no connector yet.")


def portal_number(crm: CrmConfig, connection: str) -> int:
    """The HubSpot portal's number (Hub ID), as the portal itself tells it to the token."""
    connector = build_connector(crm, connection)
    if not isinstance(connector, HubSpotConnector):
        raise ConfigError(f"{crm.where}: {crm.kind} has no portal number and sends no webhooks.")
    return connector.portal_id()
