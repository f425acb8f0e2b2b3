"""Webhooks as HubSpot sends them: signed (v3) batches of deal events POSTed to an app's target URL.

A portal given a target URL and a secret (`POST /_sandbox/webhooks`) records an event for each
committed change of a deal and delivers them from a thread of its own: arrays of at most 100 events
per request, signed with `X-HubSpot-Signature-v3`, retried with backoff after a timeout, a failed
connection or a 5xx or 429 answer (other 4xx answers are final, as on HubSpot).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import requests

logger = logging.getLogger("sandbox.webhooks")

# What an app can subscribe to for deals (HubSpot's webhooks API).
DEAL_SUBSCRIPTIONS = (
    "deal.creation",
    "deal.propertyChange",
    "deal.deletion",
    "deal.merge",
    "deal.associationChange",
)
MAX_EVENTS_PER_REQUEST = 100
DELIVERY_TIMEOUT_S = 5.0  # HubSpot waits 5 s for an answer
MAX_ATTEMPTS = 10  # HubSpot tries a notification up to 10 times
# Waits before each retry; HubSpot spreads 10 attempts over a day, the sandbox over a minute.
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0, 15.0, 15.0)
APP_ID = 1_000_001  # the one app the sandbox delivers for
ASSOCIATION_NAMES = {
    "notes": "NOTE",
    "deals": "DEAL",
    "companies": "COMPANY",
    "contacts": "CONTACT",
}


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """HubSpot's v3 signature: base64 HMAC-SHA256 of method + URI + body + timestamp."""
    message = method.encode() + uri.encode() + body + str(timestamp_ms).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Change:
    """One committed change of a record, as the store saw it."""

    kind: str  # creation, propertyChange, deletion, merge, associationChange
    object_type: str
    object_id: int
    occurred_ms: int
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Subscription:
    """Where and what a portal delivers: the app's target URL, its secret, the event types."""

    target_url: str
    secret: str
    types: frozenset[str] = frozenset(DEAL_SUBSCRIPTIONS)
    properties: frozenset[str] | None = None  # propertyChange of these only (None: every property)

    def wants(self, change: Change) -> bool:
        """Whether this subscription covers the change."""
        if f"{_singular(change.object_type)}.{change.kind}" not in self.types:
            return False
        if change.kind == "propertyChange" and self.properties is not None:
            return change.detail.get("propertyName") in self.properties
        return True


def _singular(object_type: str) -> str:
    return object_type.removesuffix("s")


@dataclass
class Delivery:
    """What a portal's deliveries did (`GET /_sandbox/webhooks`)."""

    delivered_events: int = 0
    requests: int = 0
    failed_attempts: int = 0
    dropped_events: int = 0
    last_status: int | None = None


class WebhookSender:
    """One portal's subscription, its queue of events and the thread that delivers them."""

    def __init__(self, portal_id: int) -> None:
        self.portal_id = portal_id
        self.subscription: Subscription | None = None
        self.stats = Delivery()
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Condition()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._http = requests.Session()

    def subscribe(self, subscription: Subscription | None) -> None:
        """Start delivering to a target (None stops and forgets the queue)."""
        with self._wake:
            self.subscription = subscription
            if subscription is None:
                self._queue.clear()
            self.stats = Delivery()
            if subscription is not None and self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"webhooks-{self.portal_id}", daemon=True
                )
                self._thread.start()

    def record(self, changes: list[Change]) -> None:
        """Queue the events of committed changes that the subscription covers."""
        subscription = self.subscription
        if subscription is None:
            return
        events = [self._event(c) for c in changes if subscription.wants(c)]
        if events:
            with self._wake:
                self._queue.extend(events)
                self._wake.notify()

    def pending(self) -> int:
        """Events not delivered yet."""
        return len(self._queue)

    def stop(self) -> None:
        """Stop the delivery thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()

    def _event(self, change: Change) -> dict[str, Any]:
        event: dict[str, Any] = {
            "eventId": next(self._ids),
            "subscriptionId": 1,
            "portalId": self.portal_id,
            "appId": APP_ID,
            "occurredAt": change.occurred_ms,
            "subscriptionType": f"{_singular(change.object_type)}.{change.kind}",
            "attemptNumber": 0,
            "objectId": change.object_id,
            "changeSource": "API",
            "changeFlag": {"creation": "CREATED", "deletion": "DELETED"}.get(change.kind),
        }
        event.update(change.detail)
        return {k: v for k, v in event.items() if v is not None}

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                batch = [
                    self._queue.popleft()
                    for _ in range(min(MAX_EVENTS_PER_REQUEST, len(self._queue)))
                ]
            self._deliver(batch)

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """POST one batch until it is accepted, refused for good, or out of attempts."""
        for attempt in range(MAX_ATTEMPTS):
            subscription = self.subscription
            if subscription is None or self._stopping:
                return
            body = json.dumps([{**e, "attemptNumber": attempt} for e in batch]).encode()
            status = self._post(subscription, body)
            self.stats.requests += 1
            self.stats.last_status = status
            if status is not None and 200 <= status < 300:
                self.stats.delivered_events += len(batch)
                return
            self.stats.failed_attempts += 1
            if status is not None and 400 <= status < 500 and status != 429:
                break
            if attempt < len(RETRY_DELAYS_S):
                time.sleep(RETRY_DELAYS_S[attempt])
        self.stats.dropped_events += len(batch)
        logger.warning("dropped %d webhook events for %s", len(batch), self.portal_id)

    def _post(self, subscription: Subscription, body: bytes) -> int | None:
        timestamp = int(time.time() * 1000)
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Request-Timestamp": str(timestamp),
            "X-HubSpot-Signature-v3": sign_v3(
                subscription.secret, "POST", subscription.target_url, body, timestamp
            ),
        }
        try:
            response = self._http.post(
                subscription.target_url, data=body, headers=headers, timeout=DELIVERY_TIMEOUT_S
            )
        except requests.RequestException:
            return None
        return response.status_code


def association_detail(from_type: str, to_type: str, to_id: int, removed: bool) -> dict[str, Any]:
    """The fields of an associationChange event."""
    return {
        "associationType": f"{ASSOCIATION_NAMES.get(from_type, from_type.upper())}_TO_"
        f"{ASSOCIATION_NAMES.get(to_type, to_type.upper())}",
        "toObjectId": to_id,
        "associationRemoved": removed,
        "isPrimaryAssociation": False,
    }
