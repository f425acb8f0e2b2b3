"""The webhook receiver: an ASGI app that checks HubSpot deliveries and wakes the partners they concern.

A partner is woken once per quiet spell (`debounce_s` after the first event of a burst), so a bulk
edit of 500 deals starts one sync, not 500; an event that arrives while the wake is being sent
starts the next spell, so no change is left waiting for the schedule. When the orchestrator cannot
be told (its API is down), deliveries are answered 503 and HubSpot delivers them again later.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dealsync.config import Config, ConfigError, CrmConfig
from dealsync.connections import portal_number
from dealsync.ledger import Ledger
from dealsync.mapping import ShareRule, load_mapping
from dealsync.model import Side
from dealsync.webhooks import (
    MAX_BODY_BYTES,
    MalformedDelivery,
    WatchedPortal,
    WebhookEvent,
    WebhookRouter,
    parse_events,
    request_uri,
)

logger = logging.getLogger("dealsync.receiver")

WEBHOOK_PATH = "/webhooks/hubspot"
DEBOUNCE_S = 2.0
# A partner is woken at most this often, whatever its portal sends: every wake is a flow run (a
# process on a worker), and a partner whose app floods the receiver must not crowd out the others.
MIN_WAKE_GAP_S = 10.0
WAKE_ATTEMPTS = 8  # then the partner waits for its schedule (logged)
SEEN_EVENTS = 20_000  # event ids remembered, so a redelivered batch wakes nobody twice

Wake = Callable[[str, Mapping[str, int]], None]  # (partner id, event counts by type)


def _portal_number(crm: CrmConfig, connection: str) -> int:
    if crm.portal_id is not None:
        return crm.portal_id
    try:
        return portal_number(crm, connection)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"{crm.where.removesuffix('.token')}: could not ask {crm.base_url} which portal this "
            f"is ({type(exc).__name__}: {exc}). Check the token and the URL, or set portal_id."
        ) from None


def build_router(config: Config, ledger: Ledger) -> WebhookRouter:
    """A router for every connection of the config that has a webhook secret."""
    roles: dict[int, list[tuple[str, Side]]] = {}
    secrets: dict[int, str] = {}
    connections: list[tuple[CrmConfig, str, list[tuple[str, Side]]]] = [
        (config.vendor_crm, "vendor", [(p.id, "vendor") for p in config.partners])
    ]
    connections += [(p.crm, f"partner {p.id}", [(p.id, "partner")]) for p in config.partners]
    for crm, connection, its_roles in connections:
        secret = crm.webhook_secret()
        if secret is None:
            continue
        number = _portal_number(crm, connection)
        if secrets.setdefault(number, secret) != secret:
            raise ConfigError(
                f"{crm.where.removesuffix('.token')}: portal {number} is configured twice with "
                "different webhook secrets; one app signs one portal's deliveries."
            )
        roles.setdefault(number, []).extend(its_roles)
    if not roles:
        raise ConfigError(
            f"{config.path}: no connection has a webhook_secret, so no delivery could be trusted. "
            "Add webhook_secret: env:NAME (the client secret of the app that subscribes to the "
            "portal's deal events) to the crm of the vendor and of each partner that sends them."
        )
    rules: dict[tuple[str, Side], ShareRule] = {}
    for partner in config.partners:
        mapping = load_mapping(partner.mapping_path)
        rules[(partner.id, "partner")] = mapping.registration
        rules[(partner.id, "vendor")] = mapping.conversion
    portals = [WatchedPortal(n, secrets[n], tuple(r)) for n, r in roles.items()]
    return WebhookRouter(portals, rules, ledger)


@dataclass
class Debouncer:
    """Wakes each partner once per burst of events, `window_s` after the burst's first event."""

    wake: Wake
    window_s: float = DEBOUNCE_S
    window: Callable[[], Awaitable[object]] | None = None  # how a burst ends (default: window_s)
    min_gap_s: float = 0.0  # between two wakes of one partner
    pending: dict[str, Counter[str]] = field(default_factory=dict)
    last_wake: dict[str, float] = field(default_factory=dict)  # monotonic time, by partner
    failing: bool = False  # the last wake could not be sent
    sent: int = 0
    waking: set[asyncio.Task[None]] = field(default_factory=set)  # held: the loop keeps weak ones

    def poke(self, partner: str, reasons: Mapping[str, int]) -> None:
        """Note events for a partner; the first of a burst schedules its wake."""
        if partner in self.pending:
            self.pending[partner].update(reasons)
            return
        self.pending[partner] = Counter(reasons)
        task = asyncio.get_running_loop().create_task(self._wake_later(partner))
        self.waking.add(task)
        task.add_done_callback(self.waking.discard)

    async def _wake_later(self, partner: str) -> None:
        await (self.window() if self.window is not None else asyncio.sleep(self.window_s))
        too_soon = self.last_wake.get(partner, -math.inf) + self.min_gap_s - time.monotonic()
        if too_soon > 0:
            await asyncio.sleep(too_soon)
        self.last_wake[partner] = time.monotonic()
        reasons = self.pending.pop(partner)  # later events start the next burst
        for attempt in range(WAKE_ATTEMPTS):
            try:
                await run_in_threadpool(self.wake, partner, dict(reasons))
            except Exception as exc:  # any failure to reach the orchestrator: try again
                self.failing = True
                logger.warning("could not wake partner %s (%s); trying again", partner, exc)
                await asyncio.sleep(min(2**attempt, 30))
                continue
            self.failing = False
            self.sent += 1
            return
        logger.error("gave up waking partner %s: its schedule will sync it", partner)


class SeenEvents:
    """The ids of recently handled events, oldest forgotten first."""

    def __init__(self, size: int = SEEN_EVENTS) -> None:
        self.size = size
        self.ids: OrderedDict[tuple[int, str], None] = OrderedDict()

    def fresh(self, event: WebhookEvent) -> bool:
        """Whether an event was not handled yet (events without an id always count as new)."""
        return not event.event_id or (event.portal_id, event.event_id) not in self.ids

    def remember(self, events: list[WebhookEvent]) -> None:
        """Events handled: a redelivery of them wakes nobody."""
        for event in events:
            if event.event_id:
                self.ids[(event.portal_id, event.event_id)] = None
        while len(self.ids) > self.size:
            self.ids.popitem(last=False)


def build_receiver(
    router: WebhookRouter,
    wake: Wake,
    public_url: str | None = None,
    debounce_s: float = DEBOUNCE_S,
    min_gap_s: float = MIN_WAKE_GAP_S,
) -> Starlette:
    """The receiver's app: `POST /webhooks/hubspot` for deliveries, `GET /health`.

    `public_url` is the target URL the app subscribed with (what HubSpot signs); without it the URL
    of the request as it arrived is used, which is right unless a proxy rewrites it.
    """
    debouncer = Debouncer(wake, debounce_s, min_gap_s=min_gap_s)
    seen = SeenEvents()

    async def receive(request: Request) -> Response:
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            return Response(status_code=413)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return Response(status_code=413)
        uri = request_uri(public_url or str(request.url))
        now = int(time.time() * 1000)
        signed = router.authenticate(request.method, uri, body, request.headers, now)
        if not signed:
            return Response(status_code=401)  # no detail: a forger learns nothing
        try:
            events = parse_events(body)
        except MalformedDelivery as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        if debouncer.failing:
            return Response(status_code=503)  # HubSpot delivers again later
        fresh = [e for e in events if seen.fresh(e)]
        routing = await run_in_threadpool(router.route, fresh, signed)  # may fail: HubSpot retries
        for partner, reasons in routing.wake.items():
            debouncer.poke(partner, reasons)
        seen.remember(fresh)
        if routing.foreign:
            logger.warning(
                "%d events named a portal their signature does not cover", routing.foreign
            )
        return Response(status_code=204)

    async def health(_request: Request) -> Response:
        return JSONResponse(
            {"status": "failing" if debouncer.failing else "ok", "wakes_sent": debouncer.sent}
        )

    app = Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    app.state.debouncer = debouncer
    return app
