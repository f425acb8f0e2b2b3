"""The Salesforce connection against the Salesforce sandbox: logins by refresh token and JWT bearer,
a session renewed once when it expired, the instance URL from the token answer, and dealsync's
share of the org's daily API allowance."""

from __future__ import annotations

import logging

import pytest

from connectors.errors import AuthError, RecordRejected
from connectors.salesforce_http import AllowanceSpent, SalesforceHttp, SalesforceLogin
from sandbox.salesforce.server import SalesforceProcess

DEAL = {"Name": "Acme Cloud", "StageName": "Prospecting", "CloseDate": "2027-03-01"}


@pytest.fixture(scope="module")
def org():
    with SalesforceProcess() as server:
        yield server


def _login(org: SalesforceProcess, **changes) -> SalesforceLogin:
    fields = {
        "login_url": org.instance_url,
        "client_id": org.app.client_id,
        "client_secret": org.app.client_secret,
        "refresh_token": org.app.refresh_token,
    }
    return SalesforceLogin(**{**fields, **changes})


def _connect(org: SalesforceProcess, share: float = 0.2, **changes) -> SalesforceHttp:
    return SalesforceHttp(_login(org, **changes), "partner acme", share, verify=str(org.cert))


def test_a_refresh_token_login_calls_the_instance_it_names_and_renews_an_expired_session(
    org, caplog
):
    http = _connect(org)
    assert http.base_url == f"{org.instance_url}/services/data/v59.0"
    made = http.request("POST", "/sobjects/Opportunity/", json=DEAL).json()["id"]
    again = _connect(org)  # the next connection (the next run) uses the same session
    assert again.logins == 0 and again.request("GET", f"/sobjects/Opportunity/{made}").ok
    org.admin("DELETE", "sessions")  # the org's session timeout passes
    logins = http.logins
    with caplog.at_level(logging.DEBUG):
        record = http.request("GET", f"/sobjects/Opportunity/{made}").json()
    assert record["Name"] == "Acme Cloud" and http.logins == logins + 1
    assert _connect(org).logins == 0  # the new session serves the next connection too
    assert org.app.refresh_token not in caplog.text and org.app.client_secret not in caplog.text


def test_the_jwt_bearer_grant_logs_in_with_the_apps_key(org):
    key = (org.folder / "jwt-private-key.pem").read_text()
    http = _connect(org, refresh_token=None, username=org.app.username, private_key=key)
    assert http.request("GET", "/sobjects/Opportunity/describe").json()["name"] == "Opportunity"


def test_a_refused_login_names_the_connection_and_never_the_secret(org):
    with pytest.raises(AuthError) as refused:
        _connect(org, refresh_token="5Aep861-an-old-refresh-token")
    message = str(refused.value)
    assert "partner acme" in message and "invalid_grant" in message
    assert "5Aep861-an-old-refresh-token" not in message


def test_the_run_stops_at_its_share_of_the_orgs_allowance_before_calling(org):
    org.admin("POST", "allowance", json={"limit": 100, "used": 18})
    try:
        http = _connect(org, share=0.2)  # 20 of 100 requests a day
        http.request("GET", "/sobjects/Opportunity/describe")  # the 19th
        http.request("GET", "/sobjects/Opportunity/describe")  # the 20th: the share is used
        with pytest.raises(AllowanceSpent) as spent:
            http.request("GET", "/sobjects/Opportunity/describe")
        assert "used 20 of its 100" in str(spent.value) and "20%" in str(spent.value)
        assert org.admin("GET", "allowance").json()["used"] == 20  # stopped before calling

        org.admin("POST", "allowance", json={"used": 100})  # others spent the org's whole limit
        everything = _connect(org, share=1.0)
        with pytest.raises(AllowanceSpent) as limit:
            everything.request("GET", "/sobjects/Opportunity/describe")
        assert "REQUEST_LIMIT_EXCEEDED" in str(limit.value)
    finally:
        org.admin("POST", "allowance", json={"limit": 15_000, "used": 0})


def test_salesforces_error_bodies_reach_the_message(org):
    http = _connect(org)
    with pytest.raises(RecordRejected) as refused:
        http.request("POST", "/sobjects/Opportunity/", json={"Name": "No stage"})
    assert "REQUIRED_FIELD_MISSING" in str(refused.value)
