"""Search: filters, sorts, paging, the 10,000-result cap and the visibility lag."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from sandbox import search_sql
from sandbox.api_base import (
    ApiBase,
    after_of,
    limit_of,
    object_type_of,
    read_body,
    respond,
)
from sandbox.errors import bad_request
from sandbox.schema import (
    DEFAULT_PROPERTIES,
)
from sandbox.store import now_ms, object_table


class SearchApi(ApiBase):
    """Search: filters, sorts, paging, the result cap and the visibility lag."""

    async def search(self, request: Request) -> Response:
        object_type = object_type_of(request)
        body = await read_body(request)
        if not isinstance(body, dict):
            raise bad_request("The search body must be a JSON object.")
        limit = limit_of(body.get("limit"), 10, search_sql.MAX_LIMIT)
        after = after_of(body.get("after"))
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
        return respond(response)
