"""Objects: records of every type, one by one and in batches (100 inputs at most), merges."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api_base import (
    MAX_BATCH,
    ApiBase,
    after_of,
    batch_response,
    flag,
    inputs_of,
    limit_of,
    object_type_of,
    read_body,
    respond,
    wanted_properties,
)
from sandbox.errors import ApiError, bad_request, not_found
from sandbox.schema import (
    DEFAULT_ASSOCIATION_TYPES,
    PropertyDef,
)
from sandbox.store import WriteError, now_ms


class ObjectsApi(ApiBase):
    """Records: list, read, create, update, merge, archive, and their batches."""

    async def list_objects(self, request: Request) -> Response:
        object_type = object_type_of(request)
        q = request.query_params
        limit = limit_of(q.get("limit"), 10, 100)
        archived = flag(request, "archived")
        with self.store.engine.begin() as conn:
            rows = self.store.list_page(
                conn, object_type, after_of(q.get("after")), limit, archived
            )
            page, more = rows[:limit], len(rows) > limit
            body: dict[str, Any] = {
                "results": self._render(
                    conn,
                    object_type,
                    page,
                    wanted_properties(q.getlist("properties")),
                    wanted_properties(q.getlist("associations")) or [],
                    wanted_properties(q.getlist("propertiesWithHistory")),
                )
            }
        if more:
            after = str(page[-1].id)
            body["paging"] = {"next": {"after": after, "link": f"{request.url.path}?after={after}"}}
        return respond(body)

    async def get_object(self, request: Request) -> Response:
        object_type = object_type_of(request)
        q = request.query_params
        key = request.path_params["object_id"]
        with self.store.engine.begin() as conn:
            row = self.store.find(
                conn, object_type, key, q.get("idProperty"), flag(request, "archived")
            )
            if row is None:
                raise not_found(object_type, key)
            (record,) = self._render(
                conn,
                object_type,
                [row],
                wanted_properties(q.getlist("properties")),
                wanted_properties(q.getlist("associations")) or [],
                wanted_properties(q.getlist("propertiesWithHistory")),
            )
        return respond(record)

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
        object_type = object_type_of(request)
        body = await read_body(request)
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
        return respond(record, 201)

    async def update_object(self, request: Request) -> Response:
        object_type = object_type_of(request)
        body = await read_body(request)
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
        return respond(record)

    async def merge_objects(self, request: Request) -> Response:
        """POST .../{type}/merge {primaryObjectId, objectIdToMerge}: both become one new record."""
        object_type = object_type_of(request)
        body = await read_body(request)
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
        return respond(record)

    async def archive_object(self, request: Request) -> Response:
        object_type = object_type_of(request)
        key = request.path_params["object_id"]
        with self.store.engine.begin() as conn:
            row = self.store.find(conn, object_type, key)
            if row is not None:
                self.store.archive(conn, object_type, row.id, now_ms())
        return Response(status_code=204)

    async def batch_read(self, request: Request) -> Response:
        object_type = object_type_of(request)
        body = await read_body(request)
        inputs = inputs_of(body, MAX_BATCH)
        started = now_ms()
        archived = flag(request, "archived")
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
        return batch_response(results, errors, started)

    async def batch_create(self, request: Request) -> Response:
        object_type = object_type_of(request)
        inputs = inputs_of(await read_body(request), MAX_BATCH)
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
        return batch_response(results, errors, started, ok_status=201)

    async def batch_update(self, request: Request) -> Response:
        object_type = object_type_of(request)
        body = await read_body(request)
        inputs = inputs_of(body, MAX_BATCH)
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
        return batch_response(results, errors, started)

    async def batch_upsert(self, request: Request) -> Response:
        object_type = object_type_of(request)
        inputs = inputs_of(await read_body(request), MAX_BATCH)
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
        return batch_response(results, errors, started)

    async def batch_archive(self, request: Request) -> Response:
        object_type = object_type_of(request)
        inputs = inputs_of(await read_body(request), MAX_BATCH)
        stamp = now_ms()
        with self.store.engine.begin() as conn:
            for spec in inputs:
                row = self.store.find(conn, object_type, str(spec.get("id", "")))
                if row is not None:
                    self.store.archive(conn, object_type, row.id, stamp)
        return Response(status_code=204)
