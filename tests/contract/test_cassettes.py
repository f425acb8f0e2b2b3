"""Connector behaviour replayed from cassettes recorded against a real sandbox.

Record again with: `.venv/bin/pytest tests/contract/test_cassettes.py --record-mode=rewrite`
(the fixture then starts a sandbox on 127.0.0.2:8799). `make test` replays with `--record-mode=none`.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from connectors.base import PropertySpec, WriteInput
from connectors.hubspot import HubSpotConnector
from sandbox.server import SandboxProcess

CASSETTES = Path(__file__).parent.parent / "cassettes"
RECORD_HOST, RECORD_PORT = "127.0.0.2", 8799


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
    with SandboxProcess(host=RECORD_HOST, port=RECORD_PORT) as server:
        yield server


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
        assert "Bearer" not in text and "sandbox-" not in text, path
