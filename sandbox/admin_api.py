"""`/_sandbox` admin: owners, faults, request counts, reset, seeding, webhooks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api_base import (
    ApiBase,
    read_body,
    respond,
)
from sandbox.errors import bad_request
from sandbox.schema import (
    canonical_object_type,
)
from sandbox.store import now_ms
from sandbox.traffic import Fault
from sandbox.webhooks import DEAL_SUBSCRIPTIONS, Subscription


class AdminApi(ApiBase):
    """`/_sandbox` admin: owners, faults, request counts, reset, seeding, webhooks."""

    async def admin_owner(self, request: Request) -> Response:
        body = await read_body(request)
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise bad_request("An owner needs an `email`.")
        with self.store.engine.begin() as conn:
            owner = self.store.add_owner(
                conn,
                email,
                str(body.get("firstName", "")),
                str(body.get("lastName", "")),
                bool(body.get("archived", False)),
            )
        return respond(owner, 201)

    async def admin_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.sb.traffic.faults.clear()
            return Response(status_code=204)
        if request.method == "GET":
            return respond({"faults": len(self.sb.traffic.faults)})
        body = await read_body(request)
        try:
            fault = Fault.from_body(body)
        except ValueError as exc:
            raise bad_request(str(exc)) from exc
        self.sb.traffic.faults.append(fault)
        return respond({"faults": len(self.sb.traffic.faults)}, 201)

    async def admin_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.sb.traffic.reset_counts()
            return Response(status_code=204)
        return respond(self.sb.traffic.counts())

    async def admin_reset(self, request: Request) -> Response:
        self._subscribe(None)
        self.store.reset()
        self.sb.traffic.faults.clear()
        self.sb.traffic.reset_counts()
        self.sb.traffic.budgets.clear()
        return Response(status_code=204)

    async def admin_seed(self, request: Request) -> Response:
        """Insert many records: `{objectType, count, properties ({i} = index), timestamp, timestampStep}`."""
        body = await read_body(request)
        object_type = canonical_object_type(str(body.get("objectType", "deals")))
        if object_type is None:
            raise bad_request("Unknown objectType.")
        count = int(body.get("count", 0))
        if not 0 < count <= 200_000:
            raise bad_request("count must be between 1 and 200000.")
        template = body.get("properties") or {}
        stamp = int(body.get("timestamp") or now_ms())
        step = int(body.get("timestampStep") or 0)
        with self.store.engine.begin() as conn:
            props = self.store.properties(conn, object_type)
            if any(props.get(n) and props[n].has_unique_value for n in template):
                raise bad_request(
                    "Seeding does not set unique-value properties; create those records through the API."
                )
            first = self.store.coerce_properties(
                conn,
                object_type,
                {k: str(v).replace("{i}", "0") for k, v in template.items()},
                props,
            )
            rows = [
                {
                    k: (v.replace("{i}", str(i)) if isinstance(v, str) and "{i}" in v else first[k])
                    for k, v in template.items()
                }
                for i in range(count)
            ]
            ids = self.store.bulk_insert(conn, object_type, rows, stamp, step)
        return respond({"count": len(ids), "firstId": str(ids[0]), "lastId": str(ids[-1])}, 201)

    async def admin_webhooks(self, request: Request) -> Response:
        """Deliver this portal's deal events: `{targetUrl, secret, subscriptions?, properties?}`;
        GET shows what was delivered, DELETE stops."""
        if request.method == "POST":
            self._subscribe(_subscription(await read_body(request)))
        elif request.method == "DELETE":
            self._subscribe(None)
            return Response(status_code=204)
        sender = self.sb.webhooks
        assert sender is not None
        subscription = sender.subscription
        stats = sender.stats
        return respond(
            {
                "portalId": sender.portal_id,
                "targetUrl": subscription.target_url if subscription else None,
                "subscriptions": sorted(subscription.types) if subscription else [],
                "pendingEvents": sender.pending(),
                "deliveredEvents": stats.delivered_events,
                "requests": stats.requests,
                "failedAttempts": stats.failed_attempts,
                "droppedEvents": stats.dropped_events,
                "lastStatus": stats.last_status,
            },
            201 if request.method == "POST" else 200,
        )

    def _subscribe(self, subscription: Subscription | None) -> None:
        sender = self.sb.webhooks
        assert sender is not None
        sender.subscribe(subscription)
        self.store.on_commit = sender.record if subscription is not None else None


def _subscription(body: object) -> Subscription:
    """A subscription from the admin request's body, or a 400 naming what is wrong."""
    if not isinstance(body, dict):
        raise bad_request("Send {targetUrl, secret, subscriptions?, properties?}.")
    target, secret = body.get("targetUrl"), body.get("secret")
    if not isinstance(target, str) or not target.startswith(("http://", "https://")):
        raise bad_request("targetUrl must be an http(s) URL.")
    if not isinstance(secret, str) or not secret:
        raise bad_request("secret (the app's client secret that signs deliveries) is required.")
    types = body.get("subscriptions") or list(DEAL_SUBSCRIPTIONS)
    unknown = sorted(set(map(str, types)) - set(DEAL_SUBSCRIPTIONS))
    if unknown:
        raise bad_request(
            f"Unknown subscription types {unknown}; use {', '.join(DEAL_SUBSCRIPTIONS)}."
        )
    properties = body.get("properties")
    return Subscription(
        target,
        secret,
        frozenset(map(str, types)),
        None if properties is None else frozenset(map(str, properties)),
    )
