"""The connector kits the contract suite runs against: one per CRM kind, each on a real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests

from bottlecrm.server import BottleCrmServer
from connectors.base import Connector, PropertySpec, WriteInput
from connectors.bottlecrm import BottleCrmConnector
from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_http import API_VERSION, SalesforceHttp, SalesforceLogin
from sandbox.salesforce.server import SalesforceProcess

OWNERS = ("rep1@vendor.test", "rep2@vendor.test")


@dataclass
class ConnectorKit:
    """A connector plus what a contract test needs around it: property names and a user's direct edits."""

    connector: Connector
    name_property: str
    amount_property: str
    key_property: str
    owner_emails: frozenset[str]
    edit_deal: Callable[[str, dict[str, str]], None]
    archive_deal: Callable[[str], None]
    base_properties: dict[str, str]
    note_text_property: str
    note_base_properties: dict[str, str]
    missing_id: str = ""  # an id of this CRM's form that names no record
    # Where a note's author cannot be set: the property naming it, and who the connection's user is.
    note_author: tuple[str, frozenset[str]] = ("", frozenset())

    def deal(self, ref: str, name: str, **more: str) -> WriteInput:
        """A WriteInput for a new deal with this CRM's required properties."""
        return WriteInput(ref, {**self.base_properties, self.name_property: name, **more})


def hubspot_kit(sandbox, api) -> ConnectorKit:
    """The HubSpot connector against a reset sandbox, with the unique key property and two owners."""
    connector = HubSpotConnector(
        sandbox.base_url, sandbox.token, connection="contract-hubspot", lookback_ms=0
    )
    connector.ensure_properties(
        "deals", [PropertySpec("dealsync_key", "dealsync key", unique=True)]
    )
    for email in OWNERS:
        sandbox.admin("POST", "owners", json={"email": email, "firstName": "R", "lastName": "Ep"})
    sandbox.admin("POST", "owners", json={"email": "old@vendor.test", "archived": True})

    def edit_deal(deal_id: str, properties: dict[str, str]) -> None:
        api(
            "PATCH", f"/crm/v3/objects/deals/{deal_id}", json={"properties": properties}
        ).raise_for_status()

    def archive_deal(deal_id: str) -> None:
        api("DELETE", f"/crm/v3/objects/deals/{deal_id}").raise_for_status()

    return ConnectorKit(
        connector,
        "dealname",
        "amount",
        "dealsync_key",
        frozenset(OWNERS),
        edit_deal,
        archive_deal,
        {},
        "hs_note_body",
        {"hs_timestamp": "2026-11-01T00:00:00Z"},
    )


def bottlecrm_kit(server: BottleCrmServer) -> ConnectorKit:
    """The BottleCRM connector against a fresh real BottleCRM org."""
    connector = BottleCrmConnector(server.base_url, server.token, connection="contract-bottlecrm")
    connector.ensure_properties("deals", [PropertySpec("cf_dealsync_key", "dealsync key")])
    user = BottleCrmConnector(server.base_url, server.token, connection="a BottleCRM user")

    def edit_deal(deal_id: str, properties: dict[str, str]) -> None:
        assert user.update("deals", [WriteInput(deal_id, properties, id=deal_id)])[0].ok

    def archive_deal(deal_id: str) -> None:
        assert user.archive("deals", [deal_id])[0].ok

    emails = frozenset(p["email"] for p in server.profiles)
    return ConnectorKit(
        connector,
        "name",
        "amount",
        "cf_dealsync_key",
        emails,
        edit_deal,
        archive_deal,
        {"stage": "PROSPECTING"},
        "comment",
        {},
        note_author=("commented_by", emails),
    )


def salesforce_login(org: SalesforceProcess) -> SalesforceLogin:
    """The sandbox org's refresh-token login, as a connection would configure it."""
    return SalesforceLogin(
        org.instance_url, org.app.client_id, org.app.client_secret, org.app.refresh_token
    )


def salesforce_user(org: SalesforceProcess) -> Callable[..., requests.Response]:
    """A Salesforce user's own REST calls: user(method, path under /services/data/v59.0, ...)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(org.cert)
    token = org.session()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    base = f"{token['instance_url']}/services/data/v{API_VERSION}"

    def call(method: str, path: str, **kwargs: object) -> requests.Response:
        answer = session.request(method, f"{base}{path}", timeout=60, **kwargs)  # type: ignore[arg-type]
        answer.raise_for_status()
        return answer

    return call


def salesforce_kit(org: SalesforceProcess) -> ConnectorKit:
    """The Salesforce connector against a fresh org, its key field created by the connector, two
    more users and one inactive."""
    http = SalesforceHttp(salesforce_login(org), "contract-salesforce", verify=str(org.cert))
    connector = SalesforceConnector(http, lookback_ms=0)
    connector.ensure_properties(
        "deals", [PropertySpec("dealsync_key__c", "dealsync key", unique=True)]
    )
    user = salesforce_user(org)
    for email, active in ((*OWNERS[:1], True), (OWNERS[1], True), ("old@vendor.test", False)):
        user(
            "POST",
            "/sobjects/User/",
            json={"Username": email, "Email": email, "LastName": "Ep", "IsActive": active},
        )

    def edit_deal(deal_id: str, properties: dict[str, str]) -> None:
        user("PATCH", f"/sobjects/Opportunity/{deal_id}", json=properties)

    def archive_deal(deal_id: str) -> None:
        user("DELETE", f"/sobjects/Opportunity/{deal_id}")

    return ConnectorKit(
        connector,
        "Name",
        "Amount",
        "dealsync_key__c",
        frozenset({*OWNERS, "admin@sandbox.test"}),
        edit_deal,
        archive_deal,
        {"StageName": "Prospecting", "CloseDate": "2027-01-31"},
        "Content",
        {},
        missing_id="006000000000000AAA",
        note_author=("OwnerId", frozenset({org.session()["id"].rsplit("/", 1)[-1]})),
    )


@pytest.fixture
def bottlecrm_server() -> Iterator[BottleCrmServer]:
    """A fresh BottleCRM org (about 3 s from the migrated template)."""
    with BottleCrmServer() as server:
        yield server


def _kit(request: pytest.FixtureRequest) -> ConnectorKit:
    if request.param == "hubspot":
        return hubspot_kit(request.getfixturevalue("sandbox"), request.getfixturevalue("api"))
    if request.param == "salesforce":
        return salesforce_kit(request.getfixturevalue("salesforce"))
    return bottlecrm_kit(request.getfixturevalue("bottlecrm_server"))


@pytest.fixture(params=["hubspot", "bottlecrm", "salesforce"])
def kit(request: pytest.FixtureRequest) -> ConnectorKit:
    """Each connector kind in turn, each against its real server."""
    return _kit(request)
