"""What the CLI prints: tables for people, one JSON document for scripts (`--json`).

The JSON documents' keys are stable (docs/cli.md lists them); values are plain JSON (times as ISO
8601 strings in UTC, counts as numbers). Tables printed into a pipe are never wrapped at a width, so
`dealsync conflicts | grep closedate` finds whole cells.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel

if TYPE_CHECKING:  # the CLI starts without the ledger's and the engine's imports
    from dealsync.ledger.models import ConflictRow
    from dealsync.ledger.quarantine import QuarantineEntry
    from dealsync.outcomes import RunReport

# Wider than any row: rich sizes a table to its content, and only wraps cells beyond the width
# (what fills the width instead, a panel, is fitted to its content: PipedConsole).
PIPED_WIDTH = 100_000

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (stable keys, docs/cli.md).")
]


class PipedConsole(Console):
    """A console into a pipe: wide enough that nothing wraps, and nothing is padded beyond its
    content (a panel that fills a terminal's width is as wide as its text here)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Print as rich does, with panels fitted to their content."""
        super().print(*(_fitted(o) for o in objects), **kwargs)


def _fitted(renderable: Any) -> Any:
    if isinstance(renderable, Panel) and renderable.expand:
        fitted = copy.copy(renderable)
        fitted.expand = False
        return fitted
    return renderable


def terminal_console(stderr: bool = False) -> Console:
    """A console that wraps to the terminal, or not at all when its output is piped."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return PipedConsole(stderr=stderr, width=PIPED_WIDTH, soft_wrap=True)


def print_json(document: dict[str, Any]) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=_plain) + "\n")
    sys.stdout.flush()


def _plain(value: Any) -> Any:
    """JSON for what the standard encoder does not know (times, sets)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def iso(moment: datetime | None) -> str | None:
    """A time as ISO 8601 in UTC (the ledger stores UTC without a zone)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def run_json(report: RunReport) -> dict[str, Any]:
    """One partner's run."""
    return {
        "partner": report.pair,
        "run_id": report.run_id,
        "dry_run": report.dry_run,
        "status": "completed",
        **report.summary(),
        "quarantined": [_quarantined(q) for q in report.quarantined],
        "conflicts": report.conflicts,
    }


def _quarantined(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "raw"}


def quarantine_json(entry: QuarantineEntry) -> dict[str, Any]:
    """One open quarantine entry."""
    return {
        "partner": entry.pair,
        "side": entry.side,
        "object": entry.object_type,
        "record_id": entry.record_id,
        "stage": entry.stage,
        "reasons": entry.reasons,
        "attempts": entry.attempts,
        "retriable": entry.retriable,
        "waits_for": "next run" if entry.retriable else "change",
        "first_seen": iso(entry.first_seen),
        "last_seen": iso(entry.last_seen),
    }


def conflict_json(row: ConflictRow) -> dict[str, Any]:
    """One conflict with its three values."""
    return {
        "at": iso(row.at),
        "partner": row.pair,
        "link_id": row.link_id,
        "field": row.field,
        "base": row.base_value,
        "partner_value": row.partner_value,
        "vendor_value": row.vendor_value,
        "rule": row.rule,
        "winner": row.winner,
    }


def listing(key: str, items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A document holding a list under `key` and its length."""
    rows = list(items)
    return {key: rows, "count": len(rows)}
