"""What a Salesforce partner's runs cost the org (its daily API allowance), against each run's bound.

A HubSpot vendor sandbox at HubSpot's default limits and a Salesforce sandbox org holding N shared
opportunities. For each N: the first sync, the run after it, a quiet run, a run after 1% edits on each
side, a run after 1% deletions (half on each side), a quiet run again. Each line prints the calls the
org answered (what its allowance counts), the vendor's calls, the wall time, and the org's bound:

    first sync: ceil(N / 2,000) query pages + ceil(writes / 200) collection calls + the deals'
                notes and files, listed once (2 x ceil(N / 200) link queries) + 6 constant calls
    other runs: 5 constant calls (changes of deals and notes, documents changed, two delete logs
                read as one) + ceil(changed / 2,000) + ceil(writes / 200)

    .venv/bin/python bench/run_cost.py --partner-crm salesforce [--sizes 1000,10000]
"""

from __future__ import annotations

import datetime
import math
import tempfile
import time
from pathlib import Path

from user_calls import user_call

from connectors.base import WriteInput
from dealsync.cli.demo_salesforce import DemoSalesforce
from dealsync.cli.serve import write_local_config
from dealsync.config import load_config
from dealsync.context import open_context
from dealsync.ledger import Ledger
from dealsync.outcomes import RunReport
from dealsync.run import run_pair
from dealsync.setup import prepare_portals
from sandbox.salesforce.server import SalesforceProcess
from sandbox.server import SandboxProcess

CONSTANT = 5  # a run's calls whatever changed: see the docstring
DETAIL = False  # print the org's calls by route
VENDOR: list[SandboxProcess] = []


def _org_calls(org: SalesforceProcess) -> int:
    return int(org.admin("GET", "allowance").json()["used"])


def _run(
    config_file: Path, org: SalesforceProcess, vendor: SandboxProcess
) -> tuple[RunReport, int, int, float]:
    vendor.admin("DELETE", "requests")
    org.admin("DELETE", "requests")
    before = _org_calls(org)
    config = load_config(config_file)
    started = time.perf_counter()
    report = run_pair(open_context(config, "delta", Ledger(config.ledger_url)))
    seconds = time.perf_counter() - started
    vendor_calls = sum(vendor.admin("GET", "requests").json()["by_route"].values())
    return report, _org_calls(org) - before, vendor_calls, seconds


def _bound(report: RunReport, first: bool, links: int) -> int:
    writes = sum(
        math.ceil(kind.get("partner", 0) / 200)
        for kind in (report.created, report.updated, report.deleted)
    )
    changed = report.pulled.get("partner changed", 0)
    # Reads a run cannot do without: the twins of the vendor's changed and deleted deals (200 a
    # query), the recycle bin for the deletions the log names, the fields' types before writing.
    twins = (
        math.ceil(report.pulled.get("vendor relevant", 0) / 200)
        + math.ceil(report.deleted.get("partner", 0) / 200)
        + (1 if report.deleted.get("vendor", 0) else 0)
        + (1 if report.created.get("partner", 0) + report.updated.get("partner", 0) else 0)
    )
    if first:
        # pages, writes, the notes and the files of every new deal, the fields' types, the notes' page
        return math.ceil(changed / 2000) + writes + 2 * math.ceil(links / 200) + 2
    return CONSTANT + max(0, math.ceil(changed / 2000) - 1) + writes + twins


def _show(
    name: str,
    measured: tuple[RunReport, int, int, float],
    bound: int,
    org_server: SalesforceProcess,
) -> None:
    report, org, vendor, seconds = measured
    print(
        f"  {name:<22} org {org:>5} calls (bound {bound:>5}, ratio {org / bound:.2f}x)   "
        f"vendor {vendor:>5} calls   {seconds:>7.2f} s   "
        f"created {dict(report.created)} updated {dict(report.updated)} deleted {dict(report.deleted)}"
    )
    if DETAIL:
        routes = org_server.admin("GET", "requests").json()["by_route"]
        print("      org: " + ", ".join(f"{r} {n}" for r, n in sorted(routes.items())))
        routes = VENDOR[0].admin("GET", "requests").json()["by_route"]
        print("      vendor: " + ", ".join(f"{r} {n}" for r, n in sorted(routes.items())))


def bench(size: int) -> None:
    with (
        SandboxProcess() as vendor,
        SalesforceProcess() as org,
        tempfile.TemporaryDirectory() as folder,
    ):
        VENDOR[:] = [vendor]
        delta = DemoSalesforce(org)
        config_file = write_local_config(
            Path(folder), vendor.base_url, vendor.token, {"delta": delta.config_entry}
        )
        config_file.write_text(  # short lookbacks: the sandboxes show writes at once (5 min by default)
            config_file.read_text()
            .replace("kind: salesforce\n", "kind: salesforce\n      lookback_seconds: 2\n")
            .replace("kind: hubspot,", "kind: hubspot, lookback_seconds: 2,")
        )
        config = load_config(config_file)
        Ledger(config.ledger_url).migrate()
        prepare_portals(config)
        for email in ("rita@vendor.test", "sam@vendor.test"):
            vendor.admin("POST", "owners", json={"email": email, "firstName": "R", "lastName": "V"})
        made = delta.crm.create(
            "deals",
            [
                WriteInput(
                    f"s{i}",
                    {
                        "Name": f"Shared {i}",
                        "StageName": "Prospecting",
                        "CloseDate": "2027-01-15",
                        "dealsync_shared__c": "true",
                    },
                )
                for i in range(size)
            ],
        )
        assert all(o.ok for o in made)
        print(f"{size:,} shared opportunities in the partner's Salesforce org")
        first = _run(config_file, org, vendor)
        _show("first sync", first, _bound(first[0], True, size), org)
        time.sleep(3)  # past the lookback (2 s here; 5 minutes by default)
        for name in ("run after first sync", "quiet run"):
            measured = _run(config_file, org, vendor)
            _show(name, measured, _bound(measured[0], False, size), org)
            time.sleep(3)
        links = Ledger(config.ledger_url).active_links("delta")
        edited = links[::100]
        for n, link in enumerate(edited):
            if n % 2:
                _vendor_edit(vendor, link.vendor_id)
            else:
                delta.call(
                    "PATCH",
                    f"/sobjects/Opportunity/{link.partner_id}",
                    json={"dealsync_pain__c": f"pain {n}"},
                )
        time.sleep(1)  # the vendor's search shows a write after 0.5 s (HubSpot's: seconds)
        measured = _run(config_file, org, vendor)
        _show(f"after {len(edited)} edits", measured, _bound(measured[0], False, size), org)
        time.sleep(3)
        gone = links[50::100]
        for n, link in enumerate(gone):
            if n % 2:
                _vendor_delete(vendor, link.vendor_id)
            else:
                delta.call("DELETE", f"/sobjects/Opportunity/{link.partner_id}")
        time.sleep(1)
        measured = _run(config_file, org, vendor)
        _show(f"after {len(gone)} deleted", measured, _bound(measured[0], False, size), org)
        time.sleep(3)
        measured = _run(config_file, org, vendor)
        _show("quiet run again", measured, _bound(measured[0], False, size), org)
        limits = org.admin("GET", "allowance").json()
        print(f"  the org's allowance: {limits['used']:,} of {limits['limit']:,} used by then")


def _vendor_edit(vendor: SandboxProcess, deal_id: str) -> None:
    path = f"/crm/v3/objects/deals/{deal_id}"
    user_call(
        vendor.base_url,
        vendor.token,
        "PATCH",
        path,
        json={"properties": {"closedate": "2027-03-01"}},
    )


def _vendor_delete(vendor: SandboxProcess, deal_id: str) -> None:
    user_call(vendor.base_url, vendor.token, "DELETE", f"/crm/v3/objects/deals/{deal_id}")


def main(sizes: list[int], detail: bool = False) -> None:
    global DETAIL
    DETAIL = detail
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    print(f"Salesforce partner run costs ({started})")
    for size in sizes:
        bench(size)
