"""The Salesforce sandbox's HTTP API: the OAuth token endpoint (refresh-token and password grants),
sObject create/get/update/delete/upsert and describe, the daily API allowance and its header, and
Salesforce's error bodies. An admin API under `/_sandbox/` expires sessions and sets the allowance."""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.salesforce import content, soql, tooling
from sandbox.salesforce.records import Org, SalesforceError, stamp
from sandbox.salesforce.schema import SOBJECTS
from sandbox.traffic import Fault

API_VERSION = "59.0"
DAILY_ALLOWANCE = 15_000
COLLECTION_LIMIT = 200  # records in one sObject Collections call
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


@dataclass(frozen=True)
class ConnectedApp:
    """What a client logs in with: a connected app's keys, a refresh token, and a user."""

    client_id: str = field(default_factory=lambda: f"3MVG9{secrets.token_urlsafe(24)}")
    client_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    refresh_token: str = field(default_factory=lambda: f"5Aep861{secrets.token_urlsafe(32)}")
    username: str = "admin@sandbox.test"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))


@dataclass
class Allowance:
    """The org's API requests in the rolling day and its daily allowance."""

    limit: int = DAILY_ALLOWANCE
    used: int = 0

    def header(self) -> str:
        """`Sforce-Limit-Info`, as every API answer carries it."""
        return f"api-usage={self.used}/{self.limit}"


@dataclass
class SalesforceSandbox:
    """One org: its records, its connected app, its live sessions, its allowance."""

    app: ConnectedApp
    org: Org = field(default_factory=Org)
    sessions: set[str] = field(default_factory=set)
    cursors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # open query cursors
    faults: list[Fault] = field(default_factory=list)  # injected errors and latency
    allowance: Allowance = field(default_factory=Allowance)
    calls: Counter[str] = field(default_factory=Counter)  # API calls by route (admin: requests)


def _route(request: Request) -> str:
    """What a call was, for the request counts: its method and path without ids or versions, and
    the sObject a query reads."""
    path = re.sub(r"/v\d+\.\d+", "", request.url.path)
    path = re.sub(r"/(?=[A-Za-z]*\d)[0-9A-Za-z]{15}([0-9A-Za-z]{3})?(?=/|$)", "/{id}", path)
    path = re.sub(r"/01g5g\d+-\d+", "/{cursor}", path)
    found = re.search(r"\bFROM\s+(\w+)", request.query_params.get("q", ""), re.IGNORECASE)
    return f"{request.method} {path}" + (f" {found.group(1)}" if found else "")


def batch_size(request: Request) -> int:
    """The page size a query asked for (`Sforce-Query-Options: batchSize=N`, 200-2,000)."""
    options = request.headers.get("sforce-query-options", "")
    for option in options.split(","):
        name, _, value = option.strip().partition("=")
        if name == "batchSize" and value.isdigit():
            return min(max(int(value), 200), 2000)
    return 2000


INJECTED_CODES = {
    401: "INVALID_SESSION_ID",
    403: "REQUEST_LIMIT_EXCEEDED",
    404: "NOT_FOUND",
    500: "UNKNOWN_EXCEPTION",
    503: "SERVER_UNAVAILABLE",
}


def _injected(status: int) -> SalesforceError:
    """What an injected fault answers: Salesforce's error body for its status."""
    return SalesforceError(
        status, INJECTED_CODES.get(status, "INJECTED_FAULT"), f"Injected fault: HTTP {status}"
    )


def _error(exc: SalesforceError, sandbox: SalesforceSandbox) -> Response:
    return JSONResponse(
        exc.body(), exc.status, headers={"Sforce-Limit-Info": sandbox.allowance.header()}
    )


def _oauth_error(error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, 400)


def build_salesforce_app(app: ConnectedApp, jwt_public_key: str | None = None) -> Starlette:
    """The sandbox's ASGI app for one org logged into with `app` (and, with the public key of its
    certificate, by the JWT bearer grant)."""
    sandbox = SalesforceSandbox(app)
    cursor_numbers = itertools.count(1)

    async def token(request: Request) -> Response:
        form = await request.form()
        grant = form.get("grant_type")
        if grant == JWT_GRANT:
            refused = _jwt_refused(str(form.get("assertion") or ""), str(request.base_url))
            if refused:
                return _oauth_error("invalid_grant", refused)
        elif form.get("client_id") != app.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        elif grant == "refresh_token":
            if form.get("refresh_token") != app.refresh_token:
                return _oauth_error("invalid_grant", "expired access/refresh token")
            if "client_secret" in form and form.get("client_secret") != app.client_secret:
                return _oauth_error("invalid_client", "invalid client credentials")
        elif grant == "password":
            if form.get("client_secret") != app.client_secret:
                return _oauth_error("invalid_client", "invalid client credentials")
            if (form.get("username"), form.get("password")) != (app.username, app.password):
                return _oauth_error("invalid_grant", "authentication failure")
        else:
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        access = f"00D5g000000SANDBOX!{secrets.token_urlsafe(40)}"
        sandbox.sessions.add(access)
        base = str(request.base_url).rstrip("/")
        issued = str(int(time.time() * 1000))
        user_url = f"{base}/id/00D5g000000SANDBOX/{sandbox.org.user_id}"
        signature = hmac.new(
            app.client_secret.encode(), f"{user_url}{issued}".encode(), hashlib.sha256
        ).digest()
        return JSONResponse(
            {
                "access_token": access,
                "instance_url": base,
                "id": user_url,
                "token_type": "Bearer",
                "issued_at": issued,
                "signature": base64.b64encode(signature).decode(),
            }
        )

    def _jwt_refused(assertion: str, base_url: str) -> str | None:
        """Why a JWT bearer assertion is refused (None: it names this app and user, is signed by
        the app's key, is meant for this login server and has not expired)."""
        if jwt_public_key is None:
            return "this connected app has no certificate for the JWT bearer flow"
        audiences = [base_url.rstrip("/"), *LOGIN_AUDIENCES]
        try:
            claims = jwt.decode(
                assertion,
                jwt_public_key,
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            return "expired authorization code"
        except jwt.PyJWTError:
            return "invalid assertion"
        if claims["iss"] != app.client_id:
            return "invalid client credentials"
        if claims["sub"] != app.username:
            return "user hasn't approved this consumer"
        return None

    def api(
        handler: Callable[[Request], Awaitable[Any]],
    ) -> Callable[[Request], Awaitable[Response]]:
        """A data API endpoint: the session checked, the allowance counted and reported."""

        async def endpoint(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            if not header.startswith("Bearer ") or header[7:] not in sandbox.sessions:
                return _error(
                    SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid"),
                    sandbox,
                )
            if sandbox.allowance.used >= sandbox.allowance.limit:
                return _error(
                    SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
                    sandbox,
                )
            sandbox.allowance.used += 1
            sandbox.calls[_route(request)] += 1
            fault = next(
                (f for f in sandbox.faults if f.matches(request.method, request.url.path)), None
            )
            if fault is not None and fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
            if fault is not None and fault.status:
                return _error(_injected(int(fault.status)), sandbox)
            try:
                answer = await handler(request)
            except SalesforceError as exc:
                return _error(exc, sandbox)
            if not isinstance(answer, Response):
                answer = JSONResponse(answer)
            answer.headers["Sforce-Limit-Info"] = sandbox.allowance.header()
            return answer

        return endpoint

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as exc:
            raise SalesforceError(
                400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}"
            ) from None
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        return body

    def with_attributes(
        request: Request, type_name: str, record: dict[str, Any], record_id: str | None = None
    ) -> dict[str, Any]:
        version = request.path_params["version"]
        url = f"/services/data/v{version}/sobjects/{type_name}/{record_id or record['Id']}"
        return {"attributes": {"type": type_name, "url": url}, **record}

    async def create(request: Request) -> Response:
        type_name = sandbox.org.sobject(request.path_params["sobject"]).name
        record_id = content.create_record(sandbox.org, type_name, await body_of(request))
        return JSONResponse({"id": record_id, "success": True, "errors": []}, 201)

    async def record(request: Request) -> Any:
        type_name = sandbox.org.sobject(request.path_params["sobject"]).name
        record_id = request.path_params["record_id"]
        if request.method == "PATCH":
            content.update_record(sandbox.org, type_name, record_id, await body_of(request))
            return Response(status_code=204)
        if request.method == "DELETE":
            content.delete_record(sandbox.org, type_name, record_id)
            return Response(status_code=204)
        found = sandbox.org.get(type_name, record_id)
        wanted = request.query_params.get("fields")
        if wanted:
            found = {
                k: v
                for k, v in found.items()
                if k.lower() in {f.strip().lower() for f in wanted.split(",")} | {"id"}
            }
        return with_attributes(request, type_name, found)

    async def by_external_id(request: Request) -> Any:
        sobject = sandbox.org.sobject(request.path_params["sobject"])
        type_name = sobject.name
        field_name, value = request.path_params["field"], request.path_params["value"]
        blob = sobject.field(value)
        reads_body = blob is not None and blob.type == "base64" and request.method == "GET"
        if reads_body and sobject.field(field_name) is None and blob is not None:
            # sobjects/{T}/{id}/{field}: a file's data, a note's body
            data = content.body(sandbox.org, type_name, field_name, blob.name)
            return Response(data, media_type="application/octetstream")
        matches = sandbox.org.by_external_id(type_name, field_name, value)
        if len(matches) > 1:
            version = request.path_params["version"]
            return JSONResponse(
                [f"/services/data/v{version}/sobjects/{type_name}/{m['Id']}" for m in matches], 300
            )
        if request.method == "GET":
            if not matches:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            return with_attributes(request, type_name, matches[0])
        if request.method == "DELETE":
            if not matches:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            sandbox.org.delete(type_name, matches[0]["Id"])
            return Response(status_code=204)
        values = await body_of(request)
        spec = sandbox.org.sobject(type_name).field(field_name)
        if spec is not None and spec.name in values and values[spec.name] != value:
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f"Foreign key external ID: {value} not matching {values[spec.name]}",
                [spec.name],
            )
        if matches:
            sandbox.org.update(type_name, matches[0]["Id"], values)
            return JSONResponse(
                {"id": matches[0]["Id"], "success": True, "errors": [], "created": False}, 200
            )
        if request.query_params.get("updateOnly") == "true":
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        created = sandbox.org.create(type_name, {**values, field_name: value})
        return JSONResponse({"id": created, "success": True, "errors": [], "created": True}, 201)

    async def query(request: Request) -> Any:
        text = request.query_params.get("q", "")
        parsed = soql.parse(text)
        sobject = sandbox.org.sobject(parsed.sobject)
        content.check_link_query(sobject.name, text)
        names = []
        for name in parsed.fields:
            spec = sobject.field(name)
            if spec is None:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject.name}'"
                )
            names.append(spec.name)
        every = request.url.path.rstrip("/").endswith("queryAll")
        rows = [
            ({k.lower(): v for k, v in r.items()}, r) for r in sandbox.org.all(sobject.name, every)
        ]
        by_row = {id(lower): record for lower, record in rows}
        chosen = [by_row[id(row)] for row in soql.run(parsed, [lower for lower, _ in rows])]
        if parsed.counts:
            return {"totalSize": len(chosen), "done": True, "records": []}
        selected = [
            with_attributes(request, sobject.name, {n: r.get(n) for n in names}, r["Id"])
            for r in chosen
        ]
        return page(request, selected, len(selected), 0)

    def page(request: Request, records: list[dict[str, Any]], total: int, start: int) -> Any:
        """A page of a query's records from `start`; a cursor for the rest."""
        size = batch_size(request)
        done = start + size >= len(records)
        answer: dict[str, Any] = {
            "totalSize": total,
            "done": done,
            "records": records[start : start + size],
        }
        if not done:
            cursor = f"01g5g{next(cursor_numbers):010d}"
            sandbox.cursors[cursor] = records
            version = request.path_params["version"]
            answer["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor}-{start + size}"
        return answer

    async def query_more(request: Request) -> Any:
        cursor, _, start = request.path_params["locator"].partition("-")
        records = sandbox.cursors.get(cursor)
        if records is None or not start.isdigit():
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return page(request, records, len(records), int(start))

    def window(request: Request, days: int) -> tuple[datetime.datetime, datetime.datetime]:
        try:
            start = soql.moment(request.query_params["start"])
            end = soql.moment(request.query_params["end"])
        except (KeyError, ValueError):
            raise SalesforceError(
                400, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 datetimes"
            ) from None
        start, end = (t.replace(second=0, microsecond=0) for t in (start, end))
        if start >= end:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE", "start must be before end")
        if start < sandbox.org.clock() - datetime.timedelta(days=days):
            raise SalesforceError(
                400,
                "INVALID_REPLICATION_DATE",
                f"startDate cannot be more than {days} days ago",
            )
        return start, end

    async def updated(request: Request) -> Any:
        sobject = sandbox.org.sobject(request.path_params["sobject"])
        start, end = window(request, 30)
        return {
            "ids": [
                r["Id"]
                for r in sandbox.org.all(sobject.name)
                if start <= soql.moment(r["SystemModstamp"]) < end
            ],
            "latestDateCovered": stamp(end),
        }

    async def deleted(request: Request) -> Any:
        sobject = sandbox.org.sobject(request.path_params["sobject"])
        start, end = window(request, 15)
        kept = max(sandbox.org.started, sandbox.org.clock() - datetime.timedelta(days=15))
        return {
            "deletedRecords": [
                {"id": r["Id"], "deletedDate": r["SystemModstamp"]}
                for r in sandbox.org.all(sobject.name, deleted=True)
                if r["IsDeleted"] and start <= soql.moment(r["SystemModstamp"]) < end
            ],
            "earliestDateAvailable": stamp(kept.replace(second=0, microsecond=0)),
            "latestDateCovered": stamp(end),
        }

    async def collection(request: Request) -> Any:
        """sObject Collections: up to 200 creates, updates or deletes in one call, a result each."""
        if request.method == "DELETE":
            ids = [i for i in request.query_params.get("ids", "").split(",") if i]
            all_or_none = request.query_params.get("allOrNone") == "true"
            items: list[dict[str, Any]] = [{"id": i} for i in ids]
        else:
            body = await body_of(request)
            items = body.get("records") or []
            all_or_none = bool(body.get("allOrNone", False))
        if not isinstance(items, list) or len(items) > COLLECTION_LIMIT:
            raise SalesforceError(
                400, "EXCEEDED_ID_LIMIT", f"The number of records can't exceed {COLLECTION_LIMIT}"
            )
        before = copy.deepcopy(sandbox.org.records)
        results = [_save(request.method, item) for item in items]
        if all_or_none and not all(r["success"] for r in results):
            sandbox.org.records = before  # nothing of the call stays
            rolled_back = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header",
                "fields": [],
            }
            results = [
                r if not r["success"] else {"id": None, "success": False, "errors": [rolled_back]}
                for r in results
            ]
        return JSONResponse(results)

    def _save(method: str, item: dict[str, Any]) -> dict[str, Any]:
        """One record of a collection call: its SaveResult (errors as `statusCode`)."""
        try:
            if method == "DELETE":
                type_name = _type_of_id(item["id"])
                content.delete_record(sandbox.org, type_name, item["id"])
                return {"id": item["id"], "success": True, "errors": []}
            type_name = str((item.get("attributes") or {}).get("type") or "")
            if not type_name:
                raise SalesforceError(400, "INVALID_TYPE", "Must send a concrete entity type.", [])
            values = {k: v for k, v in item.items() if k not in ("attributes", "id", "Id")}
            if method == "POST":
                made = content.create_record(sandbox.org, type_name, values)
                return {"id": made, "success": True, "errors": []}
            record_id = str(item.get("id") or item.get("Id") or "")
            content.update_record(sandbox.org, type_name, record_id, values)
            return {"id": record_id, "success": True, "errors": []}
        except SalesforceError as exc:
            return {
                "id": item.get("id"),
                "success": False,
                "errors": [{"statusCode": exc.code, "message": exc.message, "fields": exc.fields}],
            }

    def _type_of_id(record_id: str) -> str:
        for sobject in SOBJECTS.values():
            if record_id.startswith(sobject.prefix):
                return sobject.name
        raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted or does not exist")

    async def describe(request: Request) -> Any:
        sobject = sandbox.org.sobject(request.path_params["sobject"])
        return sobject.describe(f"/services/data/v{request.path_params['version']}")

    async def custom_field(request: Request) -> Response:
        """Tooling API: a custom field added to an sObject (what an admin does in Setup)."""
        type_name, added = tooling.custom_field(await body_of(request))
        sandbox.org.add_field(type_name, added)
        field_id = f"00N5g{next(cursor_numbers):013d}"
        return JSONResponse({"id": field_id, "success": True, "errors": []}, 201)

    async def admin_org(_request: Request) -> Response:
        """A fresh org: no records but its admin user, Salesforce's own fields, no faults, an
        unspent allowance (the connected app and live sessions stay)."""
        sandbox.org = Org()
        sandbox.cursors.clear()
        sandbox.faults.clear()
        sandbox.allowance = Allowance()
        return Response(status_code=204)

    async def admin_delete_log(request: Request) -> Response:
        """Where the org's delete log starts (`earliest`): earlier, as in an org that has run for a
        while; later, as after the recycle bin was emptied. `age_s` moves the deletions made so far
        that many seconds back (time passing, without waiting for it)."""
        body = await request.json()
        try:
            if "earliest" in body:
                sandbox.org.started = soql.moment(str(body["earliest"]))
            aged = datetime.timedelta(seconds=float(body.get("age_s", 0)))
        except (TypeError, ValueError):
            return JSONResponse(
                {"message": 'give {"earliest": "<ISO 8601 datetime>"} and/or {"age_s": N}'}, 400
            )
        for records in sandbox.org.records.values():
            for record in records.values():
                if record["IsDeleted"] and aged:  # deleted that long before they were
                    when = soql.moment(record["SystemModstamp"]) - aged
                    record["SystemModstamp"] = stamp(when)
        return JSONResponse({"earliest": stamp(sandbox.org.started)})

    async def admin_sessions(_request: Request) -> Response:
        sandbox.sessions.clear()  # every session expires, as after the org's timeout
        return Response(status_code=204)

    async def admin_faults(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.faults.clear()
            return Response(status_code=204)
        try:
            sandbox.faults.append(Fault.from_body(await request.json()))
        except ValueError as exc:
            return JSONResponse({"message": str(exc)}, 400)
        return JSONResponse({"faults": len(sandbox.faults)}, 201)

    async def admin_requests(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.calls.clear()
            return Response(status_code=204)
        return JSONResponse({"total": sum(sandbox.calls.values()), "by_route": dict(sandbox.calls)})

    async def admin_allowance(request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            sandbox.allowance.limit = int(body.get("limit", sandbox.allowance.limit))
            sandbox.allowance.used = int(body.get("used", sandbox.allowance.used))
        return JSONResponse({"limit": sandbox.allowance.limit, "used": sandbox.allowance.used})

    data = "/services/data/v{version}/sobjects/{sobject}"
    routes = [
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route(f"{data}/", api(create), methods=["POST"]),
        Route(data, api(create), methods=["POST"]),
        Route(
            "/services/data/v{version}/composite/sobjects",
            api(collection),
            methods=["POST", "PATCH", "DELETE"],
        ),
        Route(
            "/services/data/v{version}/tooling/sobjects/CustomField",
            api(custom_field),
            methods=["POST"],
        ),
        Route(
            "/services/data/v{version}/tooling/sobjects/CustomField/",
            api(custom_field),
            methods=["POST"],
        ),
        Route("/services/data/v{version}/query", api(query), methods=["GET"]),
        Route("/services/data/v{version}/query/", api(query), methods=["GET"]),
        Route("/services/data/v{version}/queryAll", api(query), methods=["GET"]),
        Route("/services/data/v{version}/queryAll/", api(query), methods=["GET"]),
        Route("/services/data/v{version}/query/{locator}", api(query_more), methods=["GET"]),
        Route(f"{data}/updated/", api(updated), methods=["GET"]),
        Route(f"{data}/updated", api(updated), methods=["GET"]),
        Route(f"{data}/deleted/", api(deleted), methods=["GET"]),
        Route(f"{data}/deleted", api(deleted), methods=["GET"]),
        Route(f"{data}/describe", api(describe), methods=["GET"]),
        Route(f"{data}/describe/", api(describe), methods=["GET"]),
        Route(f"{data}/{{record_id}}", api(record), methods=["GET", "PATCH", "DELETE"]),
        Route(
            f"{data}/{{field}}/{{value}}", api(by_external_id), methods=["GET", "PATCH", "DELETE"]
        ),
        Route("/_sandbox/sessions", admin_sessions, methods=["DELETE"]),
        Route("/_sandbox/org", admin_org, methods=["DELETE"]),
        Route("/_sandbox/delete-log", admin_delete_log, methods=["POST"]),
        Route("/_sandbox/requests", admin_requests, methods=["GET", "DELETE"]),
        Route("/_sandbox/allowance", admin_allowance, methods=["GET", "POST"]),
        Route("/_sandbox/faults", admin_faults, methods=["POST", "DELETE"]),
    ]
    starlette = Starlette(routes=routes)
    starlette.state.salesforce = sandbox
    return starlette
