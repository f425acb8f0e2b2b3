"""`dealsync deletions`: the deletions the brake held, and a person's decision on them."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from dealsync.cli.common import ConfigOption, PartnerOption, console, fail, load
from dealsync.cli.output import JsonOption, iso, listing, print_json

if TYPE_CHECKING:
    from dealsync.ledger.held import Decision

deletions_app = typer.Typer(
    help="Deletions the brake held: list them, approve them (the next run applies exactly those), "
    "or reject them.",
    no_args_is_help=True,
)
RequiredPartner = Annotated[
    str, typer.Option("--partner", "-p", help="The partner they belong to.")
]


@deletions_app.command("list")
def deletions_list(
    config: ConfigOption = None, partner: PartnerOption = None, as_json: JsonOption = False
) -> None:
    """Held deletions: which record they would reach, why, and what was decided."""
    _loaded, ledger = load(config)
    held = ledger.held_deletions(partner)
    rows: list[dict[str, Any]] = [
        {
            "partner": h.pair,
            "object": h.object_type,
            "link_id": h.link_id,
            "deleted_on": h.source,
            "would_reach": f"{'vendor' if h.source == 'partner' else 'partner'} {h.target_id}",
            "action": h.action,
            "state": h.state,
            "held_at": iso(h.held_at),
            "decided_by": h.decided_by,
        }
        for h in held
    ]
    if as_json:
        print_json(listing("deletions", rows))
        return
    table = Table(title=f"Held deletions ({len(rows)})")
    for column in ("partner", "object", "link", "deleted on", "would reach", "action", "state"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["partner"],
            r["object"],
            str(r["link_id"]),
            r["deleted_on"],
            r["would_reach"],
            r["action"],
            r["state"],
        )
    console.print(table)


@deletions_app.command("approve")
def deletions_approve(partner: RequiredPartner, config: ConfigOption = None) -> None:
    """Approve the partner's held deletions as listed; its next run applies exactly those."""
    _decide(config, partner, "approved")


@deletions_app.command("reject")
def deletions_reject(partner: RequiredPartner, config: ConfigOption = None) -> None:
    """Reject the partner's held deletions: they stay held, and are not asked about again."""
    _decide(config, partner, "rejected")


def _decide(config: ConfigOption, partner: str, decision: Decision) -> None:
    loaded, ledger = load(config)
    from dealsync.config import ConfigError

    try:
        loaded.partner(partner)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    count = ledger.decide_deletions(partner, decision, f"{getpass.getuser()} (CLI)")
    if not count:
        console.print(f"Partner {partner} has no held deletions to mark {decision}.")
        return
    follow = "its next run applies them" if decision == "approved" else "they stay where they are"
    console.print(f"{count} held deletions of partner {partner} {decision}: {follow}.")
