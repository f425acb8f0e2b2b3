"""What every part of the sandbox API shares: the portal, request parsing, responses, rendering."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.errors import bad_request
from sandbox.schema import (
    DEFAULT_PROPERTIES,
    canonical_object_type,
)
from sandbox.store import Store, WriteError, now_ms
from sandbox.traffic import Traffic
from sandbox.values import iso_ms
from sandbox.webhooks import WebhookSender

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
    name: str = "portal"  # names the portal in its signed download URLs
    webhooks: WebhookSender | None = None


def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


async def read_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc


def object_type_of(request: Request, key: str = "object_type") -> str:
    raw = request.path_params[key]
    canonical = canonical_object_type(raw)
    if canonical is None:
        raise bad_request(f"Unable to infer object type from: {raw}", objectType=raw)
    return canonical


def wanted_properties(values: Iterable[str]) -> list[str] | None:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def limit_of(raw: Any, default: int, maximum: int) -> int:
    try:
        value = int(raw) if raw is not None else default
    except (TypeError, ValueError) as exc:
        raise bad_request(f"limit must be a whole number, got {raw!r}") from exc
    if value < 1 or value > maximum:
        raise bad_request(f"limit must be between 1 and {maximum}, got {value}")
    return value


def after_of(raw: Any) -> int:
    if raw in (None, ""):
        return 0
    try:
        return int(raw)
    except (TypeError, ValueError) as exc:
        raise bad_request(
            f"after must be a paging cursor from a previous page, got {raw!r}"
        ) from exc


def inputs_of(body: Any, maximum: int) -> list[dict]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list):
        raise bad_request("The request body needs an `inputs` list.")
    if len(inputs) > maximum:
        raise bad_request(
            f"Batch input limit exceeded: {len(inputs)} inputs, at most {maximum} allowed."
        )
    return inputs


def batch_response(
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
        return respond(body, 207)
    return respond(body, ok_status)


class ApiBase:
    """Request handlers bound to one portal, and how they render records."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.store = sandbox.store

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
