"""Associations v4: default and labelled, single and batch."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api_base import (
    MAX_ASSOCIATION_CREATE,
    MAX_ASSOCIATION_READ,
    ApiBase,
    after_of,
    batch_response,
    inputs_of,
    limit_of,
    object_type_of,
    read_body,
    respond,
)
from sandbox.errors import bad_request, not_found
from sandbox.schema import (
    DEFAULT_ASSOCIATION_TYPES,
    OBJECT_TYPE_IDS,
)
from sandbox.store import WriteError, now_ms


class AssociationsApi(ApiBase):
    """Associations v4: single and batch, default and labelled."""

    def _pair(self, request: Request, from_key: str, to_key: str) -> tuple[str, str]:
        return object_type_of(request, from_key), object_type_of(request, to_key)

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
        return batch_response([self._default_json(from_id, to_id, type_id)], [], started)

    async def associate_labelled(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "object_type", "to_type")
        specs = await read_body(request)
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
        return respond(self._labels_json(from_type, from_id, to_type, to_id), 201)

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
        limit = limit_of(request.query_params.get("limit"), 500, 500)
        after = after_of(request.query_params.get("after"))
        with self.store.engine.begin() as conn:
            from_id = self._existing(conn, from_type, request.path_params["object_id"])
            links = self.store.associations_of(conn, from_type, [from_id], to_type)[from_id]
        items = self._associated_json([link for link in links if link[0] > after])
        body: dict[str, Any] = {"results": items[:limit]}
        if len(items) > limit:
            body["paging"] = {"next": {"after": str(items[limit - 1]["toObjectId"])}}
        return respond(body)

    async def batch_read_associations(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "from_type", "to_type")
        inputs = inputs_of(await read_body(request), MAX_ASSOCIATION_READ)
        started = now_ms()
        ids = [int(str(spec.get("id"))) for spec in inputs if str(spec.get("id", "")).isdigit()]
        with self.store.engine.begin() as conn:
            links = self.store.associations_of(conn, from_type, ids, to_type)
        results = [
            {"from": {"id": str(i)}, "to": self._associated_json(links[i])}
            for i in dict.fromkeys(ids)
            if links[i]
        ]
        return batch_response(results, [], started)

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
        inputs = inputs_of(await read_body(request), MAX_ASSOCIATION_CREATE)
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
        return batch_response(results, errors, started, ok_status=201)

    async def batch_associate_default(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "from_type", "to_type")
        inputs = inputs_of(await read_body(request), MAX_ASSOCIATION_CREATE)
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
        return batch_response(results, errors, started)

    async def batch_archive_associations(self, request: Request) -> Response:
        from_type, to_type = self._pair(request, "from_type", "to_type")
        inputs = inputs_of(await read_body(request), MAX_ASSOCIATION_CREATE)
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
