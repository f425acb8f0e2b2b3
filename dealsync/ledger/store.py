"""What every part of the ledger's repository shares: its sessions, and links as the engine sees them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from dealsync.ledger.models import LinkRow
from dealsync.model import Link, Value, from_json, to_json


class LedgerBase:
    """The ledger's session factory, which every part of the repository uses."""

    sessions: sessionmaker[Session]


def to_link(row: LinkRow) -> Link:
    """A link row as the engine sees it."""
    return Link(
        row.id,
        row.partner_id,
        row.vendor_id,
        row.origin,  # type: ignore[arg-type]
        {k: from_json(v) for k, v in (row.base or {}).items()},
        row.state,  # type: ignore[arg-type]
    )


def json_base(base: dict[str, Value]) -> dict[str, Any]:
    """A base as the ledger stores it (JSON values)."""
    return {k: to_json(v) for k, v in base.items()}
