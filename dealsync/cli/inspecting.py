"""The read-only commands: whether every connection would sync, and what runs did (status,
conflicts, quarantine), as tables or as `--json` documents."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from dealsync.cli.common import ConfigOption, PartnerOption, console, fail, load
from dealsync.cli.output import JsonOption

MAX_CHECK_ROWS = 30  # more checks than this (many partners): the table shows only the failing


def check(
    config: ConfigOption = None, partner: PartnerOption = None, as_json: JsonOption = False
) -> None:
    """Check that every connection would sync (reach, token, reads, properties, owners); write nothing."""
    from rich.table import Table

    from dealsync.checks import check_connections
    from dealsync.cli.output import print_json
    from dealsync.config import ConfigError, load_config

    try:
        loaded = load_config(config)
        results = check_connections(loaded, partner)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    ok = all(r.ok for r in results)
    if as_json:
        print_json(
            {
                "ok": ok,
                "checks": [
                    {
                        "portal": r.portal,
                        "object": r.object_type,
                        "ok": r.ok,
                        "checked": r.checked,
                        "problems": r.problems,
                    }
                    for r in results
                ],
            }
        )
    else:
        table = Table(title="dealsync check")
        for column in ("portal", "object", "result", "what to do"):
            table.add_column(column)
        # Many partners: the table lists what fails; the rest is counted (--json lists all).
        shown = results if len(results) <= MAX_CHECK_ROWS else [r for r in results if not r.ok]
        for r in shown:
            verdict = "[green]ok[/green]" if r.ok else "[red]fails[/red]"
            table.add_row(
                r.portal,
                r.object_type,
                verdict,
                Text("\n".join(r.problems) or ", ".join(r.checked)),
            )
        if shown:
            console.print(table)
        if len(shown) < len(results):
            passed = sum(r.ok for r in results)
            console.print(f"{passed} of {len(results)} checks passed (`--json` lists every one).")
        console.print(
            "[green]Everything would sync.[/green]"
            if ok
            else "[red]Fix the above, then check again.[/red]"
        )
    if not ok:
        raise typer.Exit(1)


def status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Per partner: shared deals, active registrations, shared notes, last run, quarantine, conflicts."""
    from rich.table import Table

    from dealsync.cli.output import iso, print_json
    from dealsync.ledger.models import ConflictRow
    from dealsync.tracking import active_registrations

    loaded, ledger = load(config)
    quarantine = ledger.quarantine_pairs()
    rows: list[dict[str, Any]] = []
    for p in loaded.partners:
        last = ledger.last_run(p.id)
        rows.append(
            {
                "partner": p.id,
                "shared_deals": ledger.count_links(p.id),
                "active_registrations": active_registrations(ledger, p.id),
                "shared_notes": ledger.count_links(p.id, object_type="notes"),
                "last_run": iso(last.started_at) if last else None,
                "last_run_status": last.status if last else None,
                "last_run_error": (last.error or None) if last else None,
                "quarantine": quarantine.get(p.id, 0),
                "conflicts": ledger.count(ConflictRow, p.id),
            }
        )
    if as_json:
        print_json({"partners": rows, "count": len(rows)})
        return
    table = Table(title="dealsync status")
    columns = (
        "partner",
        "shared deals",
        "active registrations",
        "shared notes",
        "last run",
        "status",
        "quarantine",
        "conflicts",
    )
    for column in columns:
        table.add_column(column)
    for row in rows:
        status_text = row["last_run_status"] or "-"
        if row["last_run_error"]:
            status_text += f": {row['last_run_error']}"
        table.add_row(
            row["partner"],
            str(row["shared_deals"]),
            str(row["active_registrations"]),
            str(row["shared_notes"]),
            (row["last_run"] or "never")[:19].replace("T", " "),
            Text(status_text),
            str(row["quarantine"]),
            str(row["conflicts"]),
        )
    console.print(table)


def quarantine_list(
    config: ConfigOption = None, partner: PartnerOption = None, as_json: JsonOption = False
) -> None:
    """Records in quarantine: which, where, why, and how often they were retried."""
    from rich.table import Table

    from dealsync.cli.output import listing, print_json, quarantine_json

    _loaded, ledger = load(config)
    entries = ledger.open_quarantine(partner)
    if as_json:
        print_json(listing("quarantine", (quarantine_json(e) for e in entries)))
        return
    table = Table(title=f"Quarantine ({len(entries)} open)")
    for column in ("partner", "side", "record id", "stage", "reason", "waits for", "attempts"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            e.pair,
            e.side,
            e.record_id,
            e.stage,
            Text("; ".join(e.reasons)),
            "the next run" if e.retriable else "a change",
            str(e.attempts),
        )
    console.print(table)
    if any(not e.retriable for e in entries):
        console.print(
            "Records waiting for a change are retried when they change at their source or the "
            "mapping changes; after fixing something else (a portal's property options, an owner), "
            "run `dealsync quarantine retry`."
        )
    elif entries:
        console.print("The next run retries them (or now: `dealsync quarantine retry`).")


def conflicts(
    config: ConfigOption = None,
    partner: PartnerOption = None,
    limit: Annotated[int, typer.Option(help="How many of the newest to show.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Fields both sides changed, with all three values and the rule that decided."""
    from rich.table import Table

    from dealsync.cli.output import conflict_json, listing, print_json

    _loaded, ledger = load(config)
    if as_json:
        print_json(
            listing("conflicts", (conflict_json(c) for c in ledger.conflicts(partner, limit)))
        )
        return
    table = Table(title="Conflicts (newest first)")
    for column in (
        "when",
        "partner",
        "link",
        "field",
        "base",
        "partner value",
        "vendor value",
        "rule",
        "winner",
    ):
        table.add_column(column)
    for c in ledger.conflicts(partner, limit):
        table.add_row(
            str(c.at)[:19],
            c.pair,
            str(c.link_id),
            c.field,
            Text(repr(c.base_value)),
            Text(repr(c.partner_value)),
            Text(repr(c.vendor_value)),
            c.rule,
            c.winner,
        )
    console.print(table)
