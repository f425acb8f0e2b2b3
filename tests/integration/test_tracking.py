"""Active registrations are counted and written to the vendor; recipients are notified, safely."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.integration.test_notes import _note
from tests.integration.test_sync import SHARED, _twin


@pytest.fixture
def receiver():
    """A local HTTP server that records what webhooks post to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def _company(pair) -> dict:
    body = {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "dealsync_partner_id", "operator": "EQ", "value": "acme"}
                ]
            }
        ],
        "properties": ["name", "dealsync_active_registrations"],
    }
    return pair.api("vendor", "POST", "/crm/v3/objects/companies/search", json=body).json()[
        "results"
    ][0]["properties"]


def test_active_registrations_are_counted_and_written_to_the_vendor(pair):
    regs = [pair.create("partner", dealname=f"Deal {n}", **SHARED) for n in range(3)]
    pair.cli("run")
    assert _company(pair)["dealsync_active_registrations"] == "3"
    won = _twin(pair, "vendor", f"acme:partner:{regs[0]}")["id"]
    pair.edit("vendor", won, dealstage="closedwon")
    pair.archive("partner", regs[1])
    result = pair.cli("run")
    assert "active registrations: 1" in result.output
    assert _company(pair)["dealsync_active_registrations"] == "1"
    row = next(line for line in pair.cli("status").output.splitlines() if "acme" in line)
    assert [cell.strip() for cell in row.split("│")[1:4]] == ["acme", "2", "1"]


def test_recipients_hear_of_registrations_and_shared_notes_without_secrets(
    pair, receiver, monkeypatch
):
    url, received = receiver
    monkeypatch.setenv("ACME_HOOK", url)
    pair.config.write_text(pair.config.read_text() + "    notify: [{webhook: env:ACME_HOOK}]\n")
    reg = pair.create("partner", dealname="Acme Cloud", dealsync_pain="confidential pain", **SHARED)
    pair.cli("run")
    vid = _twin(pair, "vendor", f"acme:partner:{reg}")["id"]
    _note(pair, "vendor", vid, "<p>Shared pricing details</p>", dealsync_shared="true")
    _note(pair, "vendor", vid, "<p>PRIVATE margin talk</p>")
    pair.cli("run")

    texts = [m["text"] for m in received]
    assert any("New deal registration from partner acme: Acme Cloud" in t for t in texts)
    assert any("New shared note from the vendor" in t for t in texts)
    everything = json.dumps(received)
    for secret in (
        pair.servers["vendor"].token,
        pair.servers["partner"].token,
        "PRIVATE",
        "confidential",
        "pricing",
    ):
        assert secret not in everything
    count = len(received)
    pair.cli("run")
    assert len(received) == count  # nothing new, nothing sent
