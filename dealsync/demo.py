"""`dealsync demo`: two local sandbox CRMs, seeded, pulled through the HubSpot connector, summarised."""

from __future__ import annotations

import hashlib
import time
from contextlib import ExitStack
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from connectors.hubspot import HubSpotConnector
from sandbox.server import SandboxProcess


@dataclass
class PortalSummary:
    """What one pull of one portal found, and what it cost."""

    name: str
    base_url: str
    deals: int = 0
    pipeline_amount: float = 0.0
    notes: int = 0
    notes_on_deals: int = 0
    files: int = 0
    file_bytes: int = 0
    owners: int = 0
    api_calls: int = 0
    seconds: float = 0.0


def pull_portal(name: str, server: SandboxProcess) -> PortalSummary:
    """Pull every deal, note, attachment and owner of a portal through the connector."""
    connector = HubSpotConnector(server.base_url, server.token, connection=name)
    summary = PortalSummary(name, server.base_url)
    started = time.monotonic()
    for page in connector.pull_changes("deals", None, ["dealname", "amount", "dealstage"]):
        summary.deals += len(page.records)
        summary.pipeline_amount += sum(float(r.properties.get("amount") or 0) for r in page.records)
    note_ids: list[str] = []
    attachment_ids: list[str] = []
    for page in connector.pull_changes("notes", None, ["hs_note_body", "hs_attachment_ids"]):
        note_ids += [r.id for r in page.records]
        for record in page.records:
            attachment_ids += [
                a for a in (record.properties.get("hs_attachment_ids") or "").split(";") if a
            ]
    summary.notes = len(note_ids)
    summary.notes_on_deals = sum(
        1 for deals in connector.associations("notes", "deals", note_ids).values() if deals
    )
    for file_id in attachment_ids:
        digest = hashlib.sha256()
        for chunk in connector.download_file(file_id):
            digest.update(chunk)
            summary.file_bytes += len(chunk)
        summary.files += 1
    summary.owners = len(connector.owners())
    summary.seconds = time.monotonic() - started
    summary.api_calls = connector.http.calls
    return summary


def summary_table(summaries: list[PortalSummary]) -> Table:
    """The demo's closing table."""
    table = Table(title="What the HubSpot connector pulled from each sandbox CRM")
    for column in (
        "portal",
        "deals",
        "amount",
        "notes",
        "on deals",
        "files",
        "bytes",
        "owners",
        "calls",
        "s",
    ):
        table.add_column(column, justify="left" if column == "portal" else "right")
    for s in summaries:
        table.add_row(
            s.name,
            f"{s.deals:,}",
            f"{s.pipeline_amount:,.0f}",
            f"{s.notes:,}",
            f"{s.notes_on_deals:,}",
            f"{s.files:,}",
            f"{s.file_bytes:,}",
            str(s.owners),
            str(s.api_calls),
            f"{s.seconds:.2f}",
        )
    return table


def run_demo(console: Console) -> None:
    """Start two seeded sandboxes, pull both, print the summary; always stop the servers."""
    with ExitStack() as stack:
        servers = {}
        for name in ("vendor", "partner-acme"):
            with console.status(f"Starting the {name} sandbox CRM..."):
                servers[name] = stack.enter_context(SandboxProcess(seed="demo"))
            console.print(f"[green]✓[/green] {name} sandbox on {servers[name].base_url} (seeded)")
        summaries = []
        for name, server in servers.items():
            with console.status(f"Pulling {name} through the HubSpot connector..."):
                summaries.append(pull_portal(name, server))
        console.print(summary_table(summaries))
        console.print(
            "Stopping the sandboxes. Next: `make test` runs the whole suite against real servers."
        )
