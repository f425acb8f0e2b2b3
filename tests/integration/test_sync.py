"""End to end through the CLI: two sandbox CRMs over HTTP, a real ledger, PRODUCT.md's behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dealsync.cli import app
from dealsync.config import load_config
from dealsync.context import open_context
from dealsync.ledger import Ledger
from dealsync.phases import deals
from dealsync.phases.deals import DealPhase
from dealsync.run import run_pair
from tests.integration.test_run_cost import _no_lookback

SHARED = {"dealsync_shared": "true"}
DEAL_PROPS = (
    "dealname",
    "closedate",
    "dealsync_product_interest",
    "dealsync_pain",
    "dealsync_key",
    "hubspot_owner_id",
    "dealstage",
    "pipeline",
    "amount",
    "dealsync_vendor_stage",
    "dealsync_vendor_amount",
    "dealsync_partner",
    "dealsync_shared",
)


def _twin(pair, side: str, key: str) -> dict:
    matches = [d for d in pair.deals(side, *DEAL_PROPS) if d.get("dealsync_key") == key]
    assert len(matches) == 1, matches
    return matches[0]


@pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)
def test_registration_and_conversion_then_a_quiet_second_run(pair):
    reg = pair.create(
        "partner",
        dealname="Acme Cloud",
        closedate="2026-12-24",
        dealsync_product_interest="Billing;Analytics",
        dealsync_pain="slow invoicing",
        dealstage="closedwon",
        **SHARED,
    )
    pair.create("partner", dealname="Private pipeline deal")
    conv = pair.create(
        "vendor",
        dealname="Big vendor deal",
        amount="5000",
        dealsync_partner="acme",
        dealsync_partner_owner_email="bob@acme.test",
        dealstage="qualifiedtobuy",
    )
    result = pair.cli("run")
    assert "Partner acme: run" in result.output

    vendor_twin = _twin(pair, "vendor", f"acme:partner:{reg}")
    assert (
        vendor_twin["dealname"] == "Acme Cloud" and vendor_twin["dealsync_pain"] == "slow invoicing"
    )
    assert vendor_twin["closedate"].startswith("2026-12-24")
    assert vendor_twin["dealsync_product_interest"] == "Analytics;Billing"
    assert (
        vendor_twin["dealstage"] == "appointmentscheduled"
        and vendor_twin["dealsync_partner"] == "acme"
    )
    rep1 = pair.api("vendor", "GET", "/crm/v3/owners", params={"email": "rep1@vendor.test"}).json()[
        "results"
    ][0]["id"]
    assert vendor_twin["hubspot_owner_id"] == rep1
    assert (
        pair.deal("partner", reg, "dealsync_vendor_stage")["dealsync_vendor_stage"]
        == "Appointment scheduled"
    )

    partner_twin = _twin(pair, "partner", f"acme:vendor:{conv}")
    bob = pair.api("partner", "GET", "/crm/v3/owners", params={"email": "bob@acme.test"}).json()[
        "results"
    ][0]["id"]
    assert partner_twin["hubspot_owner_id"] == bob and partner_twin["dealsync_shared"] == "true"
    assert (
        partner_twin["dealsync_vendor_amount"] == "5000"
        and partner_twin["dealsync_vendor_stage"] == "Qualified to buy"
    )
    assert partner_twin["dealstage"] is None  # the vendor's stage is not the partner's stage

    assert len(pair.deals("vendor")) == 2  # the private deal did not cross
    pair.reset_counts()
    pair.cli("run")
    assert pair.writes("vendor") == 0 and pair.writes("partner") == 0


def test_updates_both_ways_conflict_and_deletion(pair):
    reg = pair.create(
        "partner",
        dealname="D",
        closedate="2026-10-01",
        dealsync_product_interest="Billing",
        **SHARED,
    )
    doomed = pair.create("partner", dealname="Doomed", **SHARED)
    pair.cli("run")
    vid = _twin(pair, "vendor", f"acme:partner:{reg}")["id"]
    doomed_twin = _twin(pair, "vendor", f"acme:partner:{doomed}")["id"]

    pair.edit("vendor", vid, amount="900", dealstage="closedwon", closedate="2026-11-11")
    pair.edit(
        "partner", reg, dealsync_pain="budget freeze", closedate="2026-12-12"
    )  # close date: conflict
    pair.archive("partner", doomed)
    result = pair.cli("run")
    assert "Conflicts" in result.output

    partner = pair.deal(
        "partner", reg, "closedate", "dealsync_vendor_amount", "dealsync_vendor_stage"
    )
    assert partner["closedate"].startswith("2026-11-11")  # the vendor wins close-date conflicts
    assert (
        partner["dealsync_vendor_amount"] == "900"
        and partner["dealsync_vendor_stage"] == "Closed won"
    )
    assert pair.deal("vendor", vid, "dealsync_pain")["dealsync_pain"] == "budget freeze"
    assert pair.deal("vendor", doomed_twin) is None  # archived with its twin

    conflicts = pair.cli("conflicts").output
    assert (
        "close_date" in conflicts
        and "2026-10-01" in conflicts
        and "2026-12-12" in conflicts
        and "vendor" in conflicts
    )
    pair.reset_counts()
    pair.cli("run")
    assert pair.writes("vendor") == pair.writes("partner") == 0


def test_a_bad_record_is_quarantined_then_syncs_once_fixed(pair):
    nameless = pair.create("partner", closedate="2026-10-01", **SHARED)
    fine = pair.create("partner", dealname="Fine", **SHARED)
    result = pair.cli("run")
    assert result.exit_code == 0
    listed = pair.cli("quarantine", "list").output
    assert nameless in listed and "dealname" in listed and "required" in listed
    _twin(pair, "vendor", f"acme:partner:{fine}")  # the good record was not blocked

    pair.cli("run")
    assert (
        nameless in pair.cli("quarantine", "list").output
    )  # still bad: still there, attempt counted

    pair.edit("partner", nameless, dealname="Named at last")
    pair.cli("run")
    assert _twin(pair, "vendor", f"acme:partner:{nameless}")["dealname"] == "Named at last"
    assert "0 open" in pair.cli("quarantine", "list").output


def test_dry_run_prints_the_plan_and_writes_nothing(pair, ledger_url):
    pair.create("partner", dealname="Would sync", **SHARED)
    pair.reset_counts()
    result = pair.cli("run", "--dry-run")
    assert "dry run, nothing written" in result.output and "Would sync" in result.output
    assert pair.writes("vendor") == pair.writes("partner") == 0
    ledger = Ledger(ledger_url)
    assert ledger.count_links("acme") == 0 and ledger.last_run("acme") is None


def test_a_crash_between_create_and_commit_leaves_exactly_one_twin(pair):
    reg = pair.create("partner", dealname="Crashy", **SHARED)
    config = load_config(pair.config)
    ledger = Ledger(config.ledger_url)
    ctx = open_context(config, "acme", ledger)
    ctx.run_id = ledger.start_run("acme", False, False)
    phase = DealPhase(ctx)
    pulled = deals.pull(phase)
    checked = deals.validate(phase, pulled)
    deals.push(phase, pulled, deals.plan(phase, pulled, checked))
    # The twin exists now; the process dies before its commit.

    report = run_pair(open_context(config, "acme", ledger))
    _twin(pair, "vendor", f"acme:partner:{reg}")  # exactly one
    assert ledger.count_links("acme") == 1 and report.created["vendor"] in (0, 1)
    pair.reset_counts()
    run_pair(open_context(config, "acme", ledger))
    assert pair.writes("vendor") == 0


def test_the_deletion_brake_stops_mass_deletion(pair):
    ids = [pair.create("partner", dealname=f"Deal {n}", **SHARED) for n in range(24)]
    pair.cli("run")
    for deal_id in ids[:22]:
        pair.archive("partner", deal_id)
    result = pair.cli("run")
    assert "deletion brake" in result.output and "--allow-mass-deletion" in result.output
    assert len(pair.deals("vendor")) == 24
    pair.cli("run", "--allow-mass-deletion")
    assert len(pair.deals("vendor")) == 2


def test_config_errors_name_the_file_the_key_and_the_fix(pair, monkeypatch):
    monkeypatch.delenv("TEST_ACME_TOKEN")
    result = pair.cli("run", ok=False)
    assert result.exit_code == 2  # the configuration is wrong (docs/operations.md, exit codes)
    assert (
        "partners[0].crm.token" in result.output and "TEST_ACME_TOKEN is not set" in result.output
    )
    original = pair.config.read_text()
    pair.config.write_text(original.replace("kind: hubspot", "kind: pipedrive", 1))
    result = pair.cli("status", ok=False)
    assert (
        result.exit_code == 2
        and "vendor.crm.kind" in result.output
        and "pipedrive" in result.output
        and "salesforce" in result.output  # among the kinds it names
    )
    pair.config.write_text(original.replace("kind: hubspot", "kind: salesforce", 1))
    result = pair.cli("status", ok=False)
    assert result.exit_code == 2 and "vendor.crm.client_id: missing" in result.output


def test_a_push_that_failed_for_now_is_retried_by_the_next_run(pair):
    reg = pair.create("partner", dealname="Refused for now", **SHARED)
    # A portal busy past every retry (a 477 asks to come back later): worth another run.
    _fail_next(pair, "vendor", "deals/batch/create", 477, count=6)
    result = pair.cli("run")
    assert "push" in result.output and reg in result.output
    waiting = pair.cli("quarantine", "list", "--json").output
    assert json.loads(waiting)["quarantine"][0]["waits_for"] == "next run"
    pair.cli("run")
    _twin(pair, "vendor", f"acme:partner:{reg}")
    assert "0 open" in pair.cli("quarantine", "list").output


def test_a_refused_record_waits_for_a_change_and_costs_no_run_meanwhile(pair):
    _no_lookback(pair)  # else the next run re-reads the record anyway, as recently changed
    reg = pair.create("partner", dealname="Refused", **SHARED)
    _fail_next(pair, "vendor", "deals/batch/create", 400, count=None)  # refused until fixed
    pair.cli("run")
    pair.cli("run")  # reads back the first run's own write to the registration
    listed = pair.cli("quarantine", "list").output
    assert reg in listed and "a change" in listed
    pair.reset_counts()
    pair.cli("run")
    assert pair.writes("vendor") == 0  # not sent again: the same values would be refused again

    pair.servers["vendor"].admin("DELETE", "faults")
    pair.cli("run")
    assert reg in pair.cli("quarantine", "list").output  # nothing told the run to try again
    pair.edit("partner", reg, dealsync_pain="Fixed at the source")
    pair.cli("run")
    assert _twin(pair, "vendor", f"acme:partner:{reg}")["dealname"] == "Refused"
    assert "0 open" in pair.cli("quarantine", "list").output


def test_a_person_retries_a_waiting_record_after_fixing_what_is_outside_it(pair):
    _no_lookback(pair)
    reg = pair.create("partner", dealname="Needs the portal fixed", **SHARED)
    _fail_next(pair, "vendor", "deals/batch/create", 400, count=None)
    pair.cli("run")
    pair.cli("run")
    pair.servers["vendor"].admin("DELETE", "faults")  # the vendor's admin fixed the portal
    pair.cli("run")
    assert reg in pair.cli("quarantine", "list").output
    assert "no partner 'nobody'" in pair.cli("quarantine", "retry", "-p", "nobody", ok=False).output
    pair.cli("quarantine", "retry")
    _twin(pair, "vendor", f"acme:partner:{reg}")
    assert "0 open" in pair.cli("quarantine", "list").output


def test_a_changed_mapping_retries_the_records_it_judged(pair, tmp_path):
    _no_lookback(pair)
    reg = pair.create("partner", dealname="Judged by the old mapping", **SHARED)
    _fail_next(pair, "vendor", "deals/batch/create", 400, count=None)
    pair.cli("run")
    pair.cli("run")
    pair.servers["vendor"].admin("DELETE", "faults")
    mapping = tmp_path / "mine.yaml"
    original = Path("mappings/shared_deal.yaml").read_text()
    mapping.write_text("# only a comment changed\n" + original)
    pair.config.write_text(
        pair.config.read_text().replace("  - id: acme\n", f"  - id: acme\n    mapping: {mapping}\n")
    )
    pair.cli("run")
    assert reg in pair.cli("quarantine", "list").output  # the same rules: not asked again
    mapping.write_text(original.replace("max_deletions: 20", "max_deletions: 25"))
    pair.cli("run")
    _twin(pair, "vendor", f"acme:partner:{reg}")
    assert "0 open" in pair.cli("quarantine", "list").output


def _fail_next(pair, side: str, path: str, status: int, count: int | None = 1) -> None:
    """The side's next `count` POSTs to `path` (None: every one) answer `status` (asked to retry
    at once)."""
    fault = {"method": "POST", "path_regex": path, "status": status, "count": count}
    pair.servers[side].admin("POST", "faults", json={**fault, "retry_after_s": 0})


def test_a_portal_without_a_mapped_property_stops_the_run_loudly(pair, tmp_path):
    mapping = tmp_path / "with_budget.yaml"
    mapping.write_text(
        Path("mappings/shared_deal.yaml")
        .read_text()
        .replace(
            "fields:\n",
            "fields:\n  - {name: budget, partner: dealsync_budget, vendor: dealsync_budget, type: number}\n",
            1,
        )
    )
    pair.config.write_text(pair.config.read_text() + f"    mapping: {mapping}\n")
    pair.create("partner", dealname="x", **SHARED)
    result = pair.cli("run", ok=False)
    assert result.exit_code == 1
    assert (
        "partner CRM's deals do not fit the mapping" in result.output
        and "dealsync_budget" in result.output
    )
    assert "dealsync init" in result.output


def test_mapping_check_reports_problems_by_line(pair, tmp_path):
    good = pair.runner.invoke(app, ["mapping", "check", "mappings/shared_deal.yaml"])
    assert good.exit_code == 0 and "OK" in good.output
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        Path("mappings/shared_deal.yaml")
        .read_text()
        .replace("conflict: newest", "conflict: loudest")
    )
    bad = pair.runner.invoke(app, ["mapping", "check", str(broken)])
    line = next(n for n, text in enumerate(broken.read_text().splitlines(), 1) if "loudest" in text)
    assert (
        bad.exit_code == 1
        and f"broken.yaml:{line}:" in bad.output
        and "'loudest' is not one of" in bad.output
    )
