"""Many portals in one sandbox process: each with its own token, data, counts and rate limits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from sandbox.server import SandboxProcess, free_port
from sandbox.traffic import Limits


@pytest.fixture(scope="module")
def three() -> SandboxProcess:
    with SandboxProcess(portals=3, limits=Limits(per_interval=5, search_lag_ms=0)) as server:
        yield server


def _call(server: SandboxProcess, token: str, method: str, path: str, **kwargs):
    return requests.request(
        method,
        f"{server.base_url}{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **kwargs,
    )


def test_each_portal_sees_only_its_own_records(three: SandboxProcess):
    first, second, third = three.tokens
    assert len(set(three.tokens)) == 3
    for token in three.tokens:
        three.admin("POST", "reset", token=token)
    made = _call(
        three, first, "POST", "/crm/v3/objects/deals", json={"properties": {"dealname": "A"}}
    )
    deal_id = made.json()["id"]
    assert _call(three, first, "GET", f"/crm/v3/objects/deals/{deal_id}").status_code == 200
    assert _call(three, second, "GET", f"/crm/v3/objects/deals/{deal_id}").status_code == 404
    listed = _call(three, third, "GET", "/crm/v3/objects/deals").json()
    assert listed["results"] == []
    counts = [three.admin("GET", "requests", token=t).json()["total"] for t in three.tokens]
    assert counts == [2, 1, 1]


def test_each_portal_has_its_own_rate_limit(three: SandboxProcess):
    first, second, _ = three.tokens
    answers = [_call(three, first, "GET", "/crm/v3/objects/deals").status_code for _ in range(8)]
    assert 429 in answers
    assert _call(three, second, "GET", "/crm/v3/objects/deals").status_code == 200


def test_a_token_of_no_portal_is_refused(three: SandboxProcess):
    assert _call(three, "not-a-portal", "GET", "/crm/v3/objects/deals").status_code == 401
    assert _call(three, "not-a-portal", "GET", "/_sandbox/requests").status_code == 401


def test_signed_downloads_come_from_the_portal_that_signed_them(three: SandboxProcess):
    _, second, third = three.tokens
    three.admin("POST", "reset", token=second)
    uploaded = _call(
        three,
        second,
        "POST",
        "/files/v3/files",
        files={"file": ("a.txt", b"portal two")},
        data={
            "fileName": "a.txt",
            "folderPath": "/x",
            "options": json.dumps({"access": "PRIVATE"}),
        },
    ).json()
    signed = _call(three, second, "GET", f"/files/v3/files/{uploaded['id']}/signed-url").json()
    assert requests.get(signed["url"], timeout=30).content == b"portal two"
    assert _call(three, third, "GET", f"/files/v3/files/{uploaded['id']}").status_code == 404


def test_the_cli_writes_the_portals_file_and_keeps_its_tokens_across_restarts(tmp_path):
    listing, folder = tmp_path / "portals.json", tmp_path / "portals"
    tokens = []
    for _start in range(2):
        port = free_port()
        command = [
            *(sys.executable, "-m", "sandbox", "serve", "--port", str(port)),
            *("--portals", "4", "--portals-file", str(listing), "--db", str(folder), "--quiet"),
        ]
        server = subprocess.Popen(command)
        try:
            _wait_for_health(f"http://127.0.0.1:{port}", server)
            body = json.loads(listing.read_text())
            assert body["base_url"] == f"http://127.0.0.1:{port}"
            assert [p["name"] for p in body["portals"]] == [f"portal-{n:02d}" for n in range(4)]
            tokens.append([p["token"] for p in body["portals"]])
        finally:
            server.terminate()
            server.wait()
    assert len(set(tokens[0])) == 4 and tokens[0] == tokens[1]
    assert sorted(folder.glob("*.db")) == [folder / f"portal-{n:02d}.db" for n in range(4)]


def _wait_for_health(base_url: str, process: subprocess.Popen) -> None:
    """Until the server answers (or exits)."""
    while process.poll() is None:
        try:
            if requests.get(f"{base_url}/_sandbox/health", timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
    raise AssertionError(f"the sandbox exited with {process.returncode}")
