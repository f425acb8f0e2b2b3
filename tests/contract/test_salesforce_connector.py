"""What only the Salesforce connector does, against the Salesforce sandbox: pages of 2,000 by
SOQL, the delete log and its limits, values typed both ways, keys a user typed kept as values."""

from __future__ import annotations

import datetime
import time

import pytest

from connectors.base import PropertySpec, WriteInput
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_http import SalesforceHttp
from sandbox.salesforce.server import SalesforceProcess
from tests.contract.conftest import salesforce_login, salesforce_user

DEAL = {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2027-01-31"}
SPECS = [
    PropertySpec("dealsync_key__c", "dealsync key", unique=True),
    PropertySpec("dealsync_shared__c", "Shared", type="bool"),
    PropertySpec(
        "dealsync_product_interest__c",
        "Product interest",
        type="enumeration",
        field_type="checkbox",
        options=("Analytics", "Billing"),
    ),
    PropertySpec("dealsync_vendor_amount__c", "Vendor amount", type="number"),
]


@pytest.fixture
def connector(salesforce: SalesforceProcess) -> SalesforceConnector:
    http = SalesforceHttp(
        salesforce_login(salesforce), "partner gamma", verify=str(salesforce.cert)
    )
    made = SalesforceConnector(http, lookback_ms=0)
    made.ensure_properties("deals", SPECS)
    return made


def _delete_log_from(org: SalesforceProcess, moment: datetime.datetime) -> None:
    org.admin("POST", "delete-log", json={"earliest": moment.isoformat()})


def _create(connector: SalesforceConnector, count: int, **more: str) -> list[str]:
    outcomes = connector.create(
        "deals", [WriteInput(f"r{i}", {**DEAL, "Name": f"Deal {i}", **more}) for i in range(count)]
    )
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
    return [o.record.id for o in outcomes]


def test_a_full_pull_reads_pages_of_2000_and_writes_go_200_a_call(connector):
    ids = _create(connector, 100)  # and the connector's one describe, for the fields' types
    before = connector.calls
    ids += _create(connector, 4_000)
    assert connector.calls - before == 20  # 4,000 / 200 collection calls
    before = connector.calls
    pages = list(connector.pull_changes("deals", None, ["Name"]))
    assert connector.calls - before == 3  # ceil(4,100 / 2,000) query pages
    assert [len(p.records) for p in pages] == [2000, 2000, 100]
    assert sorted(r.id for p in pages for r in p.records) == sorted(ids)
    assert pages[-1].cursor == max(r.modified_ms for p in pages for r in p.records)


def test_values_are_strings_one_way_and_typed_the_other(connector):
    (deal_id,) = _create(
        connector,
        1,
        Amount="1200",
        dealsync_shared__c="true",
        dealsync_product_interest__c="Billing;Analytics",
        dealsync_vendor_amount__c="99.5",
    )
    fields = ["Amount", "dealsync_shared__c", "dealsync_product_interest__c", "CloseDate"]
    read = connector.read("deals", [deal_id], [*fields, "dealsync_vendor_amount__c"])[deal_id]
    assert read.properties == {
        "Amount": "1200",
        "dealsync_shared__c": "true",
        "dealsync_product_interest__c": "Billing;Analytics",
        "CloseDate": "2027-01-31",
        "dealsync_vendor_amount__c": "99.5",
    }
    cleared = connector.update(
        "deals", [WriteInput("c", {"Amount": "", "dealsync_shared__c": ""}, id=deal_id)]
    )
    assert cleared[0].ok
    after = connector.read("deals", [deal_id], fields)[deal_id].properties
    assert after["Amount"] is None and after["dealsync_shared__c"] == "false"


def test_a_key_a_user_typed_is_a_value_never_part_of_the_query(connector, salesforce):
    tricky = "gamma:partner:1' OR Name != '\\"
    user = salesforce_user(salesforce)
    user("POST", "/sobjects/Opportunity/", json={**DEAL, "dealsync_key__c": tricky})
    _create(connector, 3)
    by_key = connector.read(
        "deals", [tricky, "x' OR Name != 'y"], ["Name"], id_property="dealsync_key__c"
    )
    assert list(by_key) == [tricky]
    assert connector.read("deals", ["' OR Id != '", "not-an-id"], ["Name"]) == {}


def test_the_delete_log_names_deletions_since_the_cursor(connector, salesforce):
    _delete_log_from(salesforce, datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1))
    ids = _create(connector, 3)
    since = int(time.time() * 1000) - 60_000
    assert connector.deleted_since("deals", since) == set()
    assert [o.ok for o in connector.archive("deals", ids[:2])] == [True, True]
    before = connector.calls
    assert connector.deleted_since("deals", since) == set(ids[:2])
    assert connector.calls - before == 1
    archived = [r for page in connector.list_archived("deals", ["Name"]) for r in page]
    assert sorted(r.id for r in archived) == sorted(ids[:2]) and all(r.archived for r in archived)


def test_a_delete_log_that_does_not_reach_back_answers_none(connector, salesforce, caplog):
    now = datetime.datetime.now(datetime.UTC)
    _delete_log_from(salesforce, now - datetime.timedelta(minutes=2))  # the recycle bin emptied
    assert connector.deleted_since("deals", int(now.timestamp() * 1000) - 3_600_000) is None
    assert "every linked Opportunity was checked instead" in caplog.text
    assert len(connector.notices) == 1  # for the run report, once
    old = int((now - datetime.timedelta(days=16)).timestamp() * 1000)
    before = connector.calls
    assert connector.deleted_since("deals", old) is None  # past Salesforce's 15 days: not asked
    assert connector.calls == before


def test_a_record_salesforce_refuses_fails_alone_with_salesforces_reason(connector):
    outcomes = connector.create(
        "deals",
        [
            WriteInput("ok", dict(DEAL)),
            WriteInput("no-stage", {"Name": "x", "CloseDate": "2027-01-31"}),
            WriteInput("bad-date", {**DEAL, "CloseDate": "soon"}),
        ],
    )
    assert [o.ok for o in outcomes] == [True, False, False]
    assert "REQUIRED_FIELD_MISSING" in str(outcomes[1].error)
    assert "StageName" in str(outcomes[1].error) and not outcomes[1].error.retriable


def test_init_grants_the_user_its_fields_and_a_field_hidden_from_it_is_granted_not_made_again(
    connector, salesforce
):
    user = salesforce_user(salesforce)
    # An admin made the field earlier through the API: it exists, hidden from every user.
    user(
        "POST",
        "/tooling/sobjects/CustomField/",
        json={
            "FullName": "Opportunity.dealsync_pain__c",
            "Metadata": {"label": "Pain", "type": "LongTextArea", "length": 32768},
        },
    )
    spec = PropertySpec("dealsync_pain__c", "Pain", field_type="textarea")
    [problem] = connector.property_problems("deals", [spec], [])
    assert "hidden from the dealsync user" in problem and "dealsync init" in problem
    assert connector.ensure_properties("deals", [spec]) == []  # granted, not created
    assert connector.property_problems("deals", [spec], []) == []
    assert connector.ensure_properties("deals", [spec]) == []  # and nothing more the second time
    grants = user(
        "GET",
        "/query/",
        params={"q": "SELECT Field FROM FieldPermissions WHERE SobjectType = 'Opportunity'"},
    ).json()["records"]
    granted = sorted(g["Field"] for g in grants)
    assert granted == sorted(f"Opportunity.{s.name}" for s in [*SPECS, spec])  # each once
