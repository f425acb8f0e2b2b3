"""The webhook receiver: an ASGI app that checks HubSpot deliveries and wakes the partners they concern.

A partner is woken once per quiet spell (`debounce_s` after the first event of a burst), so a bulk
edit of 500 deals starts one sync, not 500; an event that arrives while the wake is being sent
starts the next spell, so no change is left waiting for the schedule. Partners due within a second
of each other are woken together, in batches of up to 25 (one flow run, one process, for all of
them), so a burst over a hundred partners starts four runs, not a hundred. Before a wake goes out, the
burst is judged against the ledger once the partner's running sync (if any) has committed: a burst
that is only that sync's own writes coming back, or changes no run acts on, wakes nobody. When the
orchestrator cannot be told (its API is down), deliveries are answered 503 and HubSpot delivers them
again later.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dealsync.config import Config, ConfigError, CrmConfig
from dealsync.connections import portal_number
from dealsync.ledger import Ledger
from dealsync.ledger.lease import leased_pairs
from dealsync.mapping import DealMapping, load_mapping
from dealsync.model import Side
from dealsync.webhooks import (
    MAX_BODY_BYTES,
    Concern,
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
JUDGED_EVENTS = 5_000  # a partner's burst judged event by event; a bigger one just wakes it
RUN_WAIT_S = 3600.0  # how long a burst waits for the partner's running sync before it is judged
BUSY_POLL_S = 0.5

WAKE_GATHER_S = 1.0  # partners due within this long are woken together
WAKE_BATCH = 25  # partners woken together at most (one flow run runs them in turn)

Reasons = Mapping[str, int]  # a partner's events that ask for a run, counted by type
Wake = Callable[
    [Mapping[str, Reasons]], None
]  # wake these partners (one or more), for these reasons
# What of a partner's burst still asks for a run, by event type (empty: nothing).
Settle = Callable[[str, Sequence[Concern]], Awaitable[Reasons]]


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
    mappings: dict[str, DealMapping] = {p.id: load_mapping(p.mapping_path) for p in config.partners}
    portals = [WatchedPortal(n, secrets[n], tuple(r)) for n, r in roles.items()]
    return WebhookRouter(portals, mappings, ledger, running=lambda: leased_pairs(ledger))


def settle_against(router: WebhookRouter) -> Settle:
    """Judge a partner's burst once its running sync (if any) has committed: the events of that
    sync's own writes come back while it runs, and agree with the ledger after."""

    async def settle(partner: str, concerns: Sequence[Concern]) -> Reasons:
        if len(concerns) > JUDGED_EVENTS:
            return Counter(event.subscription_type for _side, event in concerns)
        deadline = time.monotonic() + RUN_WAIT_S
        while time.monotonic() < deadline and partner in await run_in_threadpool(router.running):
            await asyncio.sleep(BUSY_POLL_S)
        return await run_in_threadpool(router.needing_run, partner, concerns)

    return settle


@dataclass
class Debouncer:
    """Wakes each partner once per burst of events, `window_s` after the burst's first event;
    partners due within `gather_s` of each other are woken together, `batch` at most."""

    wake: Wake
    window_s: float = DEBOUNCE_S
    window: Callable[[], Awaitable[object]] | None = None  # how a burst ends (default: window_s)
    min_gap_s: float = 0.0  # between two wakes of one partner
    settle: Settle | None = None  # what of a burst still asks for a run (None: all of it)
    gather_s: float = 0.0
    batch: int = WAKE_BATCH
    pending: dict[str, list[Concern]] = field(default_factory=dict)
    due: dict[str, Reasons] = field(default_factory=dict)  # judged, waiting to be sent
    last_wake: dict[str, float] = field(default_factory=dict)  # monotonic time, by partner
    failing: bool = False  # the last wake could not be sent
    sent: int = 0  # partners woken
    settled: int = 0  # bursts that asked nothing of a run (echoes of dealsync's own writes)
    waking: set[asyncio.Task[None]] = field(default_factory=set)  # held: the loop keeps weak ones
    sending: asyncio.Task[None] | None = None

    def poke(self, partner: str, concerns: Sequence[Concern]) -> None:
        """Note events for a partner; the first of a burst schedules its wake."""
        if partner in self.pending:
            held = self.pending[partner]
            if len(held) <= JUDGED_EVENTS:  # past that the burst wakes unjudged: keep no more
                held += concerns
            return
        self.pending[partner] = list(concerns)
        self._keep(asyncio.get_running_loop().create_task(self._wake_later(partner)))

    def _keep(self, task: asyncio.Task[None]) -> None:
        self.waking.add(task)
        task.add_done_callback(self.waking.discard)

    async def _wake_later(self, partner: str) -> None:
        await (self.window() if self.window is not None else asyncio.sleep(self.window_s))
        too_soon = self.last_wake.get(partner, -math.inf) + self.min_gap_s - time.monotonic()
        if too_soon > 0:
            await asyncio.sleep(too_soon)
        concerns = self.pending.pop(partner)  # later events start the next burst
        reasons = await self._still_needed(partner, concerns)
        if not reasons:
            self.settled += 1
            logger.info("partner %s: %d events asked nothing of a run", partner, len(concerns))
            return
        self.last_wake[partner] = time.monotonic()
        self.due[partner] = Counter(self.due.get(partner, {})) + Counter(reasons)
        if self.sending is None or self.sending.done():
            self.sending = asyncio.get_running_loop().create_task(self._send_due())
            self._keep(self.sending)

    async def _send_due(self) -> None:
        """Send the due wakes, `batch` partners at a time, once `gather_s` has gathered them."""
        await asyncio.sleep(self.gather_s)
        while self.due:
            partners = list(self.due)[: self.batch]
            wakes = {partner: self.due.pop(partner) for partner in partners}
            await self._send(wakes)

    async def _send(self, wakes: Mapping[str, Reasons]) -> None:
        named = ", ".join(wakes)
        for attempt in range(WAKE_ATTEMPTS):
            try:
                await run_in_threadpool(self.wake, wakes)
            except Exception as exc:  # any failure to reach the orchestrator: try again
                self.failing = True
                logger.warning("could not wake partners %s (%s); trying again", named, exc)
                await asyncio.sleep(min(2**attempt, 30))
                continue
            self.failing = False
            self.sent += len(wakes)
            return
        logger.error("gave up waking partners %s: their schedule will sync them", named)

    async def _still_needed(self, partner: str, concerns: Sequence[Concern]) -> Reasons:
        """The burst's events a run would act on, by type; all of them when they cannot be judged."""
        every = Counter(event.subscription_type for _side, event in concerns)
        if self.settle is None:
            return every
        try:
            return await self.settle(partner, concerns)
        except Exception as exc:  # the ledger is unreachable: wake rather than lose a change
            logger.warning("could not judge partner %s's events (%s); waking it", partner, exc)
            return every


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
    gather_s: float = WAKE_GATHER_S,
) -> Starlette:
    """The receiver's app: `POST /webhooks/hubspot` for deliveries, `GET /health`.

    `public_url` is the target URL the app subscribed with (what HubSpot signs); without it the URL
    of the request as it arrived is used, which is right unless a proxy rewrites it.
    """
    debouncer = Debouncer(
        wake,
        debounce_s,
        min_gap_s=min_gap_s,
        settle=settle_against(router),
        gather_s=gather_s,
    )
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
        for partner, concerns in routing.wake.items():
            debouncer.poke(partner, concerns)
        seen.remember(fresh)
        if routing.foreign:
            logger.warning(
                "%d events named a portal their signature does not cover", routing.foreign
            )
        return Response(status_code=204)

    async def health(_request: Request) -> Response:
        return JSONResponse(
            {
                "status": "failing" if debouncer.failing else "ok",
                "wakes_sent": debouncer.sent,
                "bursts_settled": debouncer.settled,
                "bursts_open": len(debouncer.waking),
            }
        )

    app = Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    app.state.debouncer = debouncer
    return app
