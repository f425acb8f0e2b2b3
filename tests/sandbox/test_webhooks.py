"""The sandbox delivers deal events as HubSpot does: signed v3, in arrays of at most 100, retried
after failures with the attempt number, only after the change committed, stopped by a reset."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dealsync.webhooks import request_uri, signature_valid
from sandbox.server import SandboxProcess

SECRET = "app-client-secret-for-tests"


@dataclass
class Recorder:
    """An app's webhook endpoint: keeps every delivery, answers the statuses it is told to."""

    url: str = ""
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # then 204 for the rest
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[dict]:
        with self.lock:
            return [e for _headers, body in self.deliveries for e in json.loads(body)]

    def wait_for(self, condition, what: str, timeout_s: float = 60.0) -> None:
        """Wait until `condition(self)` holds (a condition, not a delay)."""
        deadline = time.monotonic() + timeout_s
        while not condition(self):
            assert time.monotonic() < deadline, f"never saw {what}: {self.events()}"
            time.sleep(0.05)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    found = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with found.lock:
                found.deliveries.append((dict(self.headers), body))
                status = found.answers.pop(0) if found.answers else 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hooks?app=dealsync"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()


def _subscribe(sandbox: SandboxProcess, recorder: Recorder, **extra) -> None:
    sandbox.admin("POST", "webhooks", json={"targetUrl": recorder.url, "secret": SECRET, **extra})


def test_a_new_deal_is_delivered_signed_with_its_properties(sandbox, api, recorder):
    _subscribe(sandbox, recorder)
    portal = api("GET", "/account-info/v3/details").json()["portalId"]
    deal = api(
        "POST", "/crm/v3/objects/deals", json={"properties": {"dealname": "Hooked", "amount": "5"}}
    ).json()["id"]
    recorder.wait_for(lambda r: len(r.events()) >= 3, "a creation and two property changes")

    headers, body = recorder.deliveries[0]
    now = int(time.time() * 1000)
    uri = request_uri(recorder.url)
    stamp, signature = headers["X-HubSpot-Request-Timestamp"], headers["X-HubSpot-Signature-v3"]
    assert signature_valid(SECRET, "POST", uri, body, stamp, signature, now)
    assert not signature_valid("another-secret", "POST", uri, body, stamp, signature, now)
    assert not signature_valid(SECRET, "POST", uri, body + b" ", stamp, signature, now)
    events = recorder.events()
    assert {e["portalId"] for e in events} == {portal}
    assert {e["objectId"] for e in events} == {int(deal)}
    kinds = sorted((e["subscriptionType"], e.get("propertyName")) for e in events)
    assert kinds == [
        ("deal.creation", None),
        ("deal.propertyChange", "amount"),
        ("deal.propertyChange", "dealname"),
    ]
    assert all(e["attemptNumber"] == 0 and e["appId"] and e["eventId"] for e in events)


def test_a_big_batch_arrives_in_arrays_of_at_most_100(sandbox, api, recorder):
    _subscribe(sandbox, recorder, subscriptions=["deal.creation"])
    inputs = [{"properties": {"dealname": f"Bulk {n}"}} for n in range(100)]
    for _ in range(3):
        api("POST", "/crm/v3/objects/deals/batch/create", json={"inputs": inputs})
    recorder.wait_for(lambda r: len(r.events()) >= 300, "300 creations")
    assert all(len(json.loads(body)) <= 100 for _h, body in recorder.deliveries)
    ids = [e["eventId"] for e in recorder.events()]
    assert len(ids) == len(set(ids)) == 300  # nothing twice, nothing for other subscriptions


def test_a_failed_delivery_is_retried_with_its_attempt_number(sandbox, api, recorder):
    recorder.answers = [503, 429]
    _subscribe(sandbox, recorder, subscriptions=["deal.deletion"])
    deal = api("POST", "/crm/v3/objects/deals", json={"properties": {"dealname": "Gone"}}).json()
    api("DELETE", f"/crm/v3/objects/deals/{deal['id']}")
    recorder.wait_for(lambda r: len(r.deliveries) >= 3, "two retries")
    attempts = [json.loads(body)[0] for _h, body in recorder.deliveries]
    assert [a["attemptNumber"] for a in attempts] == [0, 1, 2]
    assert {a["eventId"] for a in attempts} == {attempts[0]["eventId"]}
    assert attempts[0]["subscriptionType"] == "deal.deletion"
    status = sandbox.admin("GET", "webhooks").json()
    assert status["deliveredEvents"] == 1 and status["failedAttempts"] == 2


def test_a_refusal_is_final_and_counted(sandbox, api, recorder):
    recorder.answers = [400]
    _subscribe(sandbox, recorder, subscriptions=["deal.creation"])
    api("POST", "/crm/v3/objects/deals", json={"properties": {"dealname": "Refused"}})
    recorder.wait_for(lambda r: len(r.deliveries) >= 1, "the delivery")

    def dropped(_r: Recorder) -> bool:
        return sandbox.admin("GET", "webhooks").json()["droppedEvents"] == 1

    recorder.wait_for(dropped, "the event counted as dropped")
    assert len(recorder.deliveries) == 1


def test_associations_merges_and_only_committed_changes(sandbox, api, recorder):
    _subscribe(sandbox, recorder, subscriptions=["deal.associationChange", "deal.merge"])
    deal = api("POST", "/crm/v3/objects/deals", json={"properties": {"dealname": "A"}}).json()
    other = api("POST", "/crm/v3/objects/deals", json={"properties": {"dealname": "B"}}).json()
    note = {
        "properties": {"hs_timestamp": "2026-01-01T00:00:00Z", "hs_note_body": "n"},
        "associations": [
            {
                "to": {"id": deal["id"]},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}],
            }
        ],
    }
    api("POST", "/crm/v3/objects/notes", json=note)
    # A create refused as a whole (an unknown property) commits nothing and announces nothing.
    refused = api("POST", "/crm/v3/objects/deals", json={"properties": {"no_such": "x"}})
    assert refused.status_code == 400
    merged = api(
        "POST",
        "/crm/v3/objects/deals/merge",
        json={"primaryObjectId": deal["id"], "objectIdToMerge": other["id"]},
    ).json()
    recorder.wait_for(lambda r: len(r.events()) >= 3, "the association, the merge, its move")
    association, moved, merge = sorted(
        recorder.events(), key=lambda e: (e["subscriptionType"], e["eventId"])
    )
    assert association["subscriptionType"] == "deal.associationChange"
    assert association["objectId"] == int(deal["id"])
    assert association["associationType"] == "DEAL_TO_NOTE"
    assert association["associationRemoved"] is False
    assert merge["subscriptionType"] == "deal.merge"
    assert merge["newObjectId"] == int(merged["id"])
    assert moved["objectId"] == int(merged["id"])  # the note now hangs on the merged deal
    assert set(merge["mergedObjectIds"]) | {merge["primaryObjectId"]} == {
        int(deal["id"]),
        int(other["id"]),
    }
    assert len(recorder.events()) == 3


def test_a_reset_stops_deliveries(sandbox, api, recorder):
    _subscribe(sandbox, recorder)
    sandbox.admin("POST", "reset")
    api("POST", "/crm/v3/objects/deals", json={"properties": {"dealname": "Unheard"}})
    # A second subscription proves the sender runs: the first deal was never queued.
    _subscribe(sandbox, recorder, subscriptions=["deal.creation"])
    api("POST", "/crm/v3/objects/deals", json={"properties": {"dealname": "Heard"}})
    recorder.wait_for(lambda r: len(r.events()) >= 1, "the second deal")
    assert len(recorder.events()) == 1
    assert sandbox.admin("GET", "webhooks").json()["subscriptions"] == ["deal.creation"]
