"""The sandbox behaves like HubSpot where clients can go wrong: errors, limits, lag, uniqueness, state."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.server import SandboxProcess
from sandbox.traffic import Limits

DEALS = "/crm/v3/objects/deals"


def _unique_key(api) -> None:
    response = api(
        "POST",
        "/crm/v3/properties/deals",
        json={
            "name": "dealsync_key",
            "label": "Key",
            "type": "string",
            "fieldType": "text",
            "hasUniqueValue": True,
        },
    )
    assert response.status_code == 201, response.text


def test_missing_or_wrong_token_is_401(sandbox):
    assert requests.get(f"{sandbox.base_url}{DEALS}", timeout=10).status_code == 401
    wrong = requests.get(
        f"{sandbox.base_url}{DEALS}", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert wrong.status_code == 401
    assert wrong.json()["category"] == "INVALID_AUTHENTICATION"


def test_unknown_property_is_400_with_hubspot_error_body(api):
    response = api("POST", DEALS, json={"properties": {"dealname": "x", "no_such_prop": "1"}})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert "no_such_prop" in body["message"] and body["correlationId"]


def test_read_only_and_bad_values_are_refused(api):
    assert api("POST", DEALS, json={"properties": {"hs_lastmodifieddate": "1"}}).status_code == 400
    assert api("POST", DEALS, json={"properties": {"amount": "lots"}}).status_code == 400
    assert api("POST", DEALS, json={"properties": {"dealstage": "not-a-stage"}}).status_code == 400
    assert api("POST", DEALS, json={"properties": {"hubspot_owner_id": "999"}}).status_code == 400


def test_every_property_value_is_a_string_and_empty_clears(api):
    deal = api("POST", DEALS, json={"properties": {"dealname": "n", "amount": 12.5}}).json()
    assert deal["properties"]["amount"] == "12.5"
    cleared = api("PATCH", f"{DEALS}/{deal['id']}", json={"properties": {"amount": ""}}).json()
    assert cleared["properties"]["amount"] is None
    fetched = api("GET", f"{DEALS}/{deal['id']}", params={"properties": "amount,dealname"}).json()
    assert fetched["properties"] == {
        "amount": None,
        "dealname": "n",
        "hs_object_id": deal["id"],
        "createdate": deal["createdAt"],
        "hs_lastmodifieddate": fetched["updatedAt"],
    }


def test_archiving_keeps_lastmodifieddate(api):
    deal = api("POST", DEALS, json={"properties": {"dealname": "keep"}}).json()
    time.sleep(0.01)
    assert api("DELETE", f"{DEALS}/{deal['id']}").status_code == 204
    archived = api("GET", DEALS, params={"archived": "true"}).json()["results"]
    assert (
        archived[0]["properties"]["hs_lastmodifieddate"]
        == deal["properties"]["hs_lastmodifieddate"]
    )
    assert archived[0]["archivedAt"] > deal["updatedAt"]


def test_unique_values_are_enforced_on_every_write_path(api):
    _unique_key(api)
    first = api("POST", DEALS, json={"properties": {"dealsync_key": "k1"}})
    assert first.status_code == 201
    assert api("POST", DEALS, json={"properties": {"dealsync_key": "k1"}}).status_code == 400
    other = api("POST", DEALS, json={"properties": {"dealsync_key": "k2"}}).json()
    assert (
        api(
            "PATCH", f"{DEALS}/{other['id']}", json={"properties": {"dealsync_key": "k1"}}
        ).status_code
        == 400
    )

    batch = api(
        "POST",
        f"{DEALS}/batch/create",
        json={
            "inputs": [
                {"properties": {"dealsync_key": "k3"}, "objectWriteTraceId": "t-ok"},
                {"properties": {"dealsync_key": "k1"}, "objectWriteTraceId": "t-dup"},
            ]
        },
    )
    assert batch.status_code == 207
    body = batch.json()
    assert body["numErrors"] == 1 and len(body["results"]) == 1
    assert body["errors"][0]["context"]["objectWriteTraceId"] == ["t-dup"]

    update = api(
        "POST",
        f"{DEALS}/batch/update",
        json={"inputs": [{"id": other["id"], "properties": {"dealsync_key": "k3"}}]},
    )
    assert update.status_code == 207 and update.json()["errors"][0]["context"]["ids"] == [
        other["id"]
    ]

    upsert = api(
        "POST",
        f"{DEALS}/batch/upsert",
        json={
            "inputs": [
                {"idProperty": "dealsync_key", "id": "k1", "properties": {"dealname": "via upsert"}}
            ]
        },
    )
    assert upsert.status_code == 200 and upsert.json()["results"][0]["id"] == first.json()["id"]


def test_batches_are_capped_at_100_inputs(api):
    inputs = [{"properties": {"dealname": str(i)}} for i in range(101)]
    response = api("POST", f"{DEALS}/batch/create", json={"inputs": inputs})
    assert response.status_code == 400 and "100" in response.json()["message"]


def test_search_operators(api):
    rows = [
        {
            "dealname": "Acme Cloud deal",
            "amount": "10",
            "dealstage": "closedwon",
            "closedate": "2026-01-01",
        },
        {"dealname": "Globex on-prem", "amount": "20", "dealstage": "closedlost"},
        {"dealname": "Initech cloud migration", "amount": "30"},
    ]
    ids = [api("POST", DEALS, json={"properties": row}).json()["id"] for row in rows]

    def names(*filters, sorts=None):
        body = {
            "filterGroups": [{"filters": list(filters)}],
            "properties": ["dealname"],
            "limit": 200,
        }
        if sorts:
            body["sorts"] = sorts
        response = api("POST", f"{DEALS}/search", json=body)
        assert response.status_code == 200, response.text
        return [r["properties"]["dealname"].split()[0] for r in response.json()["results"]]

    assert names({"propertyName": "amount", "operator": "GT", "value": "15"}) == [
        "Globex",
        "Initech",
    ]
    assert names({"propertyName": "amount", "operator": "LTE", "value": "20"}) == ["Acme", "Globex"]
    assert names({"propertyName": "amount", "operator": "NEQ", "value": "20"}) == [
        "Acme",
        "Initech",
    ]
    assert names(
        {"propertyName": "dealstage", "operator": "IN", "values": ["closedwon", "closedlost"]}
    ) == ["Acme", "Globex"]
    assert names({"propertyName": "dealstage", "operator": "NOT_IN", "values": ["closedwon"]}) == [
        "Globex",
        "Initech",
    ]
    assert names({"propertyName": "dealstage", "operator": "HAS_PROPERTY"}) == ["Acme", "Globex"]
    assert names({"propertyName": "dealstage", "operator": "NOT_HAS_PROPERTY"}) == ["Initech"]
    assert names({"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "cloud"}) == [
        "Acme",
        "Initech",
    ]
    assert names(
        {"propertyName": "dealname", "operator": "NOT_CONTAINS_TOKEN", "value": "clo*"}
    ) == ["Globex"]
    assert names({"propertyName": "closedate", "operator": "LT", "value": "1767312000000"}) == [
        "Acme"
    ]
    assert names({"propertyName": "hs_object_id", "operator": "EQ", "value": ids[1]}) == ["Globex"]
    assert names(
        {"propertyName": "amount", "operator": "BETWEEN", "value": "5", "highValue": "25"},
        sorts=[{"propertyName": "amount", "direction": "DESCENDING"}],
    ) == ["Globex", "Acme"]


@pytest.mark.parametrize(
    "body",
    [
        {"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]},
        {
            "filterGroups": [
                {"filters": [{"propertyName": "amount", "operator": "LIKE", "value": "1"}]}
            ]
        },
        {
            "filterGroups": [
                {"filters": [{"propertyName": "amount", "operator": "GT", "value": "x"}]}
            ]
        },
        {"filterGroups": [{"filters": []}] * 6},
        {
            "filterGroups": [
                {"filters": [{"propertyName": "amount", "operator": "HAS_PROPERTY"}] * 7}
            ]
        },
        {
            "filterGroups": [
                {"filters": [{"propertyName": "amount", "operator": "HAS_PROPERTY"}] * 6}
            ]
            * 4
        },
        {"sorts": ["amount", "dealname"]},
        {"limit": 201},
        {"after": "10000"},
    ],
)
def test_bad_searches_are_400(api, body):
    response = api("POST", f"{DEALS}/search", json=body)
    assert response.status_code == 400, body
    assert response.json()["status"] == "error"


def test_search_stops_at_ten_thousand_results(sandbox, api):
    sandbox.admin(
        "POST",
        "seed",
        json={"objectType": "deals", "count": 10_050, "properties": {"dealname": "d{i}"}},
    )
    body = {"limit": 200, "after": "9800"}
    last = api("POST", f"{DEALS}/search", json=body).json()
    assert last["total"] == 10_050 and len(last["results"]) == 200
    assert last["paging"]["next"]["after"] == "10000"
    capped = api(
        "POST", f"{DEALS}/search", json={"limit": 200, "after": last["paging"]["next"]["after"]}
    )
    assert capped.status_code == 400 and "10000" in capped.json()["message"]


def test_faults_and_request_counts(sandbox, api):
    sandbox.admin(
        "POST",
        "faults",
        json={"method": "GET", "path_regex": "/objects/deals$", "status": 503, "count": 2},
    )
    assert [api("GET", DEALS).status_code for _ in range(3)] == [503, 503, 200]
    sandbox.admin(
        "POST",
        "faults",
        json={
            "method": "POST",
            "path_regex": "search",
            "status": None,
            "latency_ms": 300,
            "count": 1,
        },
    )
    started = time.monotonic()
    assert api("POST", f"{DEALS}/search", json={}).status_code == 200
    assert time.monotonic() - started >= 0.3
    counts = sandbox.admin("GET", "requests").json()
    assert counts["by_route"] == {
        "GET /crm/v3/objects/deals": 3,
        "POST /crm/v3/objects/deals/search": 1,
    }
    assert counts["total"] == 4 and counts["by_status"] == {"200": 2, "503": 2}
    assert counts["writes_by_client"] == {}  # reads and searches write nothing
    api("POST", DEALS, json={"properties": {"dealname": "Written"}})
    api("POST", f"{DEALS}/batch/read", json={"inputs": []})
    assert sandbox.admin("GET", "requests").json()["writes_by_client"] == {"127.0.0.1": 1}
    sandbox.admin("DELETE", "requests")
    assert sandbox.admin("GET", "requests").json()["total"] == 0


def test_rate_limits_answer_429_with_hubspot_body_and_headers():
    limits = Limits(per_interval=5, search_per_second=2, search_lag_ms=0)
    with SandboxProcess(limits=limits) as server:
        headers = {"Authorization": f"Bearer {server.token}"}
        responses = [
            requests.get(f"{server.base_url}{DEALS}", headers=headers, timeout=10) for _ in range(6)
        ]
        assert [r.status_code for r in responses] == [200] * 5 + [429]
        assert responses[0].headers["X-HubSpot-RateLimit-Max"] == "5"
        assert responses[3].headers["X-HubSpot-RateLimit-Remaining"] == "1"
        limited = responses[-1]
        assert limited.json()["errorType"] == "RATE_LIMIT"
        assert limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert limited.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"

        searches = [
            requests.post(f"{server.base_url}{DEALS}/search", json={}, headers=headers, timeout=10)
            for _ in range(3)
        ]
        assert [r.status_code for r in searches] == [200, 200, 429]
        assert "X-HubSpot-RateLimit-Max" not in searches[0].headers


def test_search_does_not_see_fresh_writes_until_the_lag_passes():
    with SandboxProcess(
        limits=Limits(per_interval=1000, search_per_second=100, search_lag_ms=400)
    ) as server:
        headers = {"Authorization": f"Bearer {server.token}"}
        requests.post(
            f"{server.base_url}{DEALS}",
            json={"properties": {"dealname": "fresh"}},
            headers=headers,
            timeout=10,
        )

        def search():
            return requests.post(
                f"{server.base_url}{DEALS}/search", json={}, headers=headers, timeout=10
            ).json()

        assert search()["total"] == 0
        time.sleep(0.5)
        assert search()["total"] == 1


def test_state_survives_a_restart(tmp_path):
    db = tmp_path / "portal.db"
    with SandboxProcess(db_path=db, token="fixed-token-for-restart") as server:
        headers = {"Authorization": "Bearer fixed-token-for-restart"}
        created = requests.post(
            f"{server.base_url}{DEALS}",
            json={"properties": {"dealname": "durable"}},
            headers=headers,
            timeout=10,
        ).json()
    with SandboxProcess(db_path=db, token="fixed-token-for-restart") as server:
        again = requests.get(
            f"{server.base_url}{DEALS}/{created['id']}", headers=headers, timeout=10
        )
        assert again.status_code == 200 and again.json()["properties"]["dealname"] == "durable"
