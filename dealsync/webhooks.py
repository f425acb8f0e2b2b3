"""HubSpot webhooks: check a delivery's v3 signature, read its events, find the partners to wake.

A delivery is trusted only through its signature (HMAC-SHA256 keyed with the secret of the app that
subscribed, over method + URI + body + timestamp) and only for the portals whose secret signed it.
An event wakes a partner's sync when it concerns a deal linked to that partner, or when it sets the
share property so that the deal becomes that partner's; every other event (the vendor's own deals,
a partner's private deals) wakes nobody. Before the wake goes out, the events are judged again
against the ledger (`needing_run`): those of dealsync's own writes, and changes no run would act on,
wake nobody either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from dealsync.echoes import settled_property
from dealsync.mapping import DealMapping, ShareRule
from dealsync.merges import side_id
from dealsync.model import SIDES, Link, Side

MAX_AGE_MS = 5 * 60 * 1000  # HubSpot: reject a timestamp older than 5 minutes
MAX_BODY_BYTES = 1024 * 1024  # 100 events are a few tens of kB


class MalformedDelivery(ValueError):
    """A signed delivery whose body is not an array of HubSpot events."""


def request_uri(url: str) -> str:
    """The URI as HubSpot signs it: the URL it called, with percent-encoded characters decoded."""
    return unquote(url)


def signature_valid(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now_ms: int,
) -> bool:
    """Whether a request carries a fresh v3 signature made with `secret`."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs(now_ms - int(timestamp)) > MAX_AGE_MS:
        return False
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    expected = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.encode())


@dataclass(frozen=True)
class WebhookEvent:
    """One event of a delivery, with what routing needs."""

    event_id: str
    portal_id: int
    subscription_type: str
    object_ids: tuple[str, ...]  # the deal, and for a merge every id it involved
    property_name: str | None = None
    property_value: str | None = None
    associated_id: str | None = None  # an associationChange: the record on the other end
    association_type: str | None = None  # e.g. DEAL_TO_NOTE
    association_removed: bool = False

    @property
    def object_type(self) -> str:
        """`deal` of `deal.propertyChange`."""
        return self.subscription_type.partition(".")[0]

    @property
    def kind(self) -> str:
        """`propertyChange` of `deal.propertyChange`."""
        return self.subscription_type.partition(".")[2]

    @property
    def note_associated(self) -> str | None:
        """The note an associationChange attached to (or took off) the deal."""
        if self.association_type and self.association_type.endswith("_TO_NOTE"):
            return self.associated_id
        return None


def parse_events(body: bytes) -> list[WebhookEvent]:
    """The events of a delivery: a JSON array of objects with portalId, subscriptionType, objectId."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedDelivery(f"the body is not JSON: {exc}") from None
    if not isinstance(raw, list):
        raise MalformedDelivery("the body must be a JSON array of events")
    return [_event(item, n) for n, item in enumerate(raw)]


def _event(item: Any, n: int) -> WebhookEvent:
    if not isinstance(item, dict):
        raise MalformedDelivery(f"event {n} is not an object")
    portal, kind, object_id = (
        item.get("portalId"),
        item.get("subscriptionType"),
        item.get("objectId"),
    )
    if not isinstance(portal, int) or isinstance(portal, bool):
        raise MalformedDelivery(f"event {n}: portalId must be a number")
    if not isinstance(kind, str) or "." not in kind:
        raise MalformedDelivery(f"event {n}: subscriptionType must look like deal.propertyChange")
    ids = [object_id, item.get("primaryObjectId"), item.get("newObjectId")]
    ids += item.get("mergedObjectIds") or []
    named = tuple(dict.fromkeys(str(i) for i in ids if isinstance(i, int | str) and str(i)))
    if not named:
        raise MalformedDelivery(f"event {n}: objectId is missing")
    value = item.get("propertyValue")
    associated = item.get("toObjectId")
    return WebhookEvent(
        event_id=str(item.get("eventId", "")),
        portal_id=portal,
        subscription_type=kind,
        object_ids=named,
        property_name=str(item["propertyName"]) if item.get("propertyName") else None,
        property_value=None if value is None else str(value),
        associated_id=str(associated) if isinstance(associated, int | str) else None,
        association_type=str(item["associationType"]) if item.get("associationType") else None,
        association_removed=item.get("associationRemoved") is True,
    )


class LinkLookup(Protocol):
    """Which pairs link records of a side, and how (the ledger)."""

    def pairs_linking(
        self, side: str, record_ids: Iterable[str], pairs: Iterable[str], object_type: str = "deals"
    ) -> dict[str, set[str]]: ...

    def links_for(
        self, pair: str, side: str, record_ids: Iterable[str], object_type: str = "deals"
    ) -> list[Link]: ...


@dataclass(frozen=True)
class WatchedPortal:
    """A portal whose webhooks we accept: its number, the secret that signs them, whose it is."""

    portal_id: int
    secret: str
    roles: tuple[tuple[str, Side], ...]  # (partner id, the side this portal is in that pair)


Concern = tuple[Side, WebhookEvent]  # an event, and the side of the pair its portal is


@dataclass
class Routing:
    """What a delivery asked for: partners to wake (with the events why) and the events that woke
    nobody."""

    wake: dict[str, list[Concern]] = field(default_factory=dict)
    ignored: int = 0
    foreign: int = 0  # events of a portal the signing secret does not belong to

    def add(self, partner: str, side: Side, event: WebhookEvent) -> None:
        self.wake.setdefault(partner, []).append((side, event))

    def reasons(self, partner: str) -> Counter[str]:
        """A partner's events, counted by type."""
        return Counter(event.subscription_type for _side, event in self.wake.get(partner, []))


class WebhookRouter:
    """Authenticates deliveries and turns their events into partners to wake."""

    def __init__(
        self,
        portals: Iterable[WatchedPortal],
        mappings: Mapping[str, DealMapping],
        links: LinkLookup,
        running: Callable[[], set[str]] = set,
    ) -> None:
        self.portals = {p.portal_id: p for p in portals}
        self.running = running  # the pairs whose sync runs now (their leases)
        self.mappings = dict(mappings)
        self.share_rules: dict[tuple[str, Side], ShareRule] = {}
        for partner, mapping in self.mappings.items():
            self.share_rules[(partner, "partner")] = mapping.registration
            self.share_rules[(partner, "vendor")] = mapping.conversion
        self.links = links

    def authenticate(
        self,
        method: str,
        uri: str,
        body: bytes,
        headers: Mapping[str, str],
        now_ms: int,
    ) -> frozenset[int]:
        """The portals whose secret signed this request (empty: reject it)."""
        timestamp = headers.get("x-hubspot-request-timestamp")
        signature = headers.get("x-hubspot-signature-v3")
        by_secret: dict[str, list[int]] = {}
        for portal in self.portals.values():
            by_secret.setdefault(portal.secret, []).append(portal.portal_id)
        signed: set[int] = set()
        for secret, portal_ids in by_secret.items():
            if signature_valid(secret, method, uri, body, timestamp, signature, now_ms):
                signed.update(portal_ids)
        return frozenset(signed)

    def route(self, events: Iterable[WebhookEvent], signed: frozenset[int]) -> Routing:
        """The partners these events concern, among the portals that signed them."""
        routing = Routing()
        deal_events: list[tuple[WatchedPortal, WebhookEvent]] = []
        for event in events:
            portal = self.portals.get(event.portal_id)
            if portal is None or event.portal_id not in signed:
                routing.foreign += 1
            elif event.object_type != "deal":
                routing.ignored += 1
            else:
                deal_events.append((portal, event))
        linked = self._linked(deal_events)
        # A running sync may link a record it has not committed yet: its events are kept, and
        # judged once the sync committed.
        running = self.running() if deal_events else set()
        for portal, event in deal_events:
            woke = False
            for partner, side in portal.roles:
                if partner in running or self._concerns(partner, side, event, linked):
                    routing.add(partner, side, event)
                    woke = True
            routing.ignored += not woke
        return routing

    def _linked(
        self, deal_events: list[tuple[WatchedPortal, WebhookEvent]]
    ) -> dict[str, dict[str, set[str]]]:
        """Per side, the pairs linking each record the events name (one ledger query a side)."""
        ids: dict[str, set[str]] = {"partner": set(), "vendor": set()}
        pairs: dict[str, set[str]] = {"partner": set(), "vendor": set()}
        for portal, event in deal_events:
            for partner, side in portal.roles:
                ids[side].update(event.object_ids)
                pairs[side].add(partner)
        return {
            side: self.links.pairs_linking(side, named, pairs[side])
            for side, named in ids.items()
            if named
        }

    def _concerns(
        self,
        partner: str,
        side: Side,
        event: WebhookEvent,
        linked: Mapping[str, Mapping[str, set[str]]],
    ) -> bool:
        pairs = linked.get(side, {})
        if any(partner in pairs.get(i, ()) for i in event.object_ids):
            return True
        return self._shares(partner, side, event)

    def _shares(self, partner: str, side: Side, event: WebhookEvent) -> bool:
        """Whether an event sets a deal's share property so that it becomes the partner's."""
        rule = self.share_rules.get((partner, side))
        return (
            rule is not None
            and event.property_name == rule.property
            and rule.matches({rule.property: event.property_value}, partner)
        )

    def needing_run(self, partner: str, concerns: Iterable[Concern]) -> Counter[str]:
        """Of a partner's events, those a run would still act on, judged against the ledger now
        (after the pair's running sync committed), counted by type: the events of dealsync's own
        writes, and changes no run acts on, are left out."""
        concerns = list(concerns)
        deals: dict[Side, dict[str, Link]] = {}
        notes: dict[Side, set[str]] = {}
        for side in SIDES:
            named = {i for s, event in concerns if s == side for i in event.object_ids}
            found = self.links.links_for(partner, side, named, "deals") if named else []
            deals[side] = {side_id(link, side): link for link in found}
            attached = {n for s, e in concerns if s == side and (n := e.note_associated)}
            linked_notes = (
                self.links.links_for(partner, side, attached, "notes") if attached else []
            )
            notes[side] = {side_id(link, side) for link in linked_notes}
        wanted: Counter[str] = Counter()
        for side, event in concerns:
            link = next((deals[side][i] for i in event.object_ids if i in deals[side]), None)
            if link is None:
                needed = self._shares(partner, side, event)
            else:
                needed = not self._settled(partner, side, event, link, notes[side])
            if needed:
                wanted[event.subscription_type] += 1
        return wanted

    def _settled(
        self, partner: str, side: Side, event: WebhookEvent, link: Link, notes: set[str]
    ) -> bool:
        """Whether an event of a linked deal asks nothing of a run."""
        if event.kind == "creation":
            return True  # the deal is linked already: its run made or adopted it
        if event.kind == "associationChange":
            note = event.note_associated
            if note is None:
                return True  # contacts, companies: dealsync syncs none
            return not event.association_removed and note in notes
        if event.kind != "propertyChange" or event.property_name is None:
            return False  # deletions, merges, and whatever cannot be judged
        if event.property_value is None:
            return False
        return settled_property(
            self.mappings[partner], partner, side, link, event.property_name, event.property_value
        )
