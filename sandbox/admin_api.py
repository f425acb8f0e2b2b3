"""`/_sandbox` admin: owners, faults, request counts, reset, seeding."""

from __future__ import annotations

import re

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


class AdminApi(ApiBase):
    """`/_sandbox` admin: owners, faults, request counts, reset, seeding."""

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
        return respond({"faults": len(self.sb.traffic.faults)}, 201)

    async def admin_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.sb.traffic.reset_counts()
            return Response(status_code=204)
        return respond(self.sb.traffic.counts())

    async def admin_reset(self, request: Request) -> Response:
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
