"""The Salesforce sandbox as Salesforce's own Python client sees it (simple-salesforce, an outside
client): TLS, a session from the token endpoint, sObject create/get/update/delete, upsert and get
by external id, describe, the allowance header, and the errors it raises for each status."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
import time

import jwt
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from sandbox.salesforce.server import SalesforceProcess
from sandbox.server import free_port

DEAL = {"Name": "Acme Cloud", "StageName": "Prospecting", "CloseDate": "2027-03-01"}


# The custom fields the tests use, as an admin would create them (Setup, or the Tooling API).
CUSTOM_FIELDS = {
    "dealsync_key__c": {
        "label": "dealsync key",
        "type": "Text",
        "length": 255,
        "externalId": True,
        "unique": True,
    },
    "dealsync_partner__c": {"label": "Shared with partner", "type": "Text", "length": 255},
    "dealsync_shared__c": {"label": "Shared", "type": "Checkbox", "defaultValue": "false"},
    "dealsync_product_interest__c": {
        "label": "Product interest",
        "type": "MultiselectPicklist",
        "visibleLines": 4,
        "valueSet": {
            "valueSetDefinition": {
                "value": [
                    {"fullName": p, "label": p}
                    for p in ("Billing", "Analytics", "Payments", "Support")
                ]
            }
        },
    },
}


@pytest.fixture(scope="module")
def org():
    with SalesforceProcess() as server:
        sf = _client(server)
        for name, metadata in CUSTOM_FIELDS.items():
            created = sf.restful(
                "tooling/sobjects/CustomField",
                method="POST",
                json={"FullName": f"Opportunity.{name}", "Metadata": metadata},
            )
            assert created["success"]
        grant_fields(sf, list(CUSTOM_FIELDS))
        yield server


def grant_fields(sf: Salesforce, names: list[str]) -> str:
    """What an admin does after creating fields through the API: a permission set that grants
    them, assigned to the user (a new field is hidden from everyone until then). Its id."""
    permission_set = sf.PermissionSet.create({"Name": "dealsync_test", "Label": "dealsync test"})
    for name in names:
        sf.FieldPermissions.create(
            {
                "ParentId": permission_set["id"],
                "SobjectType": "Opportunity",
                "Field": f"Opportunity.{name}",
                "PermissionsRead": True,
                "PermissionsEdit": True,
            }
        )
    user_id = sf.query("SELECT Id FROM User WHERE Username = 'admin@sandbox.test'")["records"][0]
    sf.PermissionSetAssignment.create(
        {"PermissionSetId": permission_set["id"], "AssigneeId": user_id["Id"]}
    )
    return str(permission_set["id"])


def _client(org: SalesforceProcess) -> Salesforce:
    token = org.session()
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE, when set, overrides the session's verify
    session.verify = str(org.cert)  # the sandbox's own certificate, trusted for this client only
    return Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session
    )


@pytest.fixture
def sf(org) -> Salesforce:
    return _client(org)


def test_an_opportunity_is_created_read_updated_and_deleted(sf):
    created = sf.Opportunity.create(
        {**DEAL, "Amount": 1200, "dealsync_product_interest__c": "Billing;Analytics"}
    )
    assert created["success"] and created["id"].startswith("006") and len(created["id"]) == 18
    record = sf.Opportunity.get(created["id"])
    assert record["attributes"]["type"] == "Opportunity" and record["Name"] == "Acme Cloud"
    assert record["Amount"] == 1200 and record["IsClosed"] is False
    assert record["OwnerId"].startswith("005")  # the session's user, as on Salesforce
    assert sf.Opportunity.update(created["id"], {"StageName": "Closed Won"}) == 204
    won = sf.Opportunity.get(created["id"][:15])  # a 15-character id names it too
    assert won["IsWon"] is True and won["SystemModstamp"] >= record["SystemModstamp"]
    assert sf.Opportunity.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as gone:
        sf.Opportunity.get(created["id"])
    assert gone.value.content[0]["errorCode"] == "NOT_FOUND"


def test_upsert_by_external_id_creates_then_updates_and_reads_back(sf):
    assert sf.Opportunity.upsert("dealsync_key__c/acme:partner:1", DEAL) == 201
    assert sf.Opportunity.upsert("dealsync_key__c/acme:partner:1", {"Amount": 5}) == 200
    record = sf.Opportunity.get_by_custom_id("dealsync_key__c", "acme:partner:1")
    assert record["Amount"] == 5 and record["dealsync_key__c"] == "acme:partner:1"
    with pytest.raises(SalesforceResourceNotFound) as wrong:
        sf.Opportunity.upsert("Name/Acme Cloud", {"Amount": 6})  # not an external id
    assert "external ID field" in wrong.value.content[0]["message"]


def test_a_custom_field_is_created_once_with_its_type_and_shows_in_describe(sf):
    answer = sf.restful(
        "tooling/sobjects/CustomField",
        method="POST",
        json={
            "FullName": "Opportunity.region__c",
            "Metadata": {"label": "Region", "type": "Text", "length": 40},
        },
    )
    assert answer["success"] and answer["id"].startswith("00N")
    described = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert "region__c" not in described  # hidden until a permission set grants it
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT Id, region__c FROM Opportunity")
    permission_set = sf.query("SELECT Id FROM PermissionSet WHERE Name = 'dealsync_test'")
    sf.FieldPermissions.create(
        {
            "ParentId": permission_set["records"][0]["Id"],
            "SobjectType": "Opportunity",
            "Field": "Opportunity.region__c",
            "PermissionsRead": True,
            "PermissionsEdit": False,
        }
    )
    described = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert described["region__c"]["type"] == "string" and described["region__c"]["custom"]
    assert not described["region__c"]["updateable"]  # read, not edit
    assert described["region__c"]["length"] == 40
    with pytest.raises(SalesforceMalformedRequest) as twice:
        sf.restful(
            "tooling/sobjects/CustomField",
            method="POST",
            json={
                "FullName": "Opportunity.region__c",
                "Metadata": {"label": "Region", "type": "Text", "length": 40},
            },
        )
    assert twice.value.content[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful(
            "tooling/sobjects/CustomField",
            method="POST",
            json={"FullName": "Opportunity.region", "Metadata": {"label": "x", "type": "Text"}},
        )


def test_describe_tells_fields_types_picklists_and_the_external_id(sf):
    described = sf.Opportunity.describe()
    fields = {f["name"]: f for f in described["fields"]}
    assert described["mergeable"] is False  # opportunities cannot be merged
    assert fields["dealsync_key__c"]["externalId"] and fields["dealsync_key__c"]["unique"]
    assert "Closed Won" in [v["value"] for v in fields["StageName"]["picklistValues"]]
    assert fields["dealsync_product_interest__c"]["type"] == "multipicklist"
    assert not fields["SystemModstamp"]["createable"] and not fields["CloseDate"]["nillable"]


def test_bad_writes_answer_salesforces_error_bodies(sf):
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Opportunity.create({"Name": "No stage"})
    assert missing.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert set(missing.value.content[0]["fields"]) == {"StageName", "CloseDate"}
    sf.Opportunity.create({**DEAL, "dealsync_key__c": "acme:partner:twice"})
    with pytest.raises(SalesforceMalformedRequest) as twice:
        sf.Opportunity.create({**DEAL, "dealsync_key__c": "acme:partner:twice"})
    assert twice.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    with pytest.raises(SalesforceMalformedRequest) as unknown:
        sf.Opportunity.create({**DEAL, "Colour__c": "red"})
    assert unknown.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as read_only:
        sf.Opportunity.create({**DEAL, "IsWon": True})
    assert read_only.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_an_expired_session_answers_invalid_session_id_and_a_new_one_works(org, sf):
    sf.Opportunity.create(DEAL)
    org.admin("DELETE", "sessions")  # the org's session timeout passes
    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.Opportunity.create(DEAL)
    assert expired.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
    assert _client(org).Opportunity.create(DEAL)["success"]  # the refresh token gives a new one


def test_every_answer_tells_the_allowance_and_a_spent_one_refuses(org, sf):
    sf.restful("sobjects/Opportunity/describe")  # the client reads the header of restful calls
    used = sf.api_usage["api-usage"]
    assert used.used >= 1 and used.total == org.admin("GET", "allowance").json()["limit"]
    org.admin("POST", "allowance", json={"used": used.total})
    try:
        with pytest.raises(SalesforceRefusedRequest) as refused:
            sf.Opportunity.create(DEAL)
        assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    finally:
        org.admin("POST", "allowance", json={"used": 0})


def test_the_token_endpoint_refuses_wrong_keys_and_plain_http_gets_nothing(org):
    url = f"{org.instance_url}/services/oauth2/token"
    wrong = requests.post(
        url,
        data={"grant_type": "refresh_token", "client_id": org.app.client_id, "refresh_token": "x"},
        verify=str(org.cert),
        timeout=30,
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    password = requests.post(
        url,
        data={
            "grant_type": "password",
            "client_id": org.app.client_id,
            "client_secret": org.app.client_secret,
            "username": org.app.username,
            "password": org.app.password,
        },
        verify=str(org.cert),
        timeout=30,
    )
    assert password.ok and password.json()["instance_url"] == org.instance_url
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{org.port}/_sandbox/allowance", timeout=10)


def _deals(sf: Salesforce, name: str, count: int, **values) -> list[str]:
    return [
        sf.Opportunity.create({**DEAL, "Name": f"{name} {n}", **values})["id"] for n in range(count)
    ]


def test_soql_filters_orders_limits_and_pages(sf):
    ids = _deals(
        sf, "Paged", 450, dealsync_partner__c="acme", dealsync_product_interest__c="Billing;Support"
    )
    _deals(sf, "Other", 3, dealsync_partner__c="globex", Amount=50)
    everyone = sf.query_all("SELECT Id, Name FROM Opportunity WHERE dealsync_partner__c = 'acme'")
    assert everyone["totalSize"] == 450 and {r["Id"] for r in everyone["records"]} == set(ids)
    first = sf.query(
        "SELECT Id FROM Opportunity WHERE dealsync_partner__c = 'acme'",
        headers={"Sforce-Query-Options": "batchSize=200"},
    )
    assert len(first["records"]) == 200 and not first["done"] and "nextRecordsUrl" in first
    rest = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(rest["records"]) == 250 and rest["done"]
    found = sf.query(
        "SELECT Name, Amount FROM Opportunity WHERE (dealsync_partner__c IN ('globex', 'x') "
        "AND Amount >= 50) OR Name LIKE 'Paged 44_' ORDER BY Name DESC LIMIT 4"
    )
    assert [r["Name"] for r in found["records"]] == [
        "Paged 449",
        "Paged 448",
        "Paged 447",
        "Paged 446",
    ]
    picked = sf.query(
        "SELECT COUNT() FROM Opportunity WHERE dealsync_product_interest__c INCLUDES ('Support')"
    )
    assert picked["totalSize"] == 450 and picked["records"] == []
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.query("SELECT Id FROM Opportunity WHERE")
    assert bad.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_query_all_updated_and_deleted_tell_changes_since_a_time(sf):
    since = datetime.datetime.now(datetime.UTC).replace(second=0, microsecond=0)
    kept, gone = _deals(sf, "Changed", 2)
    sf.Opportunity.delete(gone)
    later = since + datetime.timedelta(minutes=2)  # minute granularity: past the current minute
    changed = sf.Opportunity.updated(since, later)
    assert kept in changed["ids"] and gone not in changed["ids"]
    removed = sf.Opportunity.deleted(since, later)
    removed_ids = {r["id"] for r in removed["deletedRecords"]}  # other tests' deletes as well
    assert gone in removed_ids and kept not in removed_ids
    assert removed["earliestDateAvailable"] <= removed["latestDateCovered"]
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    both = sf.query_all(  # queryAll/: deleted records too
        f"SELECT Id, IsDeleted FROM Opportunity WHERE SystemModstamp >= {stamp} AND Name LIKE 'Changed%'",
        include_deleted=True,
    )
    assert {r["Id"]: r["IsDeleted"] for r in both["records"]} == {kept: False, gone: True}
    live = sf.query(
        f"SELECT Id FROM Opportunity WHERE SystemModstamp >= {stamp} AND Name LIKE 'Changed%'"
    )
    assert [r["Id"] for r in live["records"]] == [kept]
    with pytest.raises(SalesforceMalformedRequest) as backwards:
        sf.Opportunity.updated(later, since)
    assert backwards.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def _collection(sf: Salesforce, method: str, **kwargs) -> list[dict]:
    return sf.restful("composite/sobjects", method=method, **kwargs)


def test_collections_write_up_to_200_records_with_a_result_each(sf):
    records = [
        {"attributes": {"type": "Opportunity"}, **DEAL, "Name": "In a collection 1"},
        {"attributes": {"type": "Opportunity"}, "Name": "No stage"},
        {"attributes": {"type": "Opportunity"}, **DEAL, "Name": "In a collection 2"},
    ]
    results = _collection(sf, "POST", json={"allOrNone": False, "records": records})
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    made = [results[0]["id"], results[2]["id"]]
    updates = [{"attributes": {"type": "Opportunity"}, "id": i, "Amount": 7} for i in made]
    assert all(r["success"] for r in _collection(sf, "PATCH", json={"records": updates}))
    assert sf.Opportunity.get(made[1])["Amount"] == 7
    deleted = _collection(sf, "DELETE", params={"ids": ",".join(made), "allOrNone": "false"})
    assert [r["success"] for r in deleted] == [True, True]
    with pytest.raises(SalesforceResourceNotFound):
        sf.Opportunity.get(made[0])

    before = sf.query("SELECT COUNT() FROM Opportunity")["totalSize"]
    rolled = _collection(sf, "POST", json={"allOrNone": True, "records": records})
    assert not any(r["success"] for r in rolled)
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == before
    with pytest.raises(SalesforceMalformedRequest):
        _collection(sf, "POST", json={"records": [records[0]] * 201})


def test_sandbox_serve_crm_salesforce_serves_an_org_over_https_with_its_keys(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "sandbox", "serve", "--crm", "salesforce", "--quiet"]
    server = subprocess.Popen([*command, "--port", str(port), "--state-dir", str(tmp_path)])
    try:
        keys, cert = tmp_path / "connected-app.json", tmp_path / "sandbox-cert.pem"
        deadline = time.monotonic() + 60
        while True:  # until it answers (a condition, not a delay)
            assert server.poll() is None and time.monotonic() < deadline
            try:
                app = json.loads(keys.read_text())
                answer = requests.post(
                    f"https://127.0.0.1:{port}/services/oauth2/token",
                    data={
                        "grant_type": "refresh_token",
                        "client_id": app["client_id"],
                        "refresh_token": app["refresh_token"],
                    },
                    verify=str(cert),
                    timeout=10,
                )
                break
            except (OSError, ValueError, requests.ConnectionError):
                time.sleep(0.2)
        assert answer.ok and answer.json()["instance_url"] == f"https://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
    refused = subprocess.run([*command, "--portals", "2"], capture_output=True, text=True)
    assert refused.returncode == 2 and "serves one org" in refused.stderr


def test_the_jwt_bearer_grant_takes_only_an_assertion_signed_by_the_apps_key(org):
    key = (org.folder / "jwt-private-key.pem").read_text()
    url = f"{org.instance_url}/services/oauth2/token"

    def grant(**claims) -> requests.Response:
        body = {
            "iss": org.app.client_id,
            "sub": org.app.username,
            "aud": "https://login.salesforce.com",
            "exp": int(time.time()) + 180,
            **claims,
        }
        return requests.post(
            url,
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": jwt.encode(body, key, algorithm="RS256"),
            },
            verify=str(org.cert),
            timeout=30,
        )

    granted = grant()
    assert granted.ok and "refresh_token" not in granted.json()  # the JWT flow gives none
    session = requests.Session()
    session.trust_env = False
    session.verify = str(org.cert)
    sf = Salesforce(
        instance_url=granted.json()["instance_url"],
        session_id=granted.json()["access_token"],
        session=session,
    )
    assert sf.Opportunity.create(DEAL)["success"]
    refusals = [
        grant(sub="someone@else.test"),
        grant(iss="another-app"),
        grant(exp=int(time.time()) - 60),
        grant(aud="https://elsewhere.test"),
    ]
    assert [r.json()["error_description"] for r in refusals] == [
        "user hasn't approved this consumer",
        "invalid client credentials",
        "expired authorization code",
        "invalid assertion",
    ]
    forged = jwt.encode(
        {
            "iss": org.app.client_id,
            "sub": org.app.username,
            "aud": org.instance_url,
            "exp": int(time.time()) + 180,
        },
        "not-the-apps-key-but-a-shared-secret",
        algorithm="HS256",
    )
    answer = requests.post(
        url,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": forged},
        verify=str(org.cert),
        timeout=30,
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_notes_and_files_are_content_documents_linked_to_the_opportunity(sf):
    deal = sf.Opportunity.create(DEAL)["id"]
    note = sf.ContentNote.create(
        {"Title": "Call", "Content": _b64(b"<p>Budget &amp; timing</p>"), "SharingPrivacy": "N"}
    )["id"]
    assert note.startswith("069")  # a note is a document: the same id
    sf.ContentDocumentLink.create({"ContentDocumentId": note, "LinkedEntityId": deal})
    version = sf.ContentVersion.create(
        {
            "Title": "Quote",
            "PathOnClient": "quote.pdf",
            "VersionData": _b64(b"%PDF-1.4 quote"),
            "FirstPublishLocationId": deal,
            "SharingPrivacy": "P",
        }
    )["id"]
    document = sf.ContentVersion.get(version)["ContentDocumentId"]
    links = sf.query(
        f"SELECT ContentDocumentId, Visibility FROM ContentDocumentLink WHERE LinkedEntityId = '{deal}'"
    )
    assert {r["ContentDocumentId"] for r in links["records"]} == {note, document}
    read = sf.ContentNote.get(note)
    assert read["TextPreview"] == "Budget & timing" and read["SharingPrivacy"] == "N"
    data = sf.session.get(
        f"{sf.base_url}sobjects/ContentVersion/{version}/VersionData", headers=sf.headers
    )
    assert data.content == b"%PDF-1.4 quote"
    body = sf.session.get(f"{sf.base_url}sobjects/ContentNote/{note}/Content", headers=sf.headers)
    assert body.content == b"<p>Budget &amp; timing</p>" and read["Content"].endswith("/Content")
    assert sf.ContentDocument.get(document)["SharingPrivacy"] == "P"
    with pytest.raises(SalesforceMalformedRequest) as unfiltered:
        sf.query("SELECT Id FROM ContentDocumentLink")
    assert "Implementation restriction" in unfiltered.value.content[0]["message"]

    sf.ContentDocument.delete(document)  # a file is deleted by deleting its document
    with pytest.raises(SalesforceResourceNotFound):
        sf.ContentVersion.get(version)
    left = sf.query(
        f"SELECT ContentDocumentId FROM ContentDocumentLink WHERE LinkedEntityId = '{deal}'"
    )
    assert [r["ContentDocumentId"] for r in left["records"]] == [note]


def test_injected_faults_answer_salesforces_errors_and_latency(org, sf):
    org.admin(
        "POST",
        "faults",
        json={"method": "POST", "path_regex": "sobjects/Opportunity", "status": 503, "count": 1},
    )
    org.admin(
        "POST",
        "faults",
        json={"method": "GET", "path_regex": "describe", "status": 403, "count": 1},
    )
    try:
        with pytest.raises(SalesforceGeneralError) as unavailable:
            sf.Opportunity.create(DEAL)
        assert unavailable.value.status == 503
        assert unavailable.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
        assert sf.Opportunity.create(DEAL)["success"]  # the fault was used up
        with pytest.raises(SalesforceRefusedRequest):
            sf.Opportunity.describe()
    finally:
        org.admin("DELETE", "faults")
    refused = requests.post(
        f"{org.instance_url}/_sandbox/faults",
        json={"path_regex": "("},
        verify=str(org.cert),
        timeout=30,
    )
    assert refused.status_code == 400 and "Invalid fault" in refused.json()["message"]
