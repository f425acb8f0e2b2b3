"""Connector behaviour replayed from cassettes recorded against a real sandbox.

Record again with: `.venv/bin/pytest tests/contract/test_cassettes.py --record-mode=rewrite`
(the fixture then starts a sandbox on 127.0.0.2:8799). `make test` replays with `--record-mode=none`.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from bottlecrm.server import BottleCrmServer
from connectors.base import PropertySpec, WriteInput
from connectors.bottlecrm import BottleCrmConnector
from connectors.hubspot import HubSpotConnector
from sandbox.server import SandboxProcess
from sandbox.traffic import Limits

CASSETTES = Path(__file__).parent.parent / "cassettes"
RECORD_HOST, RECORD_PORT = "127.0.0.2", 8799
BOTTLECRM_PORT = 8798


@pytest.fixture(scope="module")
def vcr_config():
    return {"filter_headers": ["authorization"], "decode_compressed_response": True}


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
        assert "Bearer" not in text and "sandbox-" not in text and "bcrm_pat_" not in text, path
