"""The sandbox's HTTP API: the part of HubSpot's CRM API that dealsync uses, plus `/_sandbox` admin."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.account_api import AccountApi
from sandbox.admin_api import AdminApi
from sandbox.api_base import Handler, Sandbox, respond
from sandbox.associations_api import AssociationsApi
from sandbox.errors import ApiError
from sandbox.files_api import FilesApi
from sandbox.objects import ObjectsApi
from sandbox.owners_api import OwnersApi
from sandbox.properties_api import PropertiesApi
from sandbox.search_api import SearchApi
from sandbox.store import Store, make_engine
from sandbox.traffic import Fault, Limits, Traffic
from sandbox.webhooks import WebhookSender


class Api(
    ObjectsApi,
    SearchApi,
    PropertiesApi,
    AssociationsApi,
    OwnersApi,
    FilesApi,
    AccountApi,
    AdminApi,
):
    """Every handler of one portal's API, by resource."""


# HubSpot's routes the sandbox serves: (path, methods, handler of `Api`, route name).
HUBSPOT_ROUTES: list[tuple[str, list[str], str, str | None]] = [
    ("/crm/v3/objects/{object_type}", ["GET"], "list_objects", None),
    ("/crm/v3/objects/{object_type}", ["POST"], "create_object", None),
    ("/crm/v3/objects/{object_type}/search", ["POST"], "search", None),
    ("/crm/v3/objects/{object_type}/merge", ["POST"], "merge_objects", None),
    ("/crm/v3/objects/{object_type}/batch/read", ["POST"], "batch_read", None),
    ("/crm/v3/objects/{object_type}/batch/create", ["POST"], "batch_create", None),
    ("/crm/v3/objects/{object_type}/batch/update", ["POST"], "batch_update", None),
    ("/crm/v3/objects/{object_type}/batch/upsert", ["POST"], "batch_upsert", None),
    ("/crm/v3/objects/{object_type}/batch/archive", ["POST"], "batch_archive", None),
    ("/crm/v3/objects/{object_type}/{object_id}", ["GET"], "get_object", None),
    ("/crm/v3/objects/{object_type}/{object_id}", ["PATCH"], "update_object", None),
    ("/crm/v3/objects/{object_type}/{object_id}", ["DELETE"], "archive_object", None),
    ("/crm/v3/properties/{object_type}", ["GET"], "list_properties", None),
    ("/crm/v3/properties/{object_type}", ["POST"], "create_property", None),
    ("/crm/v3/properties/{object_type}/{name}", ["GET"], "get_property", None),
    (
        "/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}",
        ["PUT"],
        "associate_default",
        None,
    ),
    (
        "/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}/{to_id}",
        ["PUT"],
        "associate_labelled",
        None,
    ),
    (
        "/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}/{to_id}",
        ["DELETE"],
        "remove_association",
        None,
    ),
    (
        "/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}",
        ["GET"],
        "list_associations",
        None,
    ),
    (
        "/crm/v4/associations/{from_type}/{to_type}/batch/read",
        ["POST"],
        "batch_read_associations",
        None,
    ),
    (
        "/crm/v4/associations/{from_type}/{to_type}/batch/create",
        ["POST"],
        "batch_create_associations",
        None,
    ),
    (
        "/crm/v4/associations/{from_type}/{to_type}/batch/associate/default",
        ["POST"],
        "batch_associate_default",
        None,
    ),
    (
        "/crm/v4/associations/{from_type}/{to_type}/batch/archive",
        ["POST"],
        "batch_archive_associations",
        None,
    ),
    ("/crm/v3/owners", ["GET"], "list_owners", None),
    ("/crm/v3/owners/", ["GET"], "list_owners", None),
    ("/crm/v3/owners/{owner_id}", ["GET"], "get_owner", None),
    ("/files/v3/files", ["POST"], "upload_file", None),
    ("/files/v3/files/{file_id}", ["GET"], "get_file", None),
    ("/files/v3/files/{file_id}", ["DELETE"], "delete_file", None),
    ("/files/v3/files/{file_id}/download", ["GET"], "download_file", "file_download"),
    ("/files/v3/files/{file_id}/signed-url", ["GET"], "signed_url", None),
    ("/account-info/v3/details", ["GET"], "account_details", None),
]

# The `/_sandbox` admin routes, per portal (the request's token says which).
ADMIN_ROUTES: list[tuple[str, list[str], str]] = [
    ("/_sandbox/owners", ["POST"], "admin_owner"),
    ("/_sandbox/faults", ["GET", "POST", "DELETE"], "admin_faults"),
    ("/_sandbox/requests", ["GET", "DELETE"], "admin_requests"),
    ("/_sandbox/reset", ["POST"], "admin_reset"),
    ("/_sandbox/seed", ["POST"], "admin_seed"),
    ("/_sandbox/webhooks", ["GET", "POST", "DELETE"], "admin_webhooks"),
]


def _rate_headers(sb: Sandbox, token: str) -> dict[str, str]:
    budget = sb.traffic.budget(token)
    limits = sb.traffic.limits
    return {
        "X-HubSpot-RateLimit-Max": str(limits.per_interval),
        "X-HubSpot-RateLimit-Remaining": str(budget.general.remaining()),
        "X-HubSpot-RateLimit-Interval-Milliseconds": str(limits.interval_ms),
        "X-HubSpot-RateLimit-Daily": str(limits.daily),
        "X-HubSpot-RateLimit-Daily-Remaining": str(max(limits.daily - budget.daily_used, 0)),
    }


def _rate_limited(policy: str, message: str, headers: dict[str, str]) -> JSONResponse:
    body = {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": secrets.token_hex(8),
        "policyName": policy,
    }
    return respond(body, 429, headers)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _unauthorized() -> JSONResponse:
    return respond(
        {
            "status": "error",
            "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication "
            "and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "correlationId": secrets.token_hex(8),
            "category": "INVALID_AUTHENTICATION",
        },
        401,
    )


def hubspot_endpoint(portals: Mapping[str, Api], template: str, handler: str) -> Handler:
    """Wrap a portal's handler with what HubSpot does around every call: the token picks the portal,
    then faults, limits and counting, all per portal."""
    is_search = template.endswith("/search")

    async def endpoint(request: Request) -> Response:
        token = _bearer(request)
        api = portals.get(token or "")
        if token is None or api is None:
            return _unauthorized()
        route = f"{request.method} {template}"
        if "{object_type}" in template:
            route = route.replace("{object_type}", request.path_params["object_type"])
        traffic = api.sb.traffic
        traffic.by_route[route] += 1
        if request.method != "GET" and not is_search and not template.endswith("/batch/read"):
            traffic.writes_by_client[request.client.host if request.client else "-"] += 1
        response = await _guarded(api.sb, token, request, getattr(api, handler), is_search)
        traffic.by_status[response.status_code] += 1
        return response

    endpoint.__name__ = handler
    return endpoint


async def _guarded(
    sb: Sandbox, token: str, request: Request, handler: Handler, is_search: bool
) -> Response:
    traffic = sb.traffic
    budget = traffic.budget(token)
    fault = traffic.fault_for(request.method, request.url.path)
    if fault is not None:
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.status is not None:
            return _fault_response(sb, token, fault)
    if is_search:
        if not budget.search.admit():
            return _rate_limited("SECONDLY", "You have reached your secondly limit.", {})
    elif not budget.general.admit():
        return _rate_limited(
            "TEN_SECONDLY_ROLLING",
            "You have reached your ten_secondly_rolling limit.",
            _rate_headers(sb, token),
        )
    budget.daily_used += 1
    if budget.daily_used > traffic.limits.daily:
        return _rate_limited(
            "DAILY", "You have reached your daily limit.", _rate_headers(sb, token)
        )
    try:
        response = await handler(request)
    except ApiError as exc:
        response = respond(exc.body(), exc.status)
    if not is_search:
        response.headers.update(_rate_headers(sb, token))
    return response


def _fault_response(sb: Sandbox, token: str, fault: Fault) -> Response:
    if fault.status == 429:
        return _rate_limited(
            "TEN_SECONDLY_ROLLING",
            "You have reached your ten_secondly_rolling limit.",
            _rate_headers(sb, token),
        )
    headers = {"Retry-After": str(fault.retry_after_s)} if fault.status == 477 else {}
    body = ApiError(
        int(fault.status), f"Injected fault: HTTP {fault.status}", "INJECTED_FAULT"
    ).body()
    return respond(body, int(fault.status), headers)


@dataclass(frozen=True)
class Portal:
    """One portal of a sandbox: its name, the tokens it answers to, where it keeps its data."""

    name: str
    tokens: frozenset[str]
    db_path: str | None = None


def build_app(
    tokens: Iterable[str],
    db_path: str | None = None,
    limits: Limits | None = None,
) -> Starlette:
    """The sandbox ASGI app of one portal, for the given tokens, database file (None = in memory)
    and limits."""
    token_set = frozenset(tokens)
    if not token_set:
        raise ValueError("the sandbox needs at least one token")
    return build_portals_app([Portal("portal", token_set, db_path)], limits)


def build_portals_app(portals: Sequence[Portal], limits: Limits | None = None) -> Starlette:
    """The sandbox ASGI app of many portals in one process: each its own data, tokens and limits;
    a request's bearer token says which portal it is for (as HubSpot's one API host does)."""
    apis: dict[str, Api] = {}
    by_token: dict[str, Api] = {}
    for portal in portals:
        store = Store(make_engine(portal.db_path))
        sb = Sandbox(
            store=store,
            tokens=portal.tokens,
            traffic=Traffic(limits=limits or Limits()),
            signing_key=secrets.token_bytes(32),
            name=portal.name,
            webhooks=WebhookSender(store.portal_id),
        )
        apis[portal.name] = by_token_api = Api(sb)
        for token in portal.tokens:
            if token in by_token:
                raise ValueError("each token belongs to one portal")
            by_token[token] = by_token_api
    routes = [
        Route(path, hubspot_endpoint(by_token, path, handler), methods=methods, name=name)
        for path, methods, handler, name in HUBSPOT_ROUTES
    ]
    routes += [
        Route(path, _admin_endpoint(by_token, handler), methods=methods)
        for path, methods, handler in ADMIN_ROUTES
    ]
    routes.append(
        Route(
            "/_sandbox/signed/{portal}/{file_id}/{expires}/{signature}",
            _signed_endpoint(apis),
            name="signed_download",
        )
    )
    routes.append(Route("/_sandbox/health", _health, methods=["GET"]))
    app = Starlette(routes=routes)
    app.state.portals = {name: api.sb for name, api in apis.items()}
    app.state.sandbox = next(iter(apis.values())).sb
    return app


async def _health(_request: Request) -> Response:
    return respond({"status": "ok", "time": time.time()})


def _admin_endpoint(portals: Mapping[str, Api], handler: str) -> Handler:
    """An admin endpoint of the portal whose token the request carries."""

    async def endpoint(request: Request) -> Response:
        api = portals.get(_bearer(request) or "")
        if api is None:
            return _unauthorized()
        try:
            response: Response = await getattr(api, handler)(request)
        except ApiError as exc:
            return respond(exc.body(), exc.status)
        return response

    endpoint.__name__ = handler
    return endpoint


def _signed_endpoint(portals: Mapping[str, Api]) -> Handler:
    """A signed file download (no token: the signature is the credential), for its portal."""

    async def endpoint(request: Request) -> Response:
        api = portals.get(request.path_params["portal"])
        if api is None:
            return respond({"status": "error", "message": "File not found."}, 404)
        return await api.signed_download(request)

    return endpoint
