"""Properties: definitions of built-in and custom properties."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api_base import (
    ApiBase,
    object_type_of,
    read_body,
    respond,
)
from sandbox.errors import ApiError, bad_request
from sandbox.schema import (
    PropertyDef,
)
from sandbox.store import now_ms
from sandbox.values import iso_ms


class PropertiesApi(ApiBase):
    """Property definitions: list, read, create."""

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
        object_type = object_type_of(request)
        with self.store.engine.begin() as conn:
            props = self.store.properties(conn, object_type)
            created = self.store.property_created_ms(conn, object_type)
        return respond(
            {
                "results": [
                    self._property_json(p, object_type, created.get(p.name)) for p in props.values()
                ]
            }
        )

    async def get_property(self, request: Request) -> Response:
        object_type = object_type_of(request)
        name = request.path_params["name"]
        with self.store.engine.begin() as conn:
            props = self.store.properties(conn, object_type)
            created = self.store.property_created_ms(conn, object_type)
        if name not in props:
            raise ApiError(
                404, f"Unable to find property {name} for {object_type}.", "OBJECT_NOT_FOUND"
            )
        return respond(self._property_json(props[name], object_type, created.get(name)))

    async def create_property(self, request: Request) -> Response:
        object_type = object_type_of(request)
        body = await read_body(request)
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
        return respond(self._property_json(prop, object_type, now_ms()), 201)
