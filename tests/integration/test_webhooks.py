"""The webhook receiver: only signed, fresh deliveries count; an event wakes only the partner whose
deal it concerns; a burst wakes a partner once; redeliveries wake nobody twice; a receiver that
cannot reach Prefect answers 503 so that HubSpot delivers again."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
import uvicorn

from dealsync.config import load_config
from dealsync.context import open_context
from dealsync.ledger import Ledger
from dealsync.receiving import WEBHOOK_PATH, Debouncer, build_receiver, build_router
from dealsync.run import run_pair
from dealsync.webhooks import WebhookEvent
from sandbox.server import free_port
from sandbox.webhooks import sign_v3
from tests.integration import test_isolation
from tests.integration.conftest import Pair
from tests.integration.test_sync import SHARED, _twin

more_partners = test_isolation.more_partners  # the fixtures of three partners on one vendor
three = test_isolation.three
EVENT_IDS = itertools.count(1000)
SECRETS = {"vendor": "vendor-app-secret", "acme": "acme-app-secret"}


def _with_webhooks(pair: Pair, monkeypatch, shared_secret: bool = False) -> None:
    """Give the vendor and acme connections webhook secrets (others keep none)."""
    monkeypatch.setenv("TEST_VENDOR_HOOKS", SECRETS["vendor"])
    monkeypatch.setenv("TEST_ACME_HOOKS", SECRETS["vendor" if shared_secret else "acme"])
    text = pair.config.read_text()
    for name in ("VENDOR", "ACME"):
        text = text.replace(
            f'token: "env:TEST_{name}_TOKEN"}}',
            f'token: "env:TEST_{name}_TOKEN", webhook_secret: "env:TEST_{name}_HOOKS"}}',
        )
    pair.config.write_text(text)


def _portal(pair: Pair, side: str) -> int:
    return pair.api(side, "GET", "/account-info/v3/details").json()["portalId"]


def _event(portal: int, object_id: str, kind: str = "deal.propertyChange", **extra) -> dict:
    return {
        "eventId": extra.pop("eventId", next(EVENT_IDS)),
        "portalId": portal,
        "subscriptionType": kind,
        "objectId": int(object_id),
        "occurredAt": int(time.time() * 1000),
        **extra,
    }


@contextmanager
def _receiver(pair: Pair, wake) -> Iterator[str]:
    """The receiver for the pair's config, served by uvicorn on a free port; yields its URL."""
    config = load_config(pair.config)
    ledger = Ledger.open(config.ledger_url)
    app = build_receiver(build_router(config, ledger), wake, debounce_s=0.0, min_gap_s=0.0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    finally:
        for crm in pair.servers.values():
            crm.admin("DELETE", "webhooks")
        server.should_exit = True
        thread.join()
        ledger.close()


def _deliver(url: str, events: list[dict], secret: str, age_ms: int = 0, **tamper) -> int:
    body = json.dumps(events).encode()
    stamp = int(time.time() * 1000) - age_ms
    headers = {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": str(stamp),
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, stamp),
    }
    headers.update(tamper.get("headers", {}))
    return requests.post(
        url, data=tamper.get("body", body), headers=headers, timeout=30
    ).status_code


class Wakes:
    """What the receiver asked Prefect to do, by partner."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, int]]] = []
        self.fail = False

    def __call__(self, wakes) -> None:
        if self.fail:
            raise ConnectionError("Prefect is down")
        self.calls += [(partner, dict(reasons)) for partner, reasons in wakes.items()]

    def wait_for(self, count: int) -> list[tuple[str, dict[str, int]]]:
        deadline = time.monotonic() + 60
        while len(self.calls) < count:
            assert time.monotonic() < deadline, self.calls
            time.sleep(0.02)
        return self.calls


def test_only_a_fresh_delivery_signed_by_the_portals_app_is_heard(pair, monkeypatch):
    _with_webhooks(pair, monkeypatch)
    deal = pair.create("partner", dealname="Signed", **SHARED)
    events = [
        _event(_portal(pair, "partner"), deal, propertyName="dealsync_shared", propertyValue="true")
    ]
    wakes = Wakes()
    with _receiver(pair, wakes) as url:
        refused = [
            _deliver(url, events, "a-guessed-secret"),
            _deliver(url, events, SECRETS["acme"], age_ms=5 * 60 * 1000 + 1000),  # replayed late
            _deliver(url, events, SECRETS["acme"], body=json.dumps(events * 2).encode()),
            _deliver(url, events, SECRETS["acme"], headers={"X-HubSpot-Signature-v3": ""}),
        ]
        assert refused == [401, 401, 401, 401]
        answer = requests.post(url, data=b"[]", timeout=30)
        assert answer.status_code == 401 and answer.content == b""  # no detail for a forger
        assert _deliver(url, events, SECRETS["acme"]) == 204
        assert wakes.wait_for(1) == [("acme", {"deal.propertyChange": 1})]
        assert _deliver(url, [{"portalId": "x"}], SECRETS["acme"]) == 400


def test_an_event_wakes_only_the_partner_whose_deal_it_concerns(three, monkeypatch):
    acme = three["acme"]
    _with_webhooks(acme, monkeypatch, shared_secret=True)
    reg = acme.create("partner", dealname="Acme's", **SHARED)
    private = acme.create("partner", dealname="Acme's own business")
    converted = acme.create(
        "vendor",
        dealname="For globex",
        dealsync_partner="globex",
        dealsync_partner_owner_email="ann@globex.test",
    )
    acme.cli("run")
    twin = next(
        d
        for d in acme.deals("vendor", "dealsync_key")
        if d.get("dealsync_key") == f"acme:partner:{reg}"
    )
    vendors_own = acme.create("vendor", dealname="The vendor's own deal")
    vendor, partner = _portal(acme, "vendor"), _portal(acme, "partner")
    wakes = Wakes()
    with _receiver(acme, wakes) as url:
        quiet = [
            _event(vendor, vendors_own, propertyName="amount", propertyValue="9"),
            _event(partner, private, propertyName="dealname", propertyValue="x"),
            _event(partner, private, propertyName="dealsync_shared", propertyValue="false"),
            _event(vendor, vendors_own, propertyName="dealsync_partner", propertyValue="nobody"),
            _event(vendor, vendors_own, "contact.creation"),
        ]
        assert _deliver(url, quiet, SECRETS["vendor"]) == 204
        # A change to the vendor deal converted for globex wakes globex alone.
        assert (
            _deliver(url, [_event(vendor, converted, propertyName="amount")], SECRETS["vendor"])
            == 204
        )
        assert wakes.wait_for(1) == [("globex", {"deal.propertyChange": 1})]
        wakes.calls.clear()
        loud = [
            _event(vendor, twin["id"], "deal.deletion"),
            _event(partner, reg, propertyName="closedate", propertyValue="1"),
            _event(partner, private, propertyName="dealsync_shared", propertyValue="true"),
            _event(vendor, vendors_own, propertyName="dealsync_partner", propertyValue="initech"),
            _event(vendor, "1", "deal.merge", mergedObjectIds=[int(twin["id"])], newObjectId=2),
        ]
        assert _deliver(url, loud, SECRETS["vendor"]) == 204
        woke = dict(wakes.wait_for(2))
        assert woke == {
            "acme": {"deal.deletion": 1, "deal.propertyChange": 2, "deal.merge": 1},
            "initech": {"deal.propertyChange": 1},
        }


def test_a_partner_secret_cannot_speak_for_the_vendor_portal(pair, monkeypatch):
    _with_webhooks(pair, monkeypatch)
    reg = pair.create("partner", dealname="Linked", **SHARED)
    pair.cli("run")
    twin = next(d for d in pair.deals("vendor", "dealsync_key") if d.get("dealsync_key"))
    wakes = Wakes()
    with _receiver(pair, wakes) as url:
        forged = [_event(_portal(pair, "vendor"), twin["id"], "deal.deletion")]
        assert _deliver(url, forged, SECRETS["acme"]) == 204  # signed, but not for that portal
        assert _deliver(url, [_event(_portal(pair, "partner"), reg)], SECRETS["acme"]) == 204
        assert wakes.wait_for(1) == [("acme", {"deal.propertyChange": 1})]  # only its own event


def test_a_redelivery_wakes_nobody_and_a_dead_prefect_gets_503(pair, monkeypatch):
    _with_webhooks(pair, monkeypatch)
    deal = pair.create("partner", dealname="Twice", **SHARED)
    events = [
        _event(
            _portal(pair, "partner"),
            deal,
            eventId=42,
            propertyName="dealsync_shared",
            propertyValue="true",
        )
    ]
    wakes = Wakes()
    with _receiver(pair, wakes) as url:
        assert _deliver(url, events, SECRETS["acme"]) == 204
        wakes.wait_for(1)
        assert _deliver(url, events, SECRETS["acme"]) == 204  # HubSpot's retry of the same batch
        wakes.fail = True
        assert _deliver(url, [{**events[0], "eventId": 43}], SECRETS["acme"]) == 204
        deadline = time.monotonic() + 60
        while _deliver(url, [{**events[0], "eventId": 44}], SECRETS["acme"]) != 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        wakes.fail = False
        calls = wakes.wait_for(2)  # the failed wake is sent again once Prefect answers
        assert calls[0] == ("acme", {"deal.propertyChange": 1}) and calls[1][0] == "acme"


def _concerns(kind: str, count: int = 1) -> list[tuple[str, WebhookEvent]]:
    return [("partner", WebhookEvent(str(next(EVENT_IDS)), 1, kind, ("7",)))] * count


def test_a_syncs_own_writes_wake_nobody_and_a_users_edit_does(pair, monkeypatch):
    _with_webhooks(pair, monkeypatch)
    wakes = Wakes()
    with _receiver(pair, wakes) as url:
        for side, secret in (("vendor", SECRETS["vendor"]), ("partner", SECRETS["acme"])):
            pair.servers[side].admin("POST", "webhooks", json={"targetUrl": url, "secret": secret})
        reg = pair.create("partner", dealname="Heard once", **SHARED)
        assert wakes.wait_for(1) == [("acme", {"deal.propertyChange": 1})]  # its share mark
        # The sync writes both sides (a vendor twin marked for acme, the partner's vendor fields):
        # their events come back while it holds the pair, and are judged after its commit.
        pair.cli("run")
        twin = _twin(pair, "vendor", f"acme:partner:{reg}")
        pair.edit("vendor", twin["id"], closedate="2027-05-01")  # a person's edits, each side's
        pair.edit("partner", reg, dealsync_pain="Heard")  # last event: every echo came before
        deadline = time.monotonic() + 60
        while _woken_for(wakes.calls[1:]) < 2:  # one burst or two, as they were delivered
            assert time.monotonic() < deadline, wakes.calls
            time.sleep(0.02)
        _wait_until_judged(url)
        assert _woken_for(wakes.calls[1:]) == 2  # the sync's own writes woke nobody
        assert {partner for partner, _reasons in wakes.calls} == {"acme"}


def test_an_edit_made_while_the_sync_links_the_deal_wakes_it_again(pair, monkeypatch):
    _with_webhooks(pair, monkeypatch)
    wakes = Wakes()
    with _receiver(pair, wakes) as url:
        for side, secret in (("vendor", SECRETS["vendor"]), ("partner", SECRETS["acme"])):
            pair.servers[side].admin("POST", "webhooks", json={"targetUrl": url, "secret": secret})
        reg = pair.create("partner", dealname="Edited mid-run", **SHARED)
        wakes.wait_for(1)
        vendor = pair.servers["vendor"]
        slow = {
            "method": "POST",
            "path_regex": "deals/batch/create",
            "latency_ms": 3000,
            "count": 1,
        }
        vendor.admin("POST", "faults", json=slow)
        vendor.admin("DELETE", "requests")
        config = load_config(pair.config)
        ledger = Ledger.open(config.ledger_url)
        sync = threading.Thread(target=lambda: run_pair(open_context(config, "acme", ledger)))
        sync.start()
        creating = "POST /crm/v3/objects/deals/batch/create"
        deadline = time.monotonic() + 60
        while not vendor.admin("GET", "requests").json()["by_route"].get(creating):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # The sync read the registration before this edit and links it only at its commit: the
        # edit's event names a deal not linked yet, and is judged once the sync committed.
        pair.edit("partner", reg, closedate="2027-06-01")
        sync.join()
        ledger.close()
        deadline = time.monotonic() + 60
        while not _woken_for(wakes.calls[1:]):
            assert time.monotonic() < deadline, wakes.calls
            time.sleep(0.02)
        assert wakes.calls[1] == ("acme", {"deal.propertyChange": 1})


def _woken_for(calls: list[tuple[str, dict[str, int]]]) -> int:
    """How many events the wakes were for."""
    return sum(sum(reasons.values()) for _partner, reasons in calls)


def _wait_until_judged(url: str) -> None:
    """Until the receiver holds no burst it has not judged."""
    health = url.replace(WEBHOOK_PATH, "/health")
    deadline = time.monotonic() + 60
    while requests.get(health, timeout=30).json()["bursts_open"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_burst_wakes_once_and_a_later_event_wakes_again():
    calls: list[tuple[str, dict[str, int]]] = []

    async def scenario() -> None:
        window = asyncio.Event()
        debouncer = Debouncer(lambda w: calls.extend((p, dict(r)) for p, r in w.items()), 0)
        debouncer.window = window.wait  # the burst lasts until the test says it is over
        for _delivery in range(5):
            debouncer.poke("acme", _concerns("deal.propertyChange", 100))
        debouncer.poke("globex", _concerns("deal.creation"))
        window.set()
        while len(calls) < 2:
            await asyncio.sleep(0.01)
        window.clear()
        debouncer.poke("acme", _concerns("deal.deletion"))
        window.set()
        while len(calls) < 3:
            await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert sorted(calls[:2]) == [
        ("acme", {"deal.propertyChange": 500}),
        ("globex", {"deal.creation": 1}),
    ]
    assert calls[2] == ("acme", {"deal.deletion": 1})


def test_partners_due_together_are_woken_together_in_batches():
    sent: list[dict[str, dict[str, int]]] = []

    async def scenario() -> None:
        window = asyncio.Event()
        debouncer = Debouncer(lambda w: sent.append({p: dict(r) for p, r in w.items()}), 0)
        debouncer.window, debouncer.gather_s, debouncer.batch = window.wait, 0.2, 2
        for partner in ("acme", "globex", "initech"):
            debouncer.poke(partner, _concerns("deal.propertyChange", 2))
        window.set()  # the three bursts end together
        while sum(len(wake) for wake in sent) < 3:
            await asyncio.sleep(0.01)
        window.clear()
        debouncer.poke("acme", _concerns("deal.deletion"))  # a later burst: a wake of its own
        window.set()
        while len(sent) < 3:
            await asyncio.sleep(0.01)
        assert debouncer.sent == 4

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [sorted(wake) for wake in sent] == [["acme", "globex"], ["initech"], ["acme"]]
    assert sent[0]["globex"] == {"deal.propertyChange": 2}
    assert sent[2] == {"acme": {"deal.deletion": 1}}


def test_events_parse_merges_into_every_id_they_name():
    from dealsync.webhooks import parse_events

    body = json.dumps([_event(7, "1", "deal.merge", mergedObjectIds=[2, 3], newObjectId=4)])
    (event,) = parse_events(body.encode())
    assert event == WebhookEvent(event.event_id, 7, "deal.merge", ("1", "4", "2", "3"))


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b"[1]",
        b'[{"portalId": true, "subscriptionType": "deal.creation", "objectId": 1}]',
        b'[{"portalId": 1, "subscriptionType": "creation", "objectId": 1}]',
        b'[{"portalId": 1, "subscriptionType": "deal.creation"}]',
        b"\xff",
    ],
)
def test_a_malformed_body_is_named(body):
    from dealsync.webhooks import MalformedDelivery, parse_events

    with pytest.raises(MalformedDelivery):
        parse_events(body)


def test_a_flooding_partner_is_woken_at_most_once_per_gap():
    woken: list[float] = []  # when the debouncer let each wake go

    async def scenario() -> None:
        debouncer = Debouncer(
            lambda w: woken.extend(debouncer.last_wake[p] for p in w), 0, min_gap_s=0.5
        )
        for _ in range(3):  # three bursts, each as soon as the previous wake went out
            debouncer.poke("acme", _concerns("deal.propertyChange"))
            while len(woken) < _ + 1:
                await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [later - earlier >= 0.5 for earlier, later in itertools.pairwise(woken)] == [True, True]
