"""A real BottleCRM partner and a HubSpot (sandbox) vendor, synced end to end through the same engine."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bottlecrm.server import BottleCrmServer
from connectors.base import WriteInput
from connectors.bottlecrm import BottleCrmConnector
from dealsync.cli import app
from dealsync.config import load_config
from dealsync.engine import open_context, run_pair
from dealsync.ledger import Ledger
from tests.integration.conftest import Pair
from tests.integration.test_sync import _twin


@pytest.fixture
def bottle(crm_servers, tmp_path, monkeypatch):
    """Partner `beta` on a fresh BottleCRM org, vendor on the sandbox, `dealsync init` done."""
    vendor = crm_servers["vendor"]
    vendor.admin("POST", "reset")
    for email in ("rep1@vendor.test", "rep2@vendor.test"):
        vendor.admin("POST", "owners", json={"email": email, "firstName": "Rep", "lastName": "X"})
    with BottleCrmServer() as server:
        monkeypatch.setenv("TEST_VENDOR_TOKEN", vendor.token)
        monkeypatch.setenv("TEST_BETA_TOKEN", server.token)
        config = tmp_path / "dealsync.yaml"
        config.write_text(
            f"ledger: sqlite:///{tmp_path}/ledger.db\n"
            "vendor:\n"
            f'  crm: {{kind: hubspot, base_url: "{vendor.base_url}", token: "env:TEST_VENDOR_TOKEN"}}\n'
            "  owner_assignment: {strategy: round_robin, pool: [rep1@vendor.test, rep2@vendor.test]}\n"
            "partners:\n"
            "  - id: beta\n"
            f'    crm: {{kind: bottlecrm, base_url: "{server.base_url}", token: "env:TEST_BETA_TOKEN"}}\n'
        )
        result = CliRunner().invoke(app, ["init", "--config", str(config)])
        assert result.exit_code == 0, result.output
        yield (
            Pair({"vendor": vendor}, config, CliRunner()),
            BottleCrmConnector(server.base_url, server.token),
        )


def _run(config):
    loaded = load_config(config)
    return run_pair(open_context(loaded, "beta", Ledger(loaded.ledger_url)))


def test_a_bottlecrm_partner_and_a_hubspot_vendor_stay_in_sync(bottle):
    pair, crm = bottle
    registration = crm.create(
        "deals",
        [
            WriteInput(
                "r",
                {
                    "name": "Beta Cloud",
                    "stage": "PROSPECTING",
                    "tags": "dealsync-shared;Priority;Product: Billing",
                    "closed_on": "2026-12-24",
                    "cf_dealsync_pain": "slow reports",
                },
            ),
            WriteInput("p", {"name": "Beta private", "stage": "PROSPECTING", "tags": "Priority"}),
        ],
    )
    reg_id = registration[0].record.id
    conversion = pair.create(
        "vendor",
        dealname="Vendor deal for Beta",
        amount="7000",
        dealstage="qualifiedtobuy",
        dealsync_partner="beta",
        dealsync_partner_owner_email="ann@partner.test",
    )
    report = _run(pair.config)
    assert report.created == {"partner": 1, "vendor": 1}, report.quarantined

    vendor_twin = _twin(pair, "vendor", f"beta:partner:{reg_id}")
    assert vendor_twin["dealname"] == "Beta Cloud" and vendor_twin["closedate"].startswith(
        "2026-12-24"
    )
    assert (
        pair.deal("vendor", vendor_twin["id"], "dealsync_pain")["dealsync_pain"] == "slow reports"
    )
    scanned = {r.id: r for page in crm.pull_changes("deals", None, []) for r in page.records}
    assert scanned[reg_id].properties["cf_dealsync_vendor_stage"] == "Appointment scheduled"
    assert scanned[reg_id].properties["tags"] == "Priority;Product: Billing;dealsync-shared"
    product = pair.deal("vendor", vendor_twin["id"], "dealsync_product_interest")
    assert product["dealsync_product_interest"] == "Billing"  # from the "Product: " tag
    partner_twin = next(
        r
        for r in scanned.values()
        if r.properties.get("cf_dealsync_key") == f"beta:vendor:{conversion}"
    )
    assert partner_twin.properties["assigned_to"] == "ann@partner.test"
    assert partner_twin.properties["cf_dealsync_vendor_amount"] == "7000"
    assert len(pair.deals("vendor")) == 2  # the private deal stayed in BottleCRM

    quiet = _run(pair.config)
    assert quiet.created == quiet.updated == quiet.deleted == {"partner": 0, "vendor": 0}

    pair.edit(
        "vendor",
        vendor_twin["id"],
        dealstage="closedwon",
        closedate="2027-01-31",
        dealsync_product_interest="Analytics;Billing",
    )
    assert crm.update("deals", [WriteInput("e", {"cf_dealsync_next_steps": "sign"}, id=reg_id)])[
        0
    ].ok
    changed = _run(pair.config)
    assert changed.updated == {"partner": 1, "vendor": 1}
    after = crm.read("deals", [reg_id], [])[reg_id].properties
    assert after["closed_on"] == "2027-01-31" and after["cf_dealsync_vendor_stage"] == "Closed won"
    # Product interest is a tag group: only the "Product: " tags change, the user's own tags stay.
    assert after["tags"] == "Priority;Product: Analytics;Product: Billing;dealsync-shared"
    assert (
        pair.deal("vendor", vendor_twin["id"], "dealsync_next_steps")["dealsync_next_steps"]
        == "sign"
    )

    assert crm.archive("deals", [reg_id])[0].ok  # a hard delete in BottleCRM
    deleted = _run(pair.config)
    assert deleted.deleted == {"partner": 0, "vendor": 1}
    assert pair.deal("vendor", vendor_twin["id"]) is None
    assert _run(pair.config).deleted == {"partner": 0, "vendor": 0}
