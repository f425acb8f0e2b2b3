"""The sandbox's HTTP API: the part of HubSpot's CRM API that dealsync uses, plus `/_sandbox` admin."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import search_sql
from sandbox.errors import ApiError, bad_request, not_found
from sandbox.schema import (
    DEFAULT_ASSOCIATION_TYPES,
    DEFAULT_PROPERTIES,
    OBJECT_TYPE_IDS,
    PropertyDef,
    canonical_object_type,
)
from sandbox.store import Store, WriteError, make_engine, now_ms, object_table
from sandbox.traffic import Fault, Limits, Traffic
from sandbox.values import iso_ms

MAX_BATCH = 100
MAX_ASSOCIATION_READ = 1_000
MAX_ASSOCIATION_CREATE = 2_000
Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Sandbox:
    """One portal: its store, its tokens, its traffic state."""

    store: Store
    tokens: frozenset[str]
    traffic: Traffic
    signing_key: bytes


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc


def _object_type(request: Request, key: str = "object_type") -> str:
    raw = request.path_params[key]
    canonical = canonical_object_type(raw)
    if canonical is None:
        raise bad_request(f"Unable to infer object type from: {raw}", objectType=raw)
    return canonical


def _wanted_properties(values: Iterable[str]) -> list[str] | None:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def _limit(raw: Any, default: int, maximum: int) -> int:
    try:
        value = int(raw) if raw is not None else default
    except (TypeError, ValueError) as exc:
        raise bad_request(f"limit must be a whole number, got {raw!r}") from exc
    if value < 1 or value > maximum:
        raise bad_request(f"limit must be between 1 and {maximum}, got {value}")
    return value


def _after(raw: Any) -> int:
    if raw in (None, ""):
        return 0
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise bad_request(
            f"after must be a paging cursor from a previous page, got {raw!r}"
        ) from exc


def _inputs(body: Any, maximum: int) -> list[dict]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list):
        raise bad_request("The request body needs an `inputs` list.")
    if len(inputs) > maximum:
        raise bad_request(
            f"Batch input limit exceeded: {len(inputs)} inputs, at most {maximum} allowed."
        )
    return inputs


def _batch_response(
    results: list, errors: list[WriteError], started: int, ok_status: int = 200
) -> JSONResponse:
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso_ms(started),
        "completedAt": iso_ms(now_ms()),
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = [e.as_json() for e in errors]
        return _json(body, 207)
    return _json(body, ok_status)


class Api:
    """Request handlers bound to one Sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.store = sandbox.store

    # ---- records ---------------------------------------------------------------------------
    def _render(
        self,
        conn,
        object_type: str,
        rows: list,
        wanted: list[str] | None,
        associations: list[str],
        with_history: list[str] | None = None,
    ) -> list[dict]:
        known = self.store.properties(conn, object_type)
        rendered = [
            self.store.record_json(r, wanted, object_type, DEFAULT_PROPERTIES[object_type], known)
            for r in rows
        ]
        if with_history:
            history = self.store.history(
                conn, [r.id for r in rows], [n for n in with_history if n in known]
            )
            for record, row in zip(rendered, rows, strict=True):
                record["propertiesWithHistory"] = {
                    name: [
                        {
                            "value": value or "",
                            "timestamp": iso_ms(stamp),
                            "sourceType": "API",
                            "sourceId": "sandbox",
                        }
                        for value, stamp in entries
                    ]
                    for name, entries in history[row.id].items()
                }
        for to_raw in associations:
            to_type = canonical_object_type(to_raw)
            if to_type is None:
                continue
            linked = self.store.associations_of(conn, object_type, [r.id for r in rows], to_type)
            for record, row in zip(rendered, rows, strict=True):
                if linked[row.id]:
                    kind = f"{object_type[:-1]}_to_{to_type[:-1]}"
                    record.setdefault("associations", {})[to_raw] = {
                        "results": [
                            {"id": str(to_id), "type": kind} for to_id, _t, _c in linked[row.id]
                        ]
                    }
        return rendered

    async def list_objects(self, request: Request) -> Response:
        object_type = _object_type(request)
        q = request.query_params
        limit = _limit(q.get("limit"), 10, 100)
        archived = _flag(request, "archived")
        with self.store.engine.begin() as conn:
            rows = self.store.list_page(conn, object_type, _after(q.get("after")), limit, archived)
            page, more = rows[:limit], len(rows) > limit
            body: dict[str, Any] = {
                "results": self._render(
                    conn,
                    object_type,
                    page,
                    _wanted_properties(q.getlist("properties")),
                    _wanted_properties(q.getlist("associations")) or [],
                    _wanted_properties(q.getlist("propertiesWithHistory")),
                )
            }
        if more:
            after = str(page[-1].id)
            body["paging"] = {"next": {"after": after, "link": f"{request.url.path}?after={after}"}}
        return _json(body)

    async def get_object(self, request: Request) -> Response:
        object_type = _object_type(request)
        q = request.query_params
        key = request.path_params["object_id"]
        with self.store.engine.begin() as conn:
            row = self.store.find(
                conn, object_type, key, q.get("idProperty"), _flag(request, "archived")
            )
            if row is None:
                raise not_found(object_type, key)
            (record,) = self._render(
                conn,
                object_type,
                [row],
                _wanted_properties(q.getlist("properties")),
                _wanted_properties(q.getlist("associations")) or [],
                _wanted_properties(q.getlist("propertiesWithHistory")),
            )
        return _json(record)

    def _write_associations(self, conn, object_type: str, object_id: int, specs: Any) -> None:
        if not specs:
            return
        if not isinstance(specs, list):
            raise bad_request("associations must be a list of {to, types}.")
        for spec in specs:
            to_id = str((spec.get("to") or {}).get("id", ""))
            for type_spec in spec.get("types") or []:
                type_id = type_spec.get("associationTypeId")
                to_type = next(
                    (
                        to
                        for (frm, to), tid in DEFAULT_ASSOCIATION_TYPES.items()
                        if frm == object_type and tid == type_id
                    ),
                    None,
                )
                if to_type is None:
                    raise bad_request(
                        f"associationTypeId {type_id} is not valid from {object_type}."
                    )
                target = self.store.find(conn, to_type, to_id)
                if target is None:
                    raise bad_request(
                        f"Association target {to_type} {to_id} does not exist.", toObjectId=to_id
                    )
                self.store.associate(
                    conn,
                    object_type,
                    object_id,
                    to_type,
                    target.id,
                    type_id,
                    type_spec.get("associationCategory", "HUBSPOT_DEFINED"),
                )

    def _create_one(
        self, conn, object_type: str, spec: dict, props: dict[str, PropertyDef], stamp: int
    ) -> tuple[int | None, WriteError | None]:
        values = self.store.coerce_properties(
            conn, object_type, spec.get("properties") or {}, props
        )
        conflict = self.store.unique_conflict(conn, object_type, values, props, None)
        if conflict:
            return None, conflict
        object_id = self.store.create(conn, object_type, values, props, stamp)
        self._write_associations(conn, object_type, object_id, spec.get("associations"))
        return object_id, None

    def _fetch_rendered(
        self, conn, object_type: str, ids: list[int], wanted: list[str] | None = None
    ) -> list[dict]:
        rows = self.store.rows_by_ids(conn, object_type, ids, archived=False)
        chosen = wanted if wanted is not None else list(self.store.properties(conn, object_type))
        known = self.store.properties(conn, object_type)
        return [self.store.record_json(rows[i], chosen, object_type, (), known) for i in ids]

    async def create_object(self, request: Request) -> Response:
        object_type = _object_type(request)
        body = await _body(request)
        with self.store.engine.begin() as conn:
            props = self.store.properties(conn, object_type)
            object_id, error = self._create_one(conn, object_type, body, props, now_ms())
            if error:
                raise ApiError(
                    400 if error.status == 400 else error.status,
                    error.message,
                    error.category,
                    context=error.context,
                )
            written = list((body.get("properties") or {}).keys())
            (record,) = self._fetch_rendered(conn, object_type, [object_id], written)
        return _json(record, 201)

    async def update_object(self, request: Request) -> Response:
        object_type = _object_type(request)
        body = await _body(request)
        key = request.path_params["object_id"]
        with self.store.engine.begin() as conn:
            props = self.store.properties(conn, object_type)
            row = self.store.get_or_404(
                conn, object_type, key, request.query_params.get("idProperty")
            )
            values = self.store.coerce_properties(
                conn, object_type, body.get("properties") or {}, props
            )
            conflict = self.store.unique_conflict(conn, object_type, values, props, row.id)
            if conflict:
                raise ApiError(400, conflict.message, conflict.category, context=conflict.context)
            self.store.update(conn, object_type, row, values, props, now_ms())
            (record,) = self._fetch_rendered(conn, object_type, [row.id], list(values))
        return _json(record)

    async def merge_objects(self, request: Request) -> Response:
        """POST .../{type}/merge {primaryObjectId, objectIdToMerge}: both become one new record."""
        object_type = _object_type(request)
        body = await _body(request)
        primary_id = str(body.get("primaryObjectId") or "")
        other_id = str(body.get("objectIdToMerge") or "")
        if not primary_id or not other_id:
            raise bad_request("primaryObjectId and objectIdToMerge are both required.")
        with self.store.engine.begin() as conn:
            primary = self.store.get_or_404(conn, object_type, primary_id)
            other = self.store.get_or_404(conn, object_type, other_id)
            if primary.id == other.id:
                raise bad_request("A record cannot be merged with itself.")
            props = self.store.properties(conn, object_type)
            new_id = self.store.merge(conn, object_type, primary, other, props, now_ms())
            (record,) = self._fetch_rendered(conn, object_type, [new_id])
        return _json(record)

    async def archive_object(self, request: Request) -> Response:
        object_type = _object_type(request)
        key = request.path_params["object_id"]
        with self.store.engine.begin() as conn:
            row = self.store.find(conn, object_type, key)
            if row is not None:
                self.store.archive(conn, object_type, row.id, now_ms())
        return Response(status_code=204)

    async def batch_read(self, request: Request) -> Response:
        object_type = _object_type(request)
        body = await _body(request)
        inputs = _inputs(body, MAX_BATCH)
        started = now_ms()
        archived = _flag(request, "archived")
        id_property = body.get("idProperty")
        wanted = body.get("properties") or None
        results, missing = [], []
        with self.store.engine.begin() as conn:
            seen: set[int] = set()
            rows = []
            for spec in inputs:
                key = str(spec.get("id", ""))
                row = self.store.find(conn, object_type, key, id_property, archived)
                if row is None:
                    missing.append(key)
                elif row.id not in seen:
                    seen.add(row.id)
                    rows.append(row)
            results = self._render(
                conn, object_type, rows, wanted, [], body.get("propertiesWithHistory") or None
            )
        errors = []
        if missing:
            errors.append(
                WriteError(
                    404,
                    "OBJECT_NOT_FOUND",
                    "Could not get some "
                    + object_type
                    + " objects, they may be deleted or not exist. Check that ids are valid.",
                    {"ids": missing},
                )
            )
        return _batch_response(results, errors, started)

    async def batch_create(self, request: Request) -> Response:
        object_type = _object_type(request)
        inputs = _inputs(await _body(request), MAX_BATCH)
        started = now_ms()
        created: list[int] = []
        errors: list[WriteError] = []
        with self.store.engine.begin() as conn:
            props = self.store.properties(conn, object_type)
            # Property validation fails the whole batch, as HubSpot does; the trace id says which input.
            for spec in inputs:
                try:
                    self.store.coerce_properties(
                        conn, object_type, spec.get("properties") or {}, props
                    )
                except ApiError as exc:
                    trace = spec.get("objectWriteTraceId")
                    if trace is not None:
                        exc.context = {**exc.context, "objectWriteTraceId": [str(trace)]}
                    raise
            for spec in inputs:
                object_id, error = self._create_one(conn, object_type, spec, props, started)
                if error:
                    trace = spec.get("objectWriteTraceId")
                    context = {
                        **error.context,
                        **({"objectWriteTraceId": [str(trace)]} if trace is not None else {}),
                    }
                    errors.append(WriteError(error.status, error.category, error.message, context))
                else:
                    created.append(object_id)
            results = self._fetch_rendered(conn, object_type, created)
        return _batch_response(results, errors, started, ok_status=201)

    async def batch_update(self, request: Request) -> Response:
        object_type = _object_type(request)
        body = await _body(request)
        inputs = _inputs(body, MAX_BATCH)
        started = now_ms()
        id_property = body.get("idProperty")
        updated: list[int] = []
        errors: list[WriteError] = []
        with self.store.engine.begin() as conn:
            props = self.store.properties(conn, object_type)
            coerced = [
                self.store.coerce_properties(conn, object_type, spec.get("properties") or {}, props)
                for spec in inputs
            ]
            for spec, values in zip(inputs, coerced, strict=True):
                key = str(spec.get("id", ""))
                row = self.store.find(conn, object_type, key, spec.get("idProperty") or id_property)
                if row is None:
                    errors.append(
                        WriteError(
                            404, "OBJECT_NOT_FOUND", f"Object {key} was not found.", {"ids": [key]}
                        )
                    )
                    continue
                conflict = self.store.unique_conflict(conn, object_type, values, props, row.id)
                if conflict:
                    errors.append(
                        WriteError(
                            conflict.status,
                            conflict.category,
                            conflict.message,
                            {**conflict.context, "ids": [key]},
                        )
                    )
                    continue
                self.store.update(conn, object_type, row, values, props, started)
                updated.append(row.id)
            results = self._fetch_rendered(conn, object_type, list(dict.fromkeys(updated)))
        return _batch_response(results, errors, started)

    async def batch_upsert(self, request: Request) -> Response:
        object_type = _object_type(request)
        inputs = _inputs(await _body(request), MAX_BATCH)
        started = now_ms()
        outcomes: list[tuple[int, bool]] = []
        errors: list[WriteError] = []
        with self.store.engine.begin() as conn:
            props = self.store.properties(conn, object_type)
            for spec in inputs:
                id_property = spec.get("idProperty")
                if (
                    not id_property
                    or id_property not in props
                    or not props[id_property].has_unique_value
                ):
                    raise bad_request(
                        f"idProperty {id_property!r} is not a unique-value property of {object_type}.",
                        propertyName=id_property,
                    )
                self.store.coerce_properties(conn, object_type, spec.get("properties") or {}, props)
            for spec in inputs:
                id_property, key = spec["idProperty"], str(spec.get("id", ""))
                values = self.store.coerce_properties(
                    conn, object_type, {**(spec.get("properties") or {}), id_property: key}, props
                )
                row = self.store.find(conn, object_type, key, id_property)
                conflict = self.store.unique_conflict(
                    conn, object_type, values, props, row.id if row else None
                )
                if conflict:
                    errors.append(
                        WriteError(
                            conflict.status,
                            conflict.category,
                            conflict.message,
                            {**conflict.context, "ids": [key]},
                        )
                    )
                elif row is None:
                    outcomes.append(
                        (self.store.create(conn, object_type, values, props, started), True)
                    )
                else:
                    self.store.update(conn, object_type, row, values, props, started)
                    outcomes.append((row.id, False))
            rendered = self._fetch_rendered(conn, object_type, [i for i, _ in outcomes])
        results = [
            {**record, "new": is_new}
            for record, (_i, is_new) in zip(rendered, outcomes, strict=True)
        ]
        return _batch_response(results, errors, started)

    async def batch_archive(self, request: Request) -> Response:
        object_type = _object_type(request)
        inputs = _inputs(await _body(request), MAX_BATCH)
        stamp = now_ms()
        with self.store.engine.begin() as conn:
            for spec in inputs:
                row = self.store.find(conn, object_type, str(spec.get("id", "")))
                if row is not None:
                    self.store.archive(conn, object_type, row.id, stamp)
        return Response(status_code=204)

    async def search(self, request: Request) -> Response:
        object_type = _object_type(request)
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad_request("The search body must be a JSON object.")
        limit = _limit(body.get("limit"), 10, search_sql.MAX_LIMIT)
        after = _after(body.get("after"))
        if after >= search_sql.MAX_RESULTS:
            raise bad_request(
                f"Search results are limited to {search_sql.MAX_RESULTS} per query; "
                "narrow the filters instead of paging further.",
                after=after,
            )
        visible_before = now_ms() - self.sb.traffic.limits.search_lag_ms
        with self.store.engine.begin() as conn:
            props = self.store.properties(conn, object_type)
            compiler = search_sql.SearchCompiler(object_table, props)
            conditions = [
                object_table.c.object_type == object_type,
                object_table.c.archived.is_(False),
                object_table.c.written_ms <= visible_before,
            ]
            where = compiler.where(body.get("filterGroups"))
            if where is not None:
                conditions.append(where)
            if body.get("query"):
                conditions.append(sa.func.hs_query(object_table.c.props, str(body["query"])) == 1)
            order = compiler.order_by(body.get("sorts"))
            total = conn.execute(
                sa.select(sa.func.count()).select_from(object_table).where(*conditions)
            ).scalar_one()
            rows = list(
                conn.execute(
                    sa.select(object_table)
                    .where(*conditions)
                    .order_by(*order)
                    .offset(after)
                    .limit(limit)
                )
            )
            wanted = body.get("properties") or None
            results = [
                self.store.record_json(
                    r, wanted, object_type, DEFAULT_PROPERTIES[object_type], props
                )
                for r in rows
            ]
        response: dict[str, Any] = {"total": total, "results": results}
        if after + limit < total:
            response["paging"] = {"next": {"after": str(after + limit)}}
        return _json(response)

    # ---- properties ------------------------------------------------------------------------
    @staticmethod
    def _property_json(prop: PropertyDef, object_type: str, created_ms: int | None) -> dict:
        stamp = iso_ms(created_ms) if created_ms else "2020-01-01T00:00:00.000Z"
        return {
            "name": prop.name,
            "label": prop.label or prop.name,
            "type": prop.type,
            "fieldType": prop.field_type,
            "description": prop.description,
            "groupName": prop.group_name,
            "options": [
                {"label": o, "value": o, "displayOrder": i, "hidden": False}
                for i, o in enumerate(prop.options)
            ],
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": prop.has_unique_value,
            "hidden": False,
            "hubspotDefined": not prop.custom,
            "formField": prop.custom,
            "archived": False,
            "createdAt": stamp,
            "updatedAt": stamp,
            "modificationMetadata": {
                "archivable": prop.custom,
                "readOnlyDefinition": not prop.custom,
                "readOnlyValue": prop.read_only,
            },
        }

    async def list_properties(self, request: Request) -> Response:
        object_type = _object_type(request)
        with self.store.engine.begin() as conn:
            props = self.store.properties(conn, object_type)
            created = self.store.property_created_ms(conn, object_type)
        return _json(
            {
                "results": [
                    self._property_json(p, object_type, created.get(p.name)) for p in props.values()
                ]
            }
        )

    async def get_property(self, request: Request) -> Response:
        object_type = _object_type(request)
        name = request.path_params["name"]
        with self.store.engine.begin() as conn:
            props = self.store.properties(conn, object_type)
            created = self.store.property_created_ms(conn, object_type)
        if name not in props:
            raise ApiError(
                404, f"Unable to find property {name} for {object_type}.", "OBJECT_NOT_FOUND"
            )
        return _json(self._property_json(props[name], object_type, created.get(name)))

    async def create_property(self, request: Request) -> Response:
        object_type = _object_type(request)
        body = await _body(request)
        name = body.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,99}", name):
            raise bad_request(
                f"Property name {name!r} must start with a lowercase letter and hold only a-z, 0-9 and _."
            )
        prop_type = body.get("type")
        if prop_type not in ("string", "number", "date", "datetime", "enumeration", "bool"):
            raise bad_request(
                f"Property type {prop_type!r} is not one of string, number, date, datetime, enumeration, bool."
            )
        options = tuple(
            str(o.get("value")) for o in body.get("options") or [] if isinstance(o, dict)
        )
        if prop_type == "enumeration" and not options and body.get("fieldType") != "checkbox":
            raise bad_request(f"Enumeration property {name} needs options.")
        prop = PropertyDef(
            name=name,
            type=prop_type,
            field_type=body.get("fieldType") or "text",
            label=body.get("label") or name,
            group_name=body.get("groupName") or "dealinformation",
            description=body.get("description") or "",
            options=options,
            has_unique_value=bool(body.get("hasUniqueValue", False)),
            custom=True,
        )
        with self.store.engine.begin() as conn:
            self.store.create_property(conn, object_type, prop)
        return _json(self._property_json(prop, object_type, now_ms()), 201)

    # ---- associations v4 -------------------------------------------------------------------
    def _pair(self, request: Request, from_key: str, to_key: str) -> tuple[str, str]:
        return _object_type(request, from_key), _object_type(request, to_key)

    def _existing(self, conn, object_type: str, key: Any) -> int:
        row = self.store.find(conn, object_type, str(key))
        if row is None:
            raise not_found(object_type, str(key))
        return row.id

    @staticmethod
    def _default_type(from_type: str, to_type: str) -> int:
        type_id = DEFAULT_ASSOCIATION_TYPES.get((from_type, to_type))
        if type_id is None:
            raise bad_request(f"There is no default association from {from_type} to {to_type}.")
        return type_id

    def _labels_json(self, from_type: str, from_id: int, to_type: str, to_id: int) -> dict:
        return {
            "fromObjectTypeId": OBJECT_TYPE_IDS[from_type],
            "fromObjectId": from_id,
            "toObjectTypeId": OBJECT_TYPE_IDS[to_type],
            "toObjectId": to_id,
            "labels": [],
        }

    @staticmethod
    def _default_json(from_id: int, to_id: int, type_id: int) -> dict:
        return {
            "from": {"id": str(from_id)},
            "to": {"id": str(to_id)},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": type_id,
            },
        }

    async def associate_default(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "from_type", "to_type")
        started = now_ms()
        type_id = self._default_type(from_type, to_type)
        with self.store.engine.begin() as conn:
            from_id = self._existing(conn, from_type, request.path_params["from_id"])
            to_id = self._existing(conn, to_type, request.path_params["to_id"])
            self.store.associate(conn, from_type, from_id, to_type, to_id, type_id)
        return _batch_response([self._default_json(from_id, to_id, type_id)], [], started)

    async def associate_labelled(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "object_type", "to_type")
        specs = await _body(request)
        if not isinstance(specs, list) or not specs:
            raise bad_request(
                "The body must be a list of {associationCategory, associationTypeId}."
            )
        with self.store.engine.begin() as conn:
            from_id = self._existing(conn, from_type, request.path_params["object_id"])
            to_id = self._existing(conn, to_type, request.path_params["to_id"])
            for spec in specs:
                self.store.associate(
                    conn,
                    from_type,
                    from_id,
                    to_type,
                    to_id,
                    int(spec.get("associationTypeId", 0)),
                    spec.get("associationCategory", "HUBSPOT_DEFINED"),
                )
        return _json(self._labels_json(from_type, from_id, to_type, to_id), 201)

    async def remove_association(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "object_type", "to_type")
        with self.store.engine.begin() as conn:
            from_row = self.store.find(conn, from_type, request.path_params["object_id"])
            to_row = self.store.find(conn, to_type, request.path_params["to_id"])
            if from_row is not None and to_row is not None:
                self.store.dissociate(conn, from_type, from_row.id, to_type, to_row.id)
        return Response(status_code=204)

    @staticmethod
    def _associated_json(links: list[tuple[int, int, str]]) -> list[dict]:
        grouped: dict[int, list[dict]] = {}
        for to_id, type_id, category in links:
            grouped.setdefault(to_id, []).append(
                {"category": category, "typeId": type_id, "label": None}
            )
        return [
            {"toObjectId": to_id, "associationTypes": types} for to_id, types in grouped.items()
        ]

    async def list_associations(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "object_type", "to_type")
        limit = _limit(request.query_params.get("limit"), 500, 500)
        after = _after(request.query_params.get("after"))
        with self.store.engine.begin() as conn:
            from_id = self._existing(conn, from_type, request.path_params["object_id"])
            links = self.store.associations_of(conn, from_type, [from_id], to_type)[from_id]
        items = self._associated_json([link for link in links if link[0] > after])
        body: dict[str, Any] = {"results": items[:limit]}
        if len(items) > limit:
            body["paging"] = {"next": {"after": str(items[limit - 1]["toObjectId"])}}
        return _json(body)

    async def batch_read_associations(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "from_type", "to_type")
        inputs = _inputs(await _body(request), MAX_ASSOCIATION_READ)
        started = now_ms()
        ids = [int(str(spec.get("id"))) for spec in inputs if str(spec.get("id", "")).isdigit()]
        with self.store.engine.begin() as conn:
            links = self.store.associations_of(conn, from_type, ids, to_type)
        results = [
            {"from": {"id": str(i)}, "to": self._associated_json(links[i])}
            for i in dict.fromkeys(ids)
            if links[i]
        ]
        return _batch_response(results, [], started)

    def _endpoints(self, conn, spec: dict, from_type: str, to_type: str):
        """(from row, to row) of one batch association input, or the 404 error for it."""
        from_key = str((spec.get("from") or {}).get("id", ""))
        to_key = str((spec.get("to") or {}).get("id", ""))
        from_row = self.store.find(conn, from_type, from_key)
        to_row = self.store.find(conn, to_type, to_key)
        if from_row is None or to_row is None:
            return WriteError(
                404,
                "OBJECT_NOT_FOUND",
                f"{from_type} {from_key} or {to_type} {to_key} was not found.",
                {"fromObjectId": [from_key], "toObjectId": [to_key]},
            )
        return from_row, to_row

    async def batch_create_associations(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "from_type", "to_type")
        inputs = _inputs(await _body(request), MAX_ASSOCIATION_CREATE)
        started = now_ms()
        results, errors = [], []
        with self.store.engine.begin() as conn:
            for spec in inputs:
                found = self._endpoints(conn, spec, from_type, to_type)
                if isinstance(found, WriteError):
                    errors.append(found)
                    continue
                from_row, to_row = found
                types = spec.get("types") or [
                    {
                        "associationCategory": "HUBSPOT_DEFINED",
                        "associationTypeId": self._default_type(from_type, to_type),
                    }
                ]
                for type_spec in types:
                    self.store.associate(
                        conn,
                        from_type,
                        from_row.id,
                        to_type,
                        to_row.id,
                        int(type_spec.get("associationTypeId", 0)),
                        type_spec.get("associationCategory", "HUBSPOT_DEFINED"),
                    )
                results.append(self._labels_json(from_type, from_row.id, to_type, to_row.id))
        return _batch_response(results, errors, started, ok_status=201)

    async def batch_associate_default(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "from_type", "to_type")
        inputs = _inputs(await _body(request), MAX_ASSOCIATION_CREATE)
        started = now_ms()
        type_id = self._default_type(from_type, to_type)
        results, errors = [], []
        with self.store.engine.begin() as conn:
            for spec in inputs:
                found = self._endpoints(conn, spec, from_type, to_type)
                if isinstance(found, WriteError):
                    errors.append(found)
                    continue
                from_row, to_row = found
                self.store.associate(conn, from_type, from_row.id, to_type, to_row.id, type_id)
                results.append(self._default_json(from_row.id, to_row.id, type_id))
        return _batch_response(results, errors, started)

    async def batch_archive_associations(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "from_type", "to_type")
        inputs = _inputs(await _body(request), MAX_ASSOCIATION_CREATE)
        with self.store.engine.begin() as conn:
            for spec in inputs:
                from_row = self.store.find(
                    conn, from_type, str((spec.get("from") or {}).get("id", ""))
                )
                if from_row is None:
                    continue
                for target in spec.get("to") or []:
                    to_row = self.store.find(conn, to_type, str(target.get("id", "")))
                    if to_row is not None:
                        self.store.dissociate(conn, from_type, from_row.id, to_type, to_row.id)
        return Response(status_code=204)

    # ---- owners ----------------------------------------------------------------------------
    async def list_owners(self, request: Request) -> Response:
        q = request.query_params
        limit = _limit(q.get("limit"), 100, 500)
        with self.store.engine.begin() as conn:
            rows = self.store.list_owners(
                conn, q.get("email"), _after(q.get("after")), limit, _flag(request, "archived")
            )
        body: dict[str, Any] = {"results": [Store.owner_json(r) for r in rows[:limit]]}
        if len(rows) > limit:
            body["paging"] = {"next": {"after": str(rows[limit - 1].id)}}
        return _json(body)

    async def get_owner(self, request: Request) -> Response:
        owner_id = request.path_params["owner_id"]
        with self.store.engine.begin() as conn:
            for archived in (False, True):
                rows = self.store.list_owners(conn, None, 0, 10_000, archived)
                for row in rows:
                    if str(row.id) == owner_id:
                        return _json(Store.owner_json(row))
        raise ApiError(404, f"Owner {owner_id} was not found.", "OBJECT_NOT_FOUND")

    # ---- files -----------------------------------------------------------------------------
    def _file_json(self, row, request: Request) -> dict:
        name = f"{row.name}.{row.extension}" if row.extension else row.name
        path = f"{row.folder_path.rstrip('/')}/{name}"
        return {
            "id": str(row.id),
            "name": row.name,
            "extension": row.extension,
            "path": path,
            "size": row.size,
            "type": "OTHER",
            "access": row.access,
            "isUsableInContent": False,
            "url": str(request.url_for("file_download", file_id=str(row.id))),
            "createdAt": iso_ms(row.created_ms),
            "updatedAt": iso_ms(row.updated_ms),
            "archived": bool(row.archived),
        }

    async def upload_file(self, request: Request) -> Response:
        form = await request.form(max_part_size=64 * 1024 * 1024)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise bad_request("The multipart body needs a `file` part.")
        raw_options = form.get("options")
        try:
            options = json.loads(raw_options) if isinstance(raw_options, str) else {}
        except json.JSONDecodeError as exc:
            raise bad_request(
                '`options` must be a JSON string such as {"access": "PRIVATE"}.'
            ) from exc
        access = options.get("access")
        if access not in ("PUBLIC_INDEXABLE", "PUBLIC_NOT_INDEXABLE", "PRIVATE"):
            raise bad_request(
                "options.access is required: PUBLIC_INDEXABLE, PUBLIC_NOT_INDEXABLE or PRIVATE."
            )
        folder = form.get("folderPath") or form.get("folderId")
        if not folder:
            raise bad_request("Either folderPath or folderId is required.")
        name = str(form.get("fileName") or upload.filename or "file")
        content = await upload.read()
        with self.store.engine.begin() as conn:
            file_id = self.store.add_file(conn, name, str(folder), access, content)
            row = self.store.file_row(conn, str(file_id))
        return _json(self._file_json(row, request), 201)

    def _file_or_404(self, conn, file_id: str, with_content: bool = False):
        row = self.store.file_row(conn, file_id, with_content)
        if row is None:
            raise ApiError(404, f"File {file_id} was not found.", "OBJECT_NOT_FOUND")
        return row

    async def get_file(self, request: Request) -> Response:
        with self.store.engine.begin() as conn:
            row = self._file_or_404(conn, request.path_params["file_id"])
        return _json(self._file_json(row, request))

    async def download_file(self, request: Request) -> Response:
        with self.store.engine.begin() as conn:
            row = self._file_or_404(conn, request.path_params["file_id"], with_content=True)
        return Response(row.content, media_type="application/octet-stream")

    def _signature(self, file_id: str, expires: int) -> str:
        return hmac.new(
            self.sb.signing_key, f"{file_id}:{expires}".encode(), hashlib.sha256
        ).hexdigest()[:32]

    async def signed_url(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        with self.store.engine.begin() as conn:
            row = self._file_or_404(conn, file_id)
        expires = now_ms() + 10 * 60 * 1000
        url = request.url_for(
            "signed_download",
            file_id=file_id,
            expires=str(expires),
            signature=self._signature(file_id, expires),
        )
        return _json(
            {
                "url": str(url),
                "expiresAt": iso_ms(expires),
                "name": row.name,
                "extension": row.extension,
                "type": "OTHER",
                "size": row.size,
            }
        )

    async def signed_download(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        expires = int(request.path_params["expires"])
        if (
            not hmac.compare_digest(
                request.path_params["signature"], self._signature(file_id, expires)
            )
            or expires < now_ms()
        ):
            return _json(
                {"status": "error", "message": "This signed URL is invalid or has expired."}, 403
            )
        with self.store.engine.begin() as conn:
            row = self.store.file_row(conn, file_id, with_content=True)
        if row is None:
            return _json({"status": "error", "message": "File not found."}, 404)
        return Response(row.content, media_type="application/octet-stream")

    async def delete_file(self, request: Request) -> Response:
        with self.store.engine.begin() as conn:
            if not self.store.delete_file(conn, request.path_params["file_id"]):
                raise ApiError(
                    404, f"File {request.path_params['file_id']} was not found.", "OBJECT_NOT_FOUND"
                )
        return Response(status_code=204)

    # ---- admin -----------------------------------------------------------------------------
    async def admin_owner(self, request: Request) -> Response:
        body = await _body(request)
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
        return _json(owner, 201)

    async def admin_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.sb.traffic.faults.clear()
            return Response(status_code=204)
        if request.method == "GET":
            return _json({"faults": len(self.sb.traffic.faults)})
        body = await _body(request)
        try:
            fault = Fault(
                method=body.get("method"),
                path_regex=re.compile(body.get("path_regex") or ".*"),
                status=body.get("status"),
                latency_ms=int(body.get("latency_ms") or 0),
                count=body.get("count"),
                probability=float(body.get("probability", 1.0)),
                retry_after_s=int(body.get("retry_after_s", 1)),
            )
        except (re.error, TypeError, ValueError) as exc:
            raise bad_request(f"Invalid fault: {exc}") from exc
        self.sb.traffic.faults.append(fault)
        return _json({"faults": len(self.sb.traffic.faults)}, 201)

    async def admin_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.sb.traffic.reset_counts()
            return Response(status_code=204)
        return _json(self.sb.traffic.counts())

    async def admin_reset(self, request: Request) -> Response:
        self.store.reset()
        self.sb.traffic.faults.clear()
        self.sb.traffic.reset_counts()
        self.sb.traffic.budgets.clear()
        return Response(status_code=204)

    async def admin_seed(self, request: Request) -> Response:
        """Insert many records: `{objectType, count, properties ({i} = index), timestamp, timestampStep}`."""
        body = await _body(request)
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
        return _json({"count": len(ids), "firstId": str(ids[0]), "lastId": str(ids[-1])}, 201)


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
    return _json(body, 429, headers)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _unauthorized() -> JSONResponse:
    return _json(
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
        response = _json(exc.body(), exc.status)
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
    return _json(body, int(fault.status), headers)


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
    return _json({"status": "ok", "time": time.time()})


def _admin_endpoint(sb: Sandbox, handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        token = _bearer(request)
        if token is None or token not in sb.tokens:
            return _unauthorized()
        try:
            return await handler(request)
        except ApiError as exc:
            return _json(exc.body(), exc.status)

    return endpoint
