"""A Salesforce partner (the Salesforce sandbox, over TLS and OAuth) and a HubSpot vendor (the
sandbox), synced end to end by the CLI the README documents: `dealsync init`, then `dealsync run`."""

from __future__ import annotations

import datetime
import json

import pytest
from typer.testing import CliRunner

from connectors.base import WriteInput
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_http import SalesforceHttp
from sandbox.salesforce.server import SalesforceProcess
from tests.contract.conftest import salesforce_login, salesforce_user
from tests.integration.conftest import Pair
from tests.integration.test_sync import _twin
from tests.integration.test_trust import _links, _quarantined, _refused

FIELDS = [
    "Name",
    "StageName",
    "CloseDate",
    "OwnerId",
    "dealsync_key__c",
    "dealsync_shared__c",
    "dealsync_product_interest__c",
    "dealsync_pain__c",
    "dealsync_vendor_stage__c",
    "dealsync_vendor_amount__c",
]


@pytest.fixture
def gamma(crm_servers, salesforce: SalesforceProcess, tmp_path, monkeypatch, ledger_url):
    """Partner `gamma` on a fresh Salesforce org (refresh-token login, the sandbox's certificate
    trusted by `ca_bundle`), vendor on the HubSpot sandbox, `dealsync init` done."""
    vendor = crm_servers["vendor"]
    vendor.admin("POST", "reset")
    for email in ("rep1@vendor.test", "rep2@vendor.test"):
        vendor.admin("POST", "owners", json={"email": email, "firstName": "Rep", "lastName": "X"})
    user = salesforce_user(salesforce)
    user(
        "POST",
        "/sobjects/User/",
        json={
            "Username": "ann@gamma.test",
            "Email": "ann@gamma.test",
            "LastName": "Ann",
            "IsActive": True,
        },
    )
    monkeypatch.setenv("TEST_VENDOR_TOKEN", vendor.token)
    monkeypatch.setenv("GAMMA_SF_CLIENT_ID", salesforce.app.client_id)
    monkeypatch.setenv("GAMMA_SF_CLIENT_SECRET", salesforce.app.client_secret)
    monkeypatch.setenv("GAMMA_SF_REFRESH_TOKEN", salesforce.app.refresh_token)
    config = tmp_path / "dealsync.yaml"
    config.write_text(
        f"ledger: {ledger_url}\n"
        "vendor:\n"
        f'  crm: {{kind: hubspot, base_url: "{vendor.base_url}", token: "env:TEST_VENDOR_TOKEN"}}\n'
        "  owner_assignment: {strategy: round_robin, pool: [rep1@vendor.test, rep2@vendor.test]}\n"
        "partners:\n"
        "  - id: gamma\n"
        "    crm:\n"
        "      kind: salesforce\n"
        f'      base_url: "{salesforce.instance_url}"\n'
        "      client_id: env:GAMMA_SF_CLIENT_ID\n"
        "      client_secret: env:GAMMA_SF_CLIENT_SECRET\n"
        "      token: env:GAMMA_SF_REFRESH_TOKEN\n"
        f"      ca_bundle: {salesforce.cert}\n"
    )
    pair = Pair({"vendor": vendor}, config, CliRunner())
    init = pair.cli("init")
    assert "dealsync_key__c" in init.output
    http = SalesforceHttp(
        salesforce_login(salesforce), "a Salesforce user", verify=str(salesforce.cert)
    )
    return pair, SalesforceConnector(http, lookback_ms=0), user


def _run(pair: Pair, *args: str, ok: bool = True):
    return pair.cli("run", "--partner", "gamma", *args, ok=ok)


def _opportunity(crm: SalesforceConnector, deal_id: str) -> dict[str, str | None]:
    found = crm.read("deals", [deal_id], FIELDS)
    return dict(found[deal_id].properties) if deal_id in found else {}


def _by_key(crm: SalesforceConnector, key: str) -> tuple[str, dict[str, str | None]]:
    found = crm.read("deals", [key], FIELDS, id_property="dealsync_key__c")
    assert key in found, f"no opportunity carries {key}"
    return found[key].id, dict(found[key].properties)


def test_a_salesforce_partner_and_a_hubspot_vendor_stay_in_sync(gamma):
    pair, crm, user = gamma
    made = crm.create(
        "deals",
        [
            WriteInput(
                "shared",
                {
                    "Name": "Gamma Cloud",
                    "StageName": "Qualification",
                    "CloseDate": "2027-02-15",
                    "dealsync_shared__c": "true",
                    "dealsync_product_interest__c": "Billing;Analytics",
                    "dealsync_pain__c": "month-end takes a week",
                },
            ),
            WriteInput(
                "private",
                {"Name": "Gamma private", "StageName": "Prospecting", "CloseDate": "2027-03-01"},
            ),
        ],
    )
    assert all(o.ok for o in made), made
    registration, private = (o.record.id for o in made)
    conversion = pair.create(
        "vendor",
        dealname="Vendor deal for Gamma",
        amount="7000",
        closedate="2027-04-30",
        dealstage="qualifiedtobuy",
        dealsync_partner="gamma",
        dealsync_partner_owner_email="ann@gamma.test",
    )
    first = _run(pair)
    assert "quarantined: 0" in first.output, first.output

    vendor_twin = _twin(pair, "vendor", f"gamma:partner:{registration}")
    assert vendor_twin["dealname"] == "Gamma Cloud"
    assert vendor_twin["closedate"].startswith("2027-02-15")
    vendor_props = pair.deal(
        "vendor", vendor_twin["id"], "dealsync_pain", "dealsync_product_interest"
    )
    assert vendor_props["dealsync_pain"] == "month-end takes a week"
    assert set(vendor_props["dealsync_product_interest"].split(";")) == {"Billing", "Analytics"}
    assert _opportunity(crm, registration)["dealsync_vendor_stage__c"] == "Appointment scheduled"
    assert len(pair.deals("vendor")) == 2  # the private opportunity stayed in Salesforce

    twin_id, twin = _by_key(crm, f"gamma:vendor:{conversion}")
    ann = next(o.id for o in crm.owners() if o.email == "ann@gamma.test")
    assert twin["Name"] == "Vendor deal for Gamma" and twin["StageName"] == "Prospecting"
    assert twin["CloseDate"] == "2027-04-30" and twin["OwnerId"] == ann
    assert twin["dealsync_vendor_amount__c"] == "7000" and twin["dealsync_shared__c"] == "true"

    quiet = _run(pair, "--json")
    assert '"partner": 0' in quiet.output

    # Edits on both sides travel; the vendor wins the close date, the stage stays on its side.
    pair.edit("vendor", vendor_twin["id"], dealstage="closedwon", closedate="2027-01-31")
    user(
        "PATCH",
        f"/sobjects/Opportunity/{registration}",
        json={"dealsync_pain__c": "month-end takes two days", "StageName": "Negotiation/Review"},
    )
    _run(pair)
    after = _opportunity(crm, registration)
    assert after["CloseDate"] == "2027-01-31" and after["dealsync_vendor_stage__c"] == "Closed won"
    assert after["StageName"] == "Negotiation/Review"
    vendor_after = pair.deal("vendor", vendor_twin["id"], "dealsync_pain", "dealstage")
    assert vendor_after["dealsync_pain"] == "month-end takes two days"
    assert vendor_after["dealstage"] == "closedwon"

    # Deletions both ways: a partner user deletes the registration, the vendor deletes the conversion.
    user("DELETE", f"/sobjects/Opportunity/{registration}")
    pair.archive("vendor", conversion)
    _run(pair)
    assert pair.deal("vendor", vendor_twin["id"]) is None
    assert _opportunity(crm, twin_id) == {}
    assert _opportunity(crm, private)["Name"] == "Gamma private"  # untouched
    assert len(pair.deals("vendor")) == 0


def _salesforce_calls(org: SalesforceProcess) -> int:
    return int(org.admin("GET", "allowance").json()["used"])


def _shared(crm: SalesforceConnector, count: int, start: int = 0) -> list[str]:
    outcomes = crm.create(
        "deals",
        [
            WriteInput(
                f"s{i}",
                {
                    "Name": f"Shared {i}",
                    "StageName": "Prospecting",
                    "CloseDate": "2027-05-01",
                    "dealsync_shared__c": "true",
                },
            )
            for i in range(start, start + count)
        ],
    )
    assert all(o.ok for o in outcomes)
    return [o.record.id for o in outcomes]


def _quiet_calls(pair: Pair, org: SalesforceProcess) -> int:
    """What a run costs the Salesforce org when nothing changed."""
    before = _salesforce_calls(org)
    (run,) = json.loads(_run(pair, "--json").output)["runs"]
    assert run["writes"] == 0 and run["quarantined"] == []
    return _salesforce_calls(org) - before


def test_a_quiet_run_costs_the_org_the_same_calls_whatever_the_number_of_shared_deals(
    gamma, salesforce
):
    pair, crm, _user = gamma
    # The org has kept its delete log for a day (a fresh org's starts now: runs would check every
    # linked deal instead, and say so).
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    salesforce.admin("POST", "delete-log", json={"earliest": moment.isoformat()})
    _shared(crm, 5)
    _run(pair)
    _run(pair)  # reads the first sync's own writes back
    few = _quiet_calls(pair, salesforce)
    _shared(crm, 600, start=5)
    _run(pair)
    _run(pair)
    many = _quiet_calls(pair, salesforce)
    assert len(pair.deals("vendor")) == 605
    assert few == many == 2  # one SOQL page of changes, one look at the delete log


def test_keys_a_salesforce_user_forged_take_nothing_over_and_delete_nothing(gamma):
    pair, crm, user = gamma
    first = _shared(crm, 1)[0]
    _run(pair)
    twin = _twin(pair, "vendor", f"gamma:partner:{first}")["id"]
    before = _links(pair)

    forged = user(
        "POST",
        "/sobjects/Opportunity/",
        json={
            "Name": "Forged",
            "StageName": "Prospecting",
            "CloseDate": "2027-09-09",
            "dealsync_shared__c": True,
            "dealsync_key__c": f"gamma:vendor:{twin}",
        },
    ).json()["id"]
    elsewhere = user(
        "POST",
        "/sobjects/Opportunity/",
        json={
            "Name": "Someone else's",
            "StageName": "Prospecting",
            "CloseDate": "2027-09-09",
            "dealsync_key__c": "acme:vendor:1",
        },
    ).json()["id"]
    for _ in range(2):
        _run(pair)
        assert _links(pair) == before
        assert pair.deal("vendor", twin, "closedate")["closedate"].startswith("2027-05-01")
    assert _refused(_quarantined(pair, "gamma")[forged])
    assert elsewhere not in _quarantined(pair, "gamma")  # not shared, not this pair's: unseen
    user("DELETE", f"/sobjects/Opportunity/{forged}")
    _run(pair)
    assert pair.deal("vendor", twin) is not None and _links(pair) == before
