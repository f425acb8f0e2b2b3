"""The demo's partner on Salesforce: delta, on the Salesforce sandbox, driven as its users would."""

from __future__ import annotations

import base64
import datetime
import html
import re
from contextlib import ExitStack
from typing import Any

import requests
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.base import WriteInput
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_http import API_VERSION, SalesforceHttp, SalesforceLogin
from sandbox.salesforce.server import SalesforceProcess

DEAL_FIELDS = [
    "Name",
    "StageName",
    "OwnerId",
    "dealsync_vendor_stage__c",
    "dealsync_vendor_amount__c",
]


class DemoSalesforce:
    """Partner delta's Salesforce org: its users' REST calls, and a connector to read it back."""

    def __init__(self, server: SalesforceProcess) -> None:
        self.server = server
        login = SalesforceLogin(
            server.instance_url,
            server.app.client_id,
            server.app.client_secret,
            server.app.refresh_token,
        )
        self.crm = SalesforceConnector(
            SalesforceHttp(login, "delta's user", verify=str(server.cert)), lookback_ms=0
        )
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(server.cert)
        self.session.headers["Authorization"] = f"Bearer {server.session()['access_token']}"
        # An org that has kept its delete log for a day, as a real one has.
        earliest = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        server.admin("POST", "delete-log", json={"earliest": earliest.isoformat()})

    @property
    def config_entry(self) -> tuple[str, ...]:
        """What `write_local_config` needs for this partner."""
        app = self.server.app
        return (
            self.server.instance_url,
            app.refresh_token,
            "salesforce",
            app.client_id,
            app.client_secret,
            str(self.server.cert),
        )

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A user's REST call to the org."""
        url = f"{self.server.instance_url}/services/data/v{API_VERSION}{path}"
        answer = self.session.request(method, url, timeout=30, **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else {}

    def user(self, email: str, first: str, last: str) -> None:
        """A Salesforce user of the org."""
        self.call(
            "POST",
            "/sobjects/User/",
            json={
                "Username": email,
                "Email": email,
                "FirstName": first,
                "LastName": last,
                "IsActive": True,
            },
        )

    def note(self, deal_id: str, title: str, text: str) -> None:
        """A user's note on an opportunity."""
        content = base64.b64encode(f"<p>{html.escape(text)}</p>".encode()).decode()
        note = self.call(
            "POST", "/sobjects/ContentNote/", json={"Title": title, "Content": content}
        )
        self.call(
            "POST",
            "/sobjects/ContentDocumentLink/",
            json={"ContentDocumentId": note["id"], "LinkedEntityId": deal_id, "ShareType": "I"},
        )

    def file(self, deal_id: str, title: str, name: str, data: bytes) -> None:
        """A user's file on an opportunity."""
        self.call(
            "POST",
            "/sobjects/ContentVersion/",
            json={
                "Title": title,
                "PathOnClient": name,
                "VersionData": base64.b64encode(data).decode(),
                "FirstPublishLocationId": deal_id,
            },
        )


def start_delta(stack: ExitStack, console: Console) -> DemoSalesforce:
    """The Salesforce sandbox for partner delta, with the user a conversion names."""
    with console.status("Starting a Salesforce sandbox for partner delta..."):
        server = stack.enter_context(SalesforceProcess())
    delta = DemoSalesforce(server)
    delta.user("dee@delta.test", "Dee", "Delta")
    console.print(f"delta Salesforce on {server.instance_url} (OAuth refresh token, TLS)")
    return delta


def seed_delta(delta: DemoSalesforce, create_vendor_deal: Any) -> str:
    """Delta ticks 'Shared with the vendor' on one opportunity, keeps another; the vendor converts
    a deal for delta. The registration's id."""
    made = delta.crm.create(
        "deals",
        [
            WriteInput(
                "r",
                {
                    "Name": "Delta payments rollout",
                    "StageName": "Qualification",
                    "CloseDate": "2027-03-31",
                    "dealsync_shared__c": "true",
                    "dealsync_product_interest__c": "Billing",
                    "dealsync_pain__c": "Card fees eat the margin",
                },
            ),
            WriteInput(
                "p",
                {
                    "Name": "Delta private deal",
                    "StageName": "Prospecting",
                    "CloseDate": "2027-06-30",
                },
            ),
        ],
    )
    create_vendor_deal(
        dealname="Hooli analytics (via Delta)",
        amount="22000",
        closedate="2027-05-31",
        dealstage="presentationscheduled",
        dealsync_partner="delta",
        dealsync_partner_owner_email="dee@delta.test",
        dealsync_welcome_note="Welcome Dee! Hooli's champion is their COO.",
    )
    return str(made[0].record.id) if made[0].record else ""


def delta_notes(delta: DemoSalesforce, deal_id: str) -> None:
    """A shared note, a private one, and a shared file on the registration."""
    delta.note(deal_id, "[shared] Call with their CFO", "CFO wants a pilot in March.")
    delta.note(deal_id, "Pricing thoughts", "We could go 10% lower if needed.")
    delta.file(deal_id, "[shared] Pilot scope", "pilot-scope.pdf", b"%PDF-1.4 Delta pilot\n" * 400)


def _text(html_text: str | None) -> str:
    return escape(html.unescape(re.sub(r"<[^>]+>", " ", html_text or "")).strip())


def show_delta(console: Console, delta: DemoSalesforce) -> None:
    """Delta's opportunities as its org holds them now, with their notes and files."""
    crm = delta.crm
    owners = {o.id: o.email for o in crm.owners()}
    table = Table(title="Partner delta's Salesforce org now", title_justify="left")
    for column in (
        "opportunity",
        "stage",
        "owner",
        "vendor stage",
        "vendor amount",
        "notes",
        "files",
    ):
        table.add_column(column)
    deals = [r for page in crm.pull_changes("deals", None, DEAL_FIELDS) for r in page.records]
    notes_of = crm.associations("deals", "notes", [r.id for r in deals])
    files_of = crm.deal_attachments([r.id for r in deals])
    for deal in deals:
        p = deal.properties
        notes = crm.read("notes", list(notes_of.get(deal.id, ())), [])
        table.add_row(
            p["Name"] or "",
            p["StageName"] or "",
            owners.get(p["OwnerId"] or "", ""),
            p["dealsync_vendor_stage__c"] or "",
            p["dealsync_vendor_amount__c"] or "",
            "\n".join(
                f"{escape(n.properties['Title'] or '')}: {_text(n.properties['Content'])}"
                if n.properties["Content"]
                else f"{escape(n.properties['Title'] or '')} (not shared: dealsync never reads it)"
                for n in notes.values()
            ),
            ", ".join(f.name for f in files_of.get(deal.id, ())),
        )
    console.print(table)
