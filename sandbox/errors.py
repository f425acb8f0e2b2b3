"""HubSpot-shaped error bodies raised by the sandbox's handlers."""

from __future__ import annotations

import uuid
from typing import Any


class ApiError(Exception):
    """An error answered with HubSpot's error body and a status code."""

    def __init__(
        self,
        status: int,
        message: str,
        category: str = "VALIDATION_ERROR",
        errors: list[dict[str, Any]] | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.errors = errors or []
        self.context = context or {}

    def body(self) -> dict[str, Any]:
        """The JSON body HubSpot sends with this error."""
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": str(uuid.uuid4()),
            "category": self.category,
        }
        if self.errors:
            body["errors"] = self.errors
        if self.context:
            body["context"] = self.context
        return body


def not_found(object_type: str, object_id: str) -> ApiError:
    """The 404 HubSpot answers for an unknown record."""
    return ApiError(
        404,
        f"Object not found. objectId are usually numeric. ({object_type} {object_id})",
        "OBJECT_NOT_FOUND",
    )


def bad_request(message: str, category: str = "VALIDATION_ERROR", **context: Any) -> ApiError:
    """A 400 with HubSpot's error body."""
    return ApiError(400, message, category, context={k: [str(v)] for k, v in context.items()})
