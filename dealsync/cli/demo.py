"""`dealsync demo`: a vendor, two partner sandbox CRMs and a partner on Salesforce, synced step by
step with readable reports."""

from __future__ import annotations

import hashlib
import html
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from connectors.bottlecrm import BottleCrmConnector
from connectors.hubspot_settings import NOTE_TO_DEAL
from dealsync.cli.demo_salesforce import delta_notes, seed_delta, show_delta, start_delta
from dealsync.cli.runner import run_partners
from dealsync.cli.serve import write_local_config
from dealsync.config import load_config
from dealsync.ledger import Ledger
from dealsync.setup import prepare_portals
from sandbox.server import SandboxProcess
from sandbox.traffic import Limits

# The demo writes and reads back at once, so its sandboxes make writes searchable immediately.
DEMO_LIMITS = Limits(search_lag_ms=0)


class DemoCrm:
    """A sandbox CRM driven as its users would drive it."""

    def __init__(self, name: str, server: SandboxProcess) -> None:
        self.name = name
        self.server = server
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {server.token}"

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.session.request(
            method, f"{self.server.base_url}{path}", timeout=30, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else {}

    def owner(self, email: str, first: str, last: str) -> str:
        owner = self.server.admin(
            "POST", "owners", json={"email": email, "firstName": first, "lastName": last}
        )
        return str(owner.json()["id"])

    def create(self, **properties: str) -> str:
        return str(
            self.call("POST", "/crm/v3/objects/deals", json={"properties": properties})["id"]
        )

    def edit(self, deal_id: str, **properties: str) -> None:
        self.call("PATCH", f"/crm/v3/objects/deals/{deal_id}", json={"properties": properties})

    def archive(self, deal_id: str) -> None:
        self.call("DELETE", f"/crm/v3/objects/deals/{deal_id}")

    def note(self, deal_id: str, body: str, **properties: str) -> str:
        payload = {
            "properties": {
                "hs_note_body": body,
                "hs_timestamp": "2026-11-27T09:00:00Z",
                **properties,
            },
            "associations": [
                {
                    "to": {"id": deal_id},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": NOTE_TO_DEAL,
                        }
                    ],
                }
            ],
        }
        return str(self.call("POST", "/crm/v3/objects/notes", json=payload)["id"])

    def edit_note(self, note_id: str, **properties: str) -> None:
        self.call("PATCH", f"/crm/v3/objects/notes/{note_id}", json={"properties": properties})

    def upload(self, name: str, content: bytes) -> str:
        response = self.session.post(
            f"{self.server.base_url}/files/v3/files",
            files={"file": (name, content)},
            data={"fileName": name, "folderPath": "/demo", "options": '{"access": "PRIVATE"}'},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["id"])

    def download(self, file_id: str) -> bytes | None:
        response = self.session.get(
            f"{self.server.base_url}/files/v3/files/{file_id}/download", timeout=30
        )
        return response.content if response.ok else None

    def find(self, object_type: str, key: str) -> dict[str, Any]:
        """The record dealsync created with this key (read by unique property, no search)."""
        params = {
            "idProperty": "dealsync_key",
            "properties": "hs_attachment_ids,hs_note_body,dealname",
        }
        return self.call("GET", f"/crm/v3/objects/{object_type}/{key}", params=params)

    def deal_names(self) -> list[str]:
        results = self.call(
            "GET", "/crm/v3/objects/deals", params={"limit": 100, "properties": "dealname"}
        )["results"]
        return sorted(r["properties"]["dealname"] or "(no name)" for r in results)

    def note_bodies(self) -> list[str]:
        results = self.call(
            "GET", "/crm/v3/objects/notes", params={"limit": 100, "properties": "hs_note_body"}
        )["results"]
        return sorted(_plain(r["properties"]["hs_note_body"] or "") for r in results)


def _plain(html_text: str) -> str:
    """A note body on one line for the demo's table (author lines in brackets, no rich markup)."""
    text = (
        html_text.replace('<p class="dealsync-author">', "[")
        .replace(" wrote:</p>", "] ")
        .replace("<p>", "")
        .replace("</p>", " ")
        .replace("<br>", " ")
    )
    return escape(html.unescape(text).strip())


def _who_sees_what(console: Console, crms: list[DemoCrm]) -> None:
    table = Table(
        title="What each CRM holds now (partners kept apart; private notes stayed home)",
        title_justify="left",
    )
    for column in ("CRM", "deals", "notes"):
        table.add_column(column)
    for crm in crms:
        table.add_row(crm.name, "\n".join(crm.deal_names()), "\n".join(crm.note_bodies()))
    console.print(table)


def run_demo(console: Console, with_bottlecrm: bool = False) -> None:
    """Three sandboxes, a Salesforce partner (and a BottleCRM one), `init`, registrations, a
    conversion, notes, files, syncs."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dealsync-demo-")))
        with console.status("Starting a vendor and two partner sandbox CRMs..."):
            servers = [stack.enter_context(SandboxProcess(limits=DEMO_LIMITS)) for _ in range(3)]
        vendor, acme, globex = (
            DemoCrm("vendor", servers[0]),
            DemoCrm("acme", servers[1]),
            DemoCrm("globex", servers[2]),
        )
        for crm in (vendor, acme, globex):
            console.print(f"{crm.name} CRM on {crm.server.base_url}")
        partners: dict[str, tuple[str, ...]] = {
            p.name: (p.server.base_url, p.server.token) for p in (acme, globex)
        }
        delta = start_delta(stack, console)
        partners["delta"] = delta.config_entry
        beta = None
        if with_bottlecrm:
            from bottlecrm.server import BottleCrmServer
            from connectors.bottlecrm import BottleCrmConnector

            with console.status("Starting a real BottleCRM for partner beta..."):
                beta_server = stack.enter_context(BottleCrmServer(org_name="Beta"))
            beta = BottleCrmConnector(
                beta_server.base_url, beta_server.token, connection="beta's user"
            )
            partners["beta"] = (beta_server.base_url, beta_server.token, "bottlecrm")
            console.print(f"beta BottleCRM on {beta_server.base_url}")
        config_file = write_local_config(
            folder, vendor.server.base_url, vendor.server.token, partners
        )
        config = load_config(config_file)
        ledger = Ledger(config.ledger_url)
        ledger.migrate()
        prepare_portals(config)
        vendor.owner("rita@vendor.test", "Rita", "Rep")
        rep = vendor.owner("sam@vendor.test", "Sam", "Sales")
        ann = acme.owner("ann@acme.test", "Ann", "Agent")
        globex.owner("gus@globex.test", "Gus", "Globex")

        def sync(title: str) -> None:
            console.print(Panel(title, style="bold cyan"))
            run_partners(
                config,
                ledger,
                list(partners),
                False,
                False,
                False,
                console,
                console,
                show_plan=True,
            )

        console.print(
            Panel(
                "Step 1: partners register deals; the vendor shares a deal with acme", style="bold"
            )
        )
        cloud = acme.create(
            dealname="Acme Cloud rollout",
            closedate="2026-12-24",
            dealsync_shared="true",
            dealsync_product_interest="Analytics;Billing",
            dealsync_intro_note="Met their CTO at a meetup",
            dealsync_pain="Invoices take a week",
            dealsync_next_steps="Demo on Friday",
        )
        pilot = acme.create(
            dealname="Acme Data pilot", closedate="2027-01-31", dealsync_shared="true"
        )
        acme.create(dealname="Acme private deal")  # not shared: never leaves acme's CRM
        globex.create(dealname="Globex migration", dealsync_shared="true")
        initech = vendor.create(
            dealname="Initech expansion (via Acme)",
            amount="48000",
            dealstage="qualifiedtobuy",
            dealsync_partner="acme",
            dealsync_partner_owner_email="ann@acme.test",
            dealsync_welcome_note="Welcome Ann! Initech wants 40 seats.",
        )
        vendor.create(dealname="Vendor-only deal", amount="1000")
        delta_deal = seed_delta(delta, vendor.create)
        if beta is not None:
            _seed_beta(beta, vendor)
        sync(
            "Sync 1: registrations become vendor deals with an owner; the conversion reaches acme with its welcome note"
        )

        console.print(Panel("Step 2: notes, a file and a comment", style="bold"))
        proposal = b"%PDF-1.4 Acme Cloud proposal\n" * 2000
        file_id = acme.upload("proposal.pdf", proposal)
        shared_note = acme.note(
            cloud,
            "<p>Proposal attached, call went well</p>",
            hubspot_owner_id=ann,
            dealsync_shared="true",
            hs_attachment_ids=file_id,
        )
        acme.note(cloud, "<p>Our margin on this is thin</p>", dealsync_shared="false")
        cloud_twin = vendor.find("deals", f"acme:partner:{cloud}")["id"]
        globex.note(_first_deal(globex), "<p>Globex kickoff notes</p>", dealsync_shared="true")
        delta_notes(delta, delta_deal)
        if beta is not None:
            _beta_comments(beta)
        sync(
            "Sync 2: shared notes cross with their files; the private notes stay at acme and delta"
        )
        vendor_note = vendor.find("notes", f"acme:partner:{shared_note}")
        copy_id = vendor_note["properties"]["hs_attachment_ids"]
        same = (
            hashlib.sha256(vendor.download(copy_id) or b"").hexdigest()
            == hashlib.sha256(proposal).hexdigest()
        )
        console.print(
            f"file: acme {file_id} -> vendor {copy_id}, {len(proposal):,} bytes, same sha256 on both sides: {same}"
        )
        vendor.note(
            cloud_twin,
            "<p>Pricing approved for 40 seats</p>",
            hubspot_owner_id=rep,
            dealsync_reply_to=vendor_note["id"],
        )

        console.print(
            Panel(
                "Step 3: edits on both sides, a deletion, a bad registration, a file removed",
                style="bold",
            )
        )
        vendor.edit(cloud_twin, dealstage="contractsent", amount="125000", closedate="2027-01-15")
        acme.edit(cloud, dealsync_next_steps="Contract review", closedate="2027-02-01")
        acme.archive(pilot)
        nameless = acme.create(dealsync_shared="true", closedate="2027-03-01")
        # An old export re-imported into globex's CRM carries a key that names acme's vendor deal.
        reimported = globex.create(
            dealname="Globex renewal (re-imported)",
            dealsync_shared="true",
            dealsync_key=f"globex:vendor:{initech}",
        )
        vendor.call(
            "PATCH",
            f"/crm/v3/objects/notes/{vendor_note['id']}",
            json={"properties": {"hs_attachment_ids": ""}},
        )
        console.print(
            "vendor: stage, amount, close date; acme: next steps and close date (a conflict: the vendor wins close "
            f"dates); acme deletes the pilot; registration {nameless} has no name; the vendor removes the proposal "
            "from its copy of the note; the vendor rep's comment answers the shared note; globex re-imports "
            f"an old export whose deal {reimported} carries a key naming acme's vendor deal {initech}"
        )
        sync(
            "Sync 3: updates both ways, the conflict decided by its rule, deletions mirrored, the bad record "
            "quarantined, the re-imported key refused as a security event (nothing of acme's reaches globex)"
        )
        console.print(
            f"acme's proposal file {file_id} after the vendor removed it: {'deleted' if acme.download(file_id) is None else 'still there'}"
        )

        console.print(
            Panel(
                "Step 4: acme names the quarantined deal; globex clears the re-imported key",
                style="bold",
            )
        )
        acme.edit(nameless, dealname="Acme Billing upgrade")
        globex.edit(reimported, dealsync_key="")
        sync("Sync 4: the fixed records leave quarantine and register as deals of their own")
        sync(
            "Sync 5: nothing changed, so nothing is written (dealsync's own writes are not echoed back)"
        )
        _who_sees_what(console, [vendor, acme, globex])
        show_delta(console, delta)
        if beta is not None:
            _show_beta(console, beta)
        ledger.close()
        console.print(
            "Done: the sandboxes stop now. `make test` proves all of this against real servers."
        )


def _seed_beta(beta: BottleCrmConnector, vendor: DemoCrm) -> None:
    """Partner beta works in BottleCRM: a tagged registration with a product tag, a conversion for it."""
    from connectors.base import WriteInput

    beta.create(
        "deals",
        [
            WriteInput(
                "r",
                {
                    "name": "Beta analytics rollout",
                    "stage": "PROSPECTING",
                    "closed_on": "2027-02-15",
                    "tags": "dealsync-shared;Product: Analytics;Key account",
                    "cf_dealsync_pain": "manual reports",
                },
            ),
            WriteInput("p", {"name": "Beta private deal", "stage": "PROSPECTING"}),
        ],
    )
    vendor.create(
        dealname="Umbrella renewal (via Beta)",
        amount="30000",
        dealstage="contractsent",
        dealsync_partner="beta",
        dealsync_partner_owner_email="ann@partner.test",
        dealsync_welcome_note="Welcome to the Umbrella renewal, Ann.",
    )


def _beta_comments(beta: BottleCrmConnector) -> None:
    """Beta comments on its registration (one comment internal) and attaches the scope document."""
    deal_id = next(
        r.id
        for page in beta.pull_changes("deals", None, [])
        for r in page.records
        if r.properties["name"] == "Beta analytics rollout"
    )
    beta.add_comment(deal_id, "Their CFO signs off in January.")
    beta.add_comment(deal_id, "Internal: our margin is thin here.", internal=True)
    beta.attach(deal_id, "scope.pdf", b"%PDF-1.4 Beta scope\n" * 500)


def _show_beta(console: Console, beta: BottleCrmConnector) -> None:
    table = Table(title="Partner beta's BottleCRM now", title_justify="left")
    for column in ("deal", "tags", "owner", "vendor stage", "vendor amount", "comments", "files"):
        table.add_column(column)
    for page in beta.pull_changes("deals", None, ["tags_product"]):
        for r in page.records:
            p = r.properties
            comments = beta.comments(r.id)
            table.add_row(
                p["name"],
                p.get("tags") or "",
                p.get("assigned_to") or "",
                p.get("cf_dealsync_vendor_stage") or "",
                p.get("cf_dealsync_vendor_amount") or "",
                "\n".join(
                    ("(internal) " if c["is_internal"] else "") + c["comment"] for c in comments
                ),
                ", ".join(a.name for a in beta.attachments(r.id)),
            )
    console.print(table)


def _first_deal(crm: DemoCrm) -> str:
    return str(crm.call("GET", "/crm/v3/objects/deals", params={"limit": 1})["results"][0]["id"])
