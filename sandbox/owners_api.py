"""Owners: who can own records."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api_base import (
    ApiBase,
    after_of,
    flag,
    limit_of,
    respond,
)
from sandbox.errors import ApiError
from sandbox.store import Store


class OwnersApi(ApiBase):
    """Owners: list and read."""

    async def list_owners(self, request: Request) -> Response:
        q = request.query_params
        limit = limit_of(q.get("limit"), 100, 500)
        with self.store.engine.begin() as conn:
            rows = self.store.list_owners(
                conn, q.get("email"), after_of(q.get("after")), limit, flag(request, "archived")
            )
        body: dict[str, Any] = {"results": [Store.owner_json(r) for r in rows[:limit]]}
        if len(rows) > limit:
            body["paging"] = {"next": {"after": str(rows[limit - 1].id)}}
        return respond(body)

    async def get_owner(self, request: Request) -> Response:
        owner_id = request.path_params["owner_id"]
        with self.store.engine.begin() as conn:
            for archived in (False, True):
                rows = self.store.list_owners(conn, None, 0, 10_000, archived)
                for row in rows:
                    if str(row.id) == owner_id:
                        return respond(Store.owner_json(row))
        raise ApiError(404, f"Owner {owner_id} was not found.", "OBJECT_NOT_FOUND")
