"""The sandbox's HTTP API: the part of HubSpot's CRM API that dealsync uses, plus `/_sandbox` admin."""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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


class Api(ObjectsApi, SearchApi, PropertiesApi, AssociationsApi, OwnersApi, FilesApi, AdminApi):
    """Every handler of one portal's API, by resource."""


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


def hubspot_endpoint(sb: Sandbox, template: str, handler: Handler) -> Handler:
    """Wrap a handler with what HubSpot does around every call: auth, faults, limits, counting."""
    is_search = template.endswith("/search")

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        route = f"{request.method} {template}"
        if "{object_type}" in template:
            route = route.replace("{object_type}", request.path_params["object_type"])
        traffic = sb.traffic
        traffic.by_route[route] += 1
        response = await _guarded(sb, request, handler, is_search)
        traffic.by_status[response.status_code] += 1
        return response

    return endpoint


async def _guarded(sb: Sandbox, request: Request, handler: Handler, is_search: bool) -> Response:
    token = _bearer(request)
    if token is None or token not in sb.tokens:
        return _unauthorized()
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


def build_app(
    tokens: Iterable[str],
    db_path: str | None = None,
    limits: Limits | None = None,
) -> Starlette:
    """The sandbox ASGI app for the given tokens, database file (None = in memory) and limits."""
    token_set = frozenset(tokens)
    if not token_set:
        raise ValueError("the sandbox needs at least one token")
    sb = Sandbox(
        store=Store(make_engine(db_path)),
        tokens=token_set,
        traffic=Traffic(limits=limits or Limits()),
        signing_key=secrets.token_bytes(32),
    )
    api = Api(sb)
    hubspot: list[tuple[str, list[str], Handler, str | None]] = [
        ("/crm/v3/objects/{object_type}", ["GET"], api.list_objects, None),
        ("/crm/v3/objects/{object_type}", ["POST"], api.create_object, None),
        ("/crm/v3/objects/{object_type}/search", ["POST"], api.search, None),
        ("/crm/v3/objects/{object_type}/merge", ["POST"], api.merge_objects, None),
        ("/crm/v3/objects/{object_type}/batch/read", ["POST"], api.batch_read, None),
        ("/crm/v3/objects/{object_type}/batch/create", ["POST"], api.batch_create, None),
        ("/crm/v3/objects/{object_type}/batch/update", ["POST"], api.batch_update, None),
        ("/crm/v3/objects/{object_type}/batch/upsert", ["POST"], api.batch_upsert, None),
        ("/crm/v3/objects/{object_type}/batch/archive", ["POST"], api.batch_archive, None),
        ("/crm/v3/objects/{object_type}/{object_id}", ["GET"], api.get_object, None),
        ("/crm/v3/objects/{object_type}/{object_id}", ["PATCH"], api.update_object, None),
        ("/crm/v3/objects/{object_type}/{object_id}", ["DELETE"], api.archive_object, None),
        ("/crm/v3/properties/{object_type}", ["GET"], api.list_properties, None),
        ("/crm/v3/properties/{object_type}", ["POST"], api.create_property, None),
        ("/crm/v3/properties/{object_type}/{name}", ["GET"], api.get_property, None),
        (
            "/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}",
            ["PUT"],
            api.associate_default,
            None,
        ),
        (
            "/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}/{to_id}",
            ["PUT"],
            api.associate_labelled,
            None,
        ),
        (
            "/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}/{to_id}",
            ["DELETE"],
            api.remove_association,
            None,
        ),
        (
            "/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}",
            ["GET"],
            api.list_associations,
            None,
        ),
        (
            "/crm/v4/associations/{from_type}/{to_type}/batch/read",
            ["POST"],
            api.batch_read_associations,
            None,
        ),
        (
            "/crm/v4/associations/{from_type}/{to_type}/batch/create",
            ["POST"],
            api.batch_create_associations,
            None,
        ),
        (
            "/crm/v4/associations/{from_type}/{to_type}/batch/associate/default",
            ["POST"],
            api.batch_associate_default,
            None,
        ),
        (
            "/crm/v4/associations/{from_type}/{to_type}/batch/archive",
            ["POST"],
            api.batch_archive_associations,
            None,
        ),
        ("/crm/v3/owners", ["GET"], api.list_owners, None),
        ("/crm/v3/owners/", ["GET"], api.list_owners, None),
        ("/crm/v3/owners/{owner_id}", ["GET"], api.get_owner, None),
        ("/files/v3/files", ["POST"], api.upload_file, None),
        ("/files/v3/files/{file_id}", ["GET"], api.get_file, None),
        ("/files/v3/files/{file_id}", ["DELETE"], api.delete_file, None),
        ("/files/v3/files/{file_id}/download", ["GET"], api.download_file, "file_download"),
        ("/files/v3/files/{file_id}/signed-url", ["GET"], api.signed_url, None),
    ]
    routes = [
        Route(path, hubspot_endpoint(sb, path, handler), methods=methods, name=name)
        for path, methods, handler, name in hubspot
    ]
    admin: list[tuple[str, list[str], Handler]] = [
        ("/_sandbox/owners", ["POST"], api.admin_owner),
        ("/_sandbox/faults", ["GET", "POST", "DELETE"], api.admin_faults),
        ("/_sandbox/requests", ["GET", "DELETE"], api.admin_requests),
        ("/_sandbox/reset", ["POST"], api.admin_reset),
        ("/_sandbox/seed", ["POST"], api.admin_seed),
    ]
    routes += [
        Route(path, _admin_endpoint(sb, handler), methods=methods)
        for path, methods, handler in admin
    ]
    routes.append(
        Route(
            "/_sandbox/signed/{file_id}/{expires}/{signature}",
            api.signed_download,
            name="signed_download",
        )
    )
    routes.append(Route("/_sandbox/health", _health, methods=["GET"]))
    app = Starlette(routes=routes)
    app.state.sandbox = sb
    return app


async def _health(_request: Request) -> Response:
    return respond({"status": "ok", "time": time.time()})


def _admin_endpoint(sb: Sandbox, handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        token = _bearer(request)
        if token is None or token not in sb.tokens:
            return _unauthorized()
        try:
            return await handler(request)
        except ApiError as exc:
            return respond(exc.body(), exc.status)

    return endpoint
