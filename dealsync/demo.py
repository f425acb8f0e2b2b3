"""`dealsync demo`: a vendor and a partner sandbox CRM, synced step by step with readable reports."""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

import requests
from rich.console import Console
from rich.panel import Panel

from dealsync.config import load_config
from dealsync.ledger import Ledger
from dealsync.runner import run_partners
from dealsync.setup import prepare_portals
from sandbox.server import SandboxProcess
from sandbox.traffic import Limits

# The demo writes and reads back at once, so its sandboxes make writes searchable immediately.
DEMO_LIMITS = Limits(search_lag_ms=0)


class DemoCrm:
    """A sandbox CRM driven as its users would drive it."""

    def __init__(self, server: SandboxProcess) -> None:
        self.server = server
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {server.token}"

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = self.session.request(
            method, f"{self.server.base_url}{path}", timeout=30, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else {}

    def owner(self, email: str, first: str, last: str) -> None:
        self.server.admin(
            "POST", "owners", json={"email": email, "firstName": first, "lastName": last}
        )

    def create(self, **properties: str) -> str:
        return self.call("POST", "/crm/v3/objects/deals", json={"properties": properties})["id"]

    def edit(self, deal_id: str, **properties: str) -> None:
        self.call("PATCH", f"/crm/v3/objects/deals/{deal_id}", json={"properties": properties})

    def archive(self, deal_id: str) -> None:
        self.call("DELETE", f"/crm/v3/objects/deals/{deal_id}")

    def twin_of(self, key: str) -> str:
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "dealsync_key", "operator": "EQ", "value": key}]}
            ]
        }
        return self.call("POST", "/crm/v3/objects/deals/search", json=body)["results"][0]["id"]


def _config(folder: Path, vendor: SandboxProcess, partner: SandboxProcess) -> Path:
    os.environ["DEMO_VENDOR_TOKEN"] = vendor.token
    os.environ["DEMO_ACME_TOKEN"] = partner.token
    path = folder / "dealsync.yaml"
    path.write_text(
        f"ledger: sqlite:///{folder}/ledger.db\n"
        "vendor:\n"
        f'  crm: {{kind: hubspot, base_url: "{vendor.base_url}", token: "env:DEMO_VENDOR_TOKEN"}}\n'
        "  owner_assignment: {strategy: round_robin, pool: [rita@vendor.test, sam@vendor.test], fallback: rita@vendor.test}\n"
        "partners:\n"
        "  - id: acme\n"
        f'    crm: {{kind: hubspot, base_url: "{partner.base_url}", token: "env:DEMO_ACME_TOKEN"}}\n'
    )
    return path


def run_demo(console: Console) -> None:
    """Two sandboxes, `init`, registrations and conversions, three syncs with edits in between."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dealsync-demo-")))
        with console.status("Starting a vendor and a partner sandbox CRM..."):
            vendor_server = stack.enter_context(SandboxProcess(limits=DEMO_LIMITS))
            partner_server = stack.enter_context(SandboxProcess(limits=DEMO_LIMITS))
        vendor, partner = DemoCrm(vendor_server), DemoCrm(partner_server)
        console.print(
            f"vendor CRM on {vendor_server.base_url}, partner 'acme' CRM on {partner_server.base_url}"
        )
        config = load_config(_config(folder, vendor_server, partner_server))
        ledger = Ledger(config.ledger_url)
        ledger.migrate()
        prepare_portals(config)
        for email, first, last in (
            ("rita@vendor.test", "Rita", "Rep"),
            ("sam@vendor.test", "Sam", "Sales"),
        ):
            vendor.owner(email, first, last)
        partner.owner("ann@acme.test", "Ann", "Agent")

        def sync(title: str) -> None:
            console.print(Panel(title, style="bold cyan"))
            run_partners(
                config, ledger, ["acme"], False, False, False, console, console, show_plan=True
            )

        console.print(
            Panel(
                "Step 1: the partner registers deals, the vendor shares one deal with the partner",
                style="bold",
            )
        )
        cloud = partner.create(
            dealname="Acme Cloud rollout",
            closedate="2026-12-24",
            dealsync_shared="true",
            dealsync_product_interest="Analytics;Billing",
            dealsync_intro_note="Met their CTO at a meetup",
            dealsync_pain="Invoices take a week",
            dealsync_next_steps="Demo on Friday",
        )
        doomed = partner.create(
            dealname="Acme Data pilot", closedate="2027-01-31", dealsync_shared="true"
        )
        for n in range(3):
            partner.create(
                dealname=f"Acme private deal {n + 1}"
            )  # not shared: never leaves the partner CRM
        conversion = vendor.create(
            dealname="Globex expansion (via Acme)",
            amount="48000",
            dealstage="qualifiedtobuy",
            dealsync_partner="acme",
            dealsync_partner_owner_email="ann@acme.test",
        )
        for n in range(4):
            vendor.create(dealname=f"Vendor-only deal {n + 1}", amount="1000")
        console.print(
            "partner: 2 registrations (dealsync_shared=true) + 3 private deals; vendor: 1 conversion + 4 vendor-only deals"
        )
        sync(
            "Sync 1: registrations become vendor deals with a vendor owner; the conversion appears at the partner"
        )

        console.print(
            Panel(
                "Step 2: both sides edit, one deal is deleted, a bad registration arrives",
                style="bold",
            )
        )
        cloud_twin = vendor.twin_of(f"acme:partner:{cloud}")
        vendor.edit(cloud_twin, dealstage="contractsent", amount="125000", closedate="2027-01-15")
        partner.edit(cloud, dealsync_next_steps="Contract review", closedate="2027-02-01")
        partner.archive(doomed)
        nameless = partner.create(dealsync_shared="true", closedate="2027-03-01")
        console.print(
            "vendor: stage, amount and close date of the cloud deal; partner: next steps and close date of the same "
            f"deal (a conflict: the vendor wins close dates); partner deletes the pilot; registration {nameless} has no name"
        )
        sync(
            "Sync 2: updates both ways, the conflict decided by its rule, the deletion mirrored, the bad record quarantined"
        )

        console.print(Panel("Step 3: the partner names the quarantined deal", style="bold"))
        partner.edit(nameless, dealname="Acme Billing upgrade")
        sync(
            "Sync 3: the fixed record leaves quarantine and syncs; everything else is already in agreement"
        )
        sync("Sync 4: nothing changed, so nothing is written (our own writes are not echoed back)")
        ledger.close()
        console.print(
            f"Done. The sandboxes stop now; conversions came from vendor deal {conversion}."
        )
