"""Property value coercion: HubSpot stores every value as a string in a canonical form per type."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.schema import PropertyDef

_EPOCH_MS = re.compile(r"^-?\d{1,15}$")
MAX_STRING = 65_536


class InvalidValue(ValueError):
    """A value that does not fit its property; `code` is HubSpot's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as HubSpot's ISO-8601 form (`2024-01-02T03:04:05.678Z`)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_instant_ms(value: Any) -> int:
    """Epoch milliseconds from epoch ms (number or digits) or an ISO date or datetime."""
    if isinstance(value, bool):
        raise InvalidValue("INVALID_DATE", f"{value!r} is not a date")
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if _EPOCH_MS.match(text):
        return int(text)
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidValue("INVALID_DATE", f"{text!r} is not a valid date or datetime") from exc
    return int(moment.timestamp() * 1000)


def instant_ms_or_none(text: str | None) -> int | None:
    """Like parse_instant_ms, but None for a missing or unparsable value (used inside SQL)."""
    if text is None or text == "":
        return None
    try:
        return parse_instant_ms(text)
    except InvalidValue:
        return None


def coerce(prop: PropertyDef, value: Any, owner_ids: frozenset[str] | None = None) -> str | None:
    """The stored string for `value` written to `prop`; None clears it. Raises InvalidValue."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value) if isinstance(value, float) else str(value)
    else:
        text = str(value)
    if text == "":
        return None
    if prop.type == "number":
        try:
            number = Decimal(text.strip())
        except InvalidOperation as exc:
            raise InvalidValue("INVALID_INTEGER", f"{text!r} is not a valid number") from exc
        if not number.is_finite():
            raise InvalidValue("INVALID_INTEGER", f"{text!r} is not a valid number")
        return text.strip()
    if prop.type == "datetime":
        return iso_ms(parse_instant_ms(text))
    if prop.type == "date":
        ms = parse_instant_ms(text)
        return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()
    if prop.type == "bool":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise InvalidValue("INVALID_BOOLEAN", f"{text!r} is not true or false")
        return lowered
    if prop.type == "enumeration":
        return _coerce_option(prop, text, owner_ids)
    if len(text) > MAX_STRING:
        raise InvalidValue("INVALID_STRING", f"value is longer than {MAX_STRING} characters")
    return text


def _coerce_option(prop: PropertyDef, text: str, owner_ids: frozenset[str] | None) -> str:
    if prop.name == "hubspot_owner_id":
        if owner_ids is not None and text not in owner_ids:
            raise InvalidValue("INVALID_OWNER_ID", f"{text!r} is not a valid owner id")
        return text
    choices = [part for part in text.split(";") if part != ""] if prop.multi else [text]
    if prop.options:
        for choice in choices:
            if choice not in prop.options:
                raise InvalidValue(
                    "INVALID_OPTION",
                    f"{choice!r} was not one of the allowed options: {', '.join(prop.options)}",
                )
    return ";".join(choices)
