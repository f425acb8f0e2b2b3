"""Connector behaviour replayed from cassettes recorded against a real sandbox.

Record again with: `.venv/bin/pytest tests/contract/test_cassettes.py --record-mode=rewrite`
(the fixture then starts a sandbox on 127.0.0.2:8799). `make test` replays with `--record-mode=none`.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bottlecrm.server import BottleCrmServer
from connectors.base import PropertySpec, WriteInput
from connectors.bottlecrm import BottleCrmConnector
from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_http import SalesforceHttp, SalesforceLogin
from sandbox.salesforce.server import SalesforceProcess
from sandbox.server import SandboxProcess
from sandbox.traffic import Limits
from tests.contract.conftest import salesforce_login

CASSETTES = Path(__file__).parent.parent / "cassettes"
RECORD_HOST, RECORD_PORT = "127.0.0.2", 8799
BOTTLECRM_PORT = 8798


SALESFORCE_PORT = 8797
SALESFORCE_SECRETS = ("client_id", "client_secret", "refresh_token", "assertion")


def _scrub_session(response: dict) -> dict:
    """A Salesforce token answer as recorded: its access token replaced."""
    body = response.get("body", {}).get("string", b"")
    if b'"access_token"' in body:
        answer = json.loads(body)
        answer["access_token"] = "replayed-session"
        answer.pop("signature", None)  # signed with the app's secret
        response["body"]["string"] = json.dumps(answer).encode()
    return response


@pytest.fixture(scope="module")
def vcr_config():
    return {
        "filter_headers": ["authorization"],
        "filter_post_data_parameters": list(SALESFORCE_SECRETS),
        "before_record_response": _scrub_session,
        "decode_compressed_response": True,
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request) -> str:
    return str(CASSETTES / request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def recorded_sandbox(request):
    """A real sandbox while recording; only its address when replaying (no server needed)."""
    if request.config.getoption("--record-mode") == "none":
        yield SimpleNamespace(
            base_url=f"http://{RECORD_HOST}:{RECORD_PORT}", token="replayed-token"
        )
        return
    # Instant search: the pull reads what the test just wrote (search lag is tested elsewhere).
    with SandboxProcess(
        host=RECORD_HOST, port=RECORD_PORT, limits=Limits(search_lag_ms=0)
    ) as server:
        yield server


@pytest.fixture(scope="module")
def recorded_bottlecrm(request):
    """A real BottleCRM while recording; only its address when replaying."""
    if request.config.getoption("--record-mode") == "none":
        yield SimpleNamespace(
            base_url=f"http://{RECORD_HOST}:{BOTTLECRM_PORT}", token="replayed-token"
        )
        return
    with BottleCrmServer(host=RECORD_HOST, port=BOTTLECRM_PORT) as server:
        yield server


@pytest.fixture(scope="module")
def recorded_salesforce(request):
    """A real Salesforce sandbox while recording (a login and its certificate); when replaying,
    a login of placeholders and no certificate (nothing is sent)."""
    if request.config.getoption("--record-mode") == "none":
        url = f"https://{RECORD_HOST}:{SALESFORCE_PORT}"
        yield SalesforceLogin(url, "replayed-app", "replayed", "replayed"), True
        return
    with SalesforceProcess(host=RECORD_HOST, port=SALESFORCE_PORT) as server:
        yield salesforce_login(server), str(server.cert)


@pytest.mark.vcr
def test_salesforce_writes_reads_and_refusals(recorded_salesforce):
    login, verify = recorded_salesforce
    connector = SalesforceConnector(SalesforceHttp(login, "cassette", verify=verify), lookback_ms=0)
    connector.ensure_properties("deals", [PropertySpec("dealsync_key__c", "key", unique=True)])
    deal = {"StageName": "Prospecting", "CloseDate": "2027-01-31"}
    made = connector.create(
        "deals",
        [
            WriteInput("a", {**deal, "Name": "Alpha", "dealsync_key__c": "acme:vendor:1"}),
            WriteInput("b", {**deal, "Name": "Beta", "Amount": "lots"}),
            WriteInput("c", {**deal, "Name": "Gamma", "dealsync_key__c": "acme:vendor:1"}),
        ],
    )
    assert [o.ok for o in made] == [True, False, False]
    assert "DUPLICATE_VALUE" in str(made[2].error) and not made[2].error.retriable
    again = connector.upsert(
        "deals", "dealsync_key__c", [WriteInput("acme:vendor:1", {"Amount": "5"})]
    )
    assert not again[0].created and again[0].record.id == made[0].record.id
    pulled = [
        r
        for page in connector.pull_changes("deals", None, ["Name", "Amount"])
        for r in page.records
    ]
    assert [(r.properties["Name"], r.properties["Amount"]) for r in pulled] == [("Alpha", "5")]
    assert connector.archive("deals", [made[0].record.id])[0].ok
    archived = [r.id for page in connector.list_archived("deals", ["Name"]) for r in page]
    assert archived == [made[0].record.id]


@pytest.mark.vcr
def test_bottlecrm_upsert_looks_the_key_up_before_creating(recorded_bottlecrm):
    sb = recorded_bottlecrm
    connector = BottleCrmConnector(sb.base_url, sb.token, connection="cassette")
    connector.ensure_properties("deals", [PropertySpec("cf_dealsync_key", "dealsync key")])
    first = connector.upsert(
        "deals",
        "cf_dealsync_key",
        [WriteInput("acme:vendor:9", {"name": "Keyed", "stage": "PROSPECTING"})],
    )
    again = connector.upsert(
        "deals", "cf_dealsync_key", [WriteInput("acme:vendor:9", {"name": "Keyed, renamed"})]
    )
    assert first[0].created and not again[0].created and first[0].record.id == again[0].record.id
    scanned = [r for page in connector.pull_changes("deals", None, []) for r in page.records]
    assert [r.properties["name"] for r in scanned] == ["Keyed, renamed"]
    ghost = connector.update(
        "deals", [WriteInput("g", {"name": "x"}, id="00000000-0000-0000-0000-000000000000")]
    )
    assert not ghost[0].ok and ghost[0].error.status == 404


@pytest.mark.vcr
def test_bottlecrm_comments_and_attachments(recorded_bottlecrm):
    sb = recorded_bottlecrm
    connector = BottleCrmConnector(sb.base_url, sb.token, connection="cassette")
    deal = connector.create("deals", [WriteInput("d", {"name": "Files", "stage": "PROSPECTING"})])
    deal_id = deal[0].record.id
    on_deal = [("deals", deal_id, 214)]
    made = connector.create(
        "notes",
        [
            WriteInput("shared", {"comment": "Shared words"}, associations=on_deal),
            WriteInput("private", {"comment": "Ours", "is_internal": "true"}, associations=on_deal),
            WriteInput("empty", {"comment": "  "}, associations=on_deal),
        ],
    )
    assert [o.ok for o in made] == [True, True, False]  # an empty comment is refused, alone
    shared, private = made[0].record, made[1].record
    assert (
        shared.properties["is_internal"] == "false" and private.properties["is_internal"] == "true"
    )
    edited = connector.update("notes", [WriteInput("e", {"comment": "Edited"}, id=shared.id)])
    assert edited[0].record.properties["comment"] == "Edited"
    attached = connector.attach(deal_id, "quote.bin", bytes(range(256)) * 40)
    assert b"".join(connector.download_file(attached.id)) == bytes(range(256)) * 40
    assert connector.archive("notes", [private.id])[0].ok
    connector.delete_file(attached.id)
    fresh = BottleCrmConnector(sb.base_url, sb.token, connection="cassette")
    listed = fresh.associations("deals", "notes", [deal_id])
    assert listed == {deal_id: (shared.id,)}
    assert fresh.deal_attachments([deal_id]) == {deal_id: ()}


@pytest.mark.vcr
def test_partial_batch_failure_and_pull(recorded_sandbox):
    sb = recorded_sandbox
    connector = HubSpotConnector(sb.base_url, sb.token, connection="cassette", lookback_ms=0)
    connector.ensure_properties(
        "deals", [PropertySpec("dealsync_key", "dealsync key", unique=True)]
    )
    connector.upsert("deals", "dealsync_key", [WriteInput("k-held", {"dealname": "holder"})])
    outcomes = connector.create(
        "deals",
        [
            WriteInput("new", {"dealname": "new", "dealsync_key": "k-new"}),
            WriteInput("clash", {"dealname": "clash", "dealsync_key": "k-held"}),
        ],
    )
    assert [o.ok for o in outcomes] == [True, False]
    assert "unique" in str(outcomes[1].error)
    pulled = {
        r.properties["dealname"]
        for page in connector.pull_changes("deals", None, ["dealname"])
        for r in page.records
    }
    assert {"holder", "new"} <= pulled and "clash" not in pulled


@pytest.mark.vcr
def test_retry_after_a_503(recorded_sandbox):
    sb = recorded_sandbox
    connector = HubSpotConnector(sb.base_url, sb.token, connection="cassette")
    if isinstance(sb, SandboxProcess):
        sb.admin(
            "POST",
            "faults",
            json={"method": "GET", "path_regex": "owners", "status": 503, "count": 1},
        )
    connector.owners()
    assert connector.http.retries == 1


def test_cassettes_hold_no_credentials():
    files = sorted(CASSETTES.rglob("*.yaml"))
    assert files, "no cassettes recorded"
    for path in files:
        text = path.read_text()
        assert "Bearer " not in text and "sandbox-" not in text and "bcrm_pat_" not in text, path
        # Salesforce: no session, refresh token, consumer key or secret.
        assert "SANDBOX!" not in text and "5Aep861" not in text and "3MVG9" not in text, path
