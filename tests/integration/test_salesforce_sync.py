"""A Salesforce partner (the Salesforce sandbox, over TLS and OAuth) and a HubSpot vendor (the
sandbox), synced end to end by the CLI the README documents: `dealsync init`, then `dealsync run`."""

from __future__ import annotations

import base64
import datetime
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.base import WriteInput
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_http import SalesforceHttp
from dealsync.config import load_config
from dealsync.context import open_context
from dealsync.ledger import Ledger
from dealsync.run import run_pair
from sandbox.salesforce.server import SalesforceProcess
from tests.contract.conftest import salesforce_login, salesforce_user
from tests.integration.conftest import Pair
from tests.integration.test_notes import _download, _note, _notes_on, _owner, _upload
from tests.integration.test_sync import _twin
from tests.integration.test_trust import _links, _quarantined, _refused

FIELDS = [
    "Name",
    "StageName",
    "CloseDate",
    "OwnerId",
    "dealsync_key__c",
    "dealsync_shared__c",
    "dealsync_product_interest__c",
    "dealsync_pain__c",
    "dealsync_vendor_stage__c",
    "dealsync_vendor_amount__c",
]


@pytest.fixture
def gamma(crm_servers, salesforce: SalesforceProcess, tmp_path, monkeypatch, ledger_url):
    """Partner `gamma` on a fresh Salesforce org (refresh-token login, the sandbox's certificate
    trusted by `ca_bundle`), vendor on the HubSpot sandbox, `dealsync init` done."""
    vendor = crm_servers["vendor"]
    vendor.admin("POST", "reset")
    for email in ("rep1@vendor.test", "rep2@vendor.test"):
        vendor.admin("POST", "owners", json={"email": email, "firstName": "Rep", "lastName": "X"})
    user = salesforce_user(salesforce)
    user(
        "POST",
        "/sobjects/User/",
        json={
            "Username": "ann@gamma.test",
            "Email": "ann@gamma.test",
            "LastName": "Ann",
            "IsActive": True,
        },
    )
    monkeypatch.setenv("TEST_VENDOR_TOKEN", vendor.token)
    monkeypatch.setenv("GAMMA_SF_CLIENT_ID", salesforce.app.client_id)
    monkeypatch.setenv("GAMMA_SF_CLIENT_SECRET", salesforce.app.client_secret)
    monkeypatch.setenv("GAMMA_SF_REFRESH_TOKEN", salesforce.app.refresh_token)
    config = tmp_path / "dealsync.yaml"
    config.write_text(
        f"ledger: {ledger_url}\n"
        "vendor:\n"
        f'  crm: {{kind: hubspot, base_url: "{vendor.base_url}", token: "env:TEST_VENDOR_TOKEN"}}\n'
        "  owner_assignment: {strategy: round_robin, pool: [rep1@vendor.test, rep2@vendor.test]}\n"
        "partners:\n"
        "  - id: gamma\n"
        "    crm:\n"
        "      kind: salesforce\n"
        f'      base_url: "{salesforce.instance_url}"\n'
        "      client_id: env:GAMMA_SF_CLIENT_ID\n"
        "      client_secret: env:GAMMA_SF_CLIENT_SECRET\n"
        "      token: env:GAMMA_SF_REFRESH_TOKEN\n"
        f"      ca_bundle: {salesforce.cert}\n"
    )
    # An org that has kept its delete log for a day (a fresh org's starts now: see the test of a
    # log that does not reach back).
    _delete_log_from(salesforce, datetime.timedelta(days=1))
    pair = Pair({"vendor": vendor}, config, CliRunner())
    init = pair.cli("init")
    assert "dealsync_key__c" in init.output
    http = SalesforceHttp(
        salesforce_login(salesforce), "a Salesforce user", verify=str(salesforce.cert)
    )
    return pair, SalesforceConnector(http, lookback_ms=0), user


def _delete_log_from(org: SalesforceProcess, ago: datetime.timedelta) -> None:
    """Where the org's delete log starts: `ago` before now."""
    moment = datetime.datetime.now(datetime.UTC) - ago
    org.admin("POST", "delete-log", json={"earliest": moment.isoformat()})


def _run(pair: Pair, *args: str, ok: bool = True):
    return pair.cli("run", "--partner", "gamma", *args, ok=ok)


def _opportunity(crm: SalesforceConnector, deal_id: str) -> dict[str, str | None]:
    found = crm.read("deals", [deal_id], FIELDS)
    return dict(found[deal_id].properties) if deal_id in found else {}


def _by_key(crm: SalesforceConnector, key: str) -> tuple[str, dict[str, str | None]]:
    found = crm.read("deals", [key], FIELDS, id_property="dealsync_key__c")
    assert key in found, f"no opportunity carries {key}"
    return found[key].id, dict(found[key].properties)


def test_a_salesforce_partner_and_a_hubspot_vendor_stay_in_sync(gamma):
    pair, crm, user = gamma
    made = crm.create(
        "deals",
        [
            WriteInput(
                "shared",
                {
                    "Name": "Gamma Cloud",
                    "StageName": "Qualification",
                    "CloseDate": "2027-02-15",
                    "dealsync_shared__c": "true",
                    "dealsync_product_interest__c": "Billing;Analytics",
                    "dealsync_pain__c": "month-end takes a week",
                },
            ),
            WriteInput(
                "private",
                {"Name": "Gamma private", "StageName": "Prospecting", "CloseDate": "2027-03-01"},
            ),
        ],
    )
    assert all(o.ok for o in made), made
    registration, private = (o.record.id for o in made)
    conversion = pair.create(
        "vendor",
        dealname="Vendor deal for Gamma",
        amount="7000",
        closedate="2027-04-30",
        dealstage="qualifiedtobuy",
        dealsync_partner="gamma",
        dealsync_partner_owner_email="ann@gamma.test",
    )
    first = _run(pair)
    assert "quarantined: 0" in first.output, first.output

    vendor_twin = _twin(pair, "vendor", f"gamma:partner:{registration}")
    assert vendor_twin["dealname"] == "Gamma Cloud"
    assert vendor_twin["closedate"].startswith("2027-02-15")
    vendor_props = pair.deal(
        "vendor", vendor_twin["id"], "dealsync_pain", "dealsync_product_interest"
    )
    assert vendor_props["dealsync_pain"] == "month-end takes a week"
    assert set(vendor_props["dealsync_product_interest"].split(";")) == {"Billing", "Analytics"}
    assert _opportunity(crm, registration)["dealsync_vendor_stage__c"] == "Appointment scheduled"
    assert len(pair.deals("vendor")) == 2  # the private opportunity stayed in Salesforce

    twin_id, twin = _by_key(crm, f"gamma:vendor:{conversion}")
    ann = next(o.id for o in crm.owners() if o.email == "ann@gamma.test")
    assert twin["Name"] == "Vendor deal for Gamma" and twin["StageName"] == "Prospecting"
    assert twin["CloseDate"] == "2027-04-30" and twin["OwnerId"] == ann
    assert twin["dealsync_vendor_amount__c"] == "7000" and twin["dealsync_shared__c"] == "true"

    quiet = _run(pair, "--json")
    assert '"partner": 0' in quiet.output

    # Edits on both sides travel; the vendor wins the close date, the stage stays on its side.
    pair.edit("vendor", vendor_twin["id"], dealstage="closedwon", closedate="2027-01-31")
    user(
        "PATCH",
        f"/sobjects/Opportunity/{registration}",
        json={"dealsync_pain__c": "month-end takes two days", "StageName": "Negotiation/Review"},
    )
    _run(pair)
    after = _opportunity(crm, registration)
    assert after["CloseDate"] == "2027-01-31" and after["dealsync_vendor_stage__c"] == "Closed won"
    assert after["StageName"] == "Negotiation/Review"
    vendor_after = pair.deal("vendor", vendor_twin["id"], "dealsync_pain", "dealstage")
    assert vendor_after["dealsync_pain"] == "month-end takes two days"
    assert vendor_after["dealstage"] == "closedwon"

    # Deletions both ways: a partner user deletes the registration, the vendor deletes the conversion.
    user("DELETE", f"/sobjects/Opportunity/{registration}")
    pair.archive("vendor", conversion)
    _run(pair)
    assert pair.deal("vendor", vendor_twin["id"]) is None
    assert _opportunity(crm, twin_id) == {}
    assert _opportunity(crm, private)["Name"] == "Gamma private"  # untouched
    assert len(pair.deals("vendor")) == 0


def _salesforce_calls(org: SalesforceProcess) -> int:
    return int(org.admin("GET", "allowance").json()["used"])


def _shared(crm: SalesforceConnector, count: int, start: int = 0) -> list[str]:
    outcomes = crm.create(
        "deals",
        [
            WriteInput(
                f"s{i}",
                {
                    "Name": f"Shared {i}",
                    "StageName": "Prospecting",
                    "CloseDate": "2027-05-01",
                    "dealsync_shared__c": "true",
                },
            )
            for i in range(start, start + count)
        ],
    )
    assert all(o.ok for o in outcomes)
    return [o.record.id for o in outcomes]


def _quiet_calls(pair: Pair, org: SalesforceProcess) -> int:
    """What a run costs the Salesforce org when nothing changed."""
    before = _salesforce_calls(org)
    (run,) = json.loads(_run(pair, "--json").output)["runs"]
    assert run["writes"] == 0 and run["quarantined"] == []
    return _salesforce_calls(org) - before


def test_a_quiet_run_costs_the_org_the_same_calls_whatever_the_number_of_shared_deals(
    gamma, salesforce
):
    pair, crm, _user = gamma
    _shared(crm, 5)
    _run(pair)
    _run(pair)  # reads the first sync's own writes back
    few = _quiet_calls(pair, salesforce)
    _shared(crm, 600, start=5)
    _run(pair)
    _run(pair)
    many = _quiet_calls(pair, salesforce)
    assert len(pair.deals("vendor")) == 605
    # Deals: a page of changes and the delete log; notes: a page of changes and the documents'
    # delete log; files: the documents changed (that log read once for both).
    assert few == many == 5


def test_keys_a_salesforce_user_forged_take_nothing_over_and_delete_nothing(gamma):
    pair, crm, user = gamma
    first = _shared(crm, 1)[0]
    _run(pair)
    twin = _twin(pair, "vendor", f"gamma:partner:{first}")["id"]
    before = _links(pair)

    forged = user(
        "POST",
        "/sobjects/Opportunity/",
        json={
            "Name": "Forged",
            "StageName": "Prospecting",
            "CloseDate": "2027-09-09",
            "dealsync_shared__c": True,
            "dealsync_key__c": f"gamma:vendor:{twin}",
        },
    ).json()["id"]
    elsewhere = user(
        "POST",
        "/sobjects/Opportunity/",
        json={
            "Name": "Someone else's",
            "StageName": "Prospecting",
            "CloseDate": "2027-09-09",
            "dealsync_key__c": "acme:vendor:1",
        },
    ).json()["id"]
    for _ in range(2):
        _run(pair)
        assert _links(pair) == before
        assert pair.deal("vendor", twin, "closedate")["closedate"].startswith("2027-05-01")
    assert _refused(_quarantined(pair, "gamma")[forged])
    assert elsewhere not in _quarantined(pair, "gamma")  # not shared, not this pair's: unseen
    user("DELETE", f"/sobjects/Opportunity/{forged}")
    _run(pair)
    assert pair.deal("vendor", twin) is not None and _links(pair) == before


def _report(pair: Pair, full_resync: bool = False):
    loaded = load_config(pair.config)
    return run_pair(
        open_context(loaded, "gamma", Ledger(loaded.ledger_url), full_resync=full_resync)
    )


def _sf_note(user, deal_id: str, title: str, html: str, private: bool = False) -> str:
    """A Salesforce user writes a note on an opportunity."""
    note = user(
        "POST",
        "/sobjects/ContentNote/",
        json={
            "Title": title,
            "Content": base64.b64encode(html.encode()).decode(),
            "SharingPrivacy": "P" if private else "N",
        },
    ).json()["id"]
    user(
        "POST",
        "/sobjects/ContentDocumentLink/",
        json={"ContentDocumentId": note, "LinkedEntityId": deal_id, "ShareType": "I"},
    )
    return note


def _sf_file(user, deal_id: str, title: str, name: str, data: bytes, private: bool = False) -> str:
    """A Salesforce user adds a file to an opportunity: its document's id."""
    version = user(
        "POST",
        "/sobjects/ContentVersion/",
        json={
            "Title": title,
            "PathOnClient": name,
            "VersionData": base64.b64encode(data).decode(),
            "FirstPublishLocationId": deal_id,
            "SharingPrivacy": "P" if private else "N",
        },
    ).json()["id"]
    return user("GET", f"/sobjects/ContentVersion/{version}").json()["ContentDocumentId"]


def _sf_notes(crm: SalesforceConnector, deal_id: str) -> dict[str, dict[str, str | None]]:
    """The notes on an opportunity, by title (bodies of shared ones)."""
    ids = crm.associations("deals", "notes", [deal_id])[deal_id]
    found = crm.read("notes", list(ids), [])
    return {str(r.properties["Title"]): dict(r.properties) for r in found.values()}


def test_notes_and_files_marked_shared_cross_both_ways_and_the_rest_stay(gamma):
    pair, crm, user = gamma
    deal = _shared(crm, 1)[0]
    assert _report(pair).created["vendor"] == 1
    vendor_deal = _twin(pair, "vendor", f"gamma:partner:{deal}")["id"]

    shared_note = _sf_note(user, deal, "[shared] Kick-off", "<p>Kick-off on <b>Monday</b></p>")
    _sf_note(user, deal, "Margin", "<p>Our margin is 30%</p>")
    _sf_note(user, deal, "[shared] but private", "<p>Budget is 40k</p>", private=True)
    _sf_file(user, deal, "[shared] brief", "brief.pdf", b"%PDF brief " * 500)
    _sf_file(user, deal, "internal costs", "costs.xlsx", b"cost sheet")
    _sf_file(user, deal, "[shared] salaries", "salaries.csv", b"names,pay", private=True)
    pricing = _upload(pair, "vendor", "pricing.txt", b"price list v1")
    rep = _owner(pair, "vendor", "rep1@vendor.test")
    _note(
        pair,
        "vendor",
        vendor_deal,
        "<p>Pricing attached</p>",
        rep,
        dealsync_shared="true",
        hs_attachment_ids=pricing,
    )
    _note(pair, "vendor", vendor_deal, "<p>Vendor-only strategy</p>")

    report = _report(pair)
    assert report.notes["vendor notes created"] == 1, report.notes
    assert report.notes["partner notes created"] == 1 and report.notes["files copied"] == 2

    vendor_notes = _notes_on(pair, "vendor", vendor_deal)
    bodies = " ".join(n["hs_note_body"] or "" for n in vendor_notes)
    assert "Kick-off on <b>Monday</b>" in bodies and "brief.pdf" in bodies
    assert "margin" not in bodies and "40k" not in bodies and "costs" not in bodies
    assert "salaries" not in bodies
    file_note = next(n for n in vendor_notes if "brief.pdf" in (n["hs_note_body"] or ""))
    assert _download(pair, "vendor", file_note["hs_attachment_ids"]) == b"%PDF brief " * 500

    notes = _sf_notes(crm, deal)
    from_vendor = next(p for t, p in notes.items() if "Pricing" in t)
    assert from_vendor["dealsync_shared"] == "true"  # titled "[shared] ...": it stays shared
    assert "Rep X (rep1@vendor.test) wrote:" in (from_vendor["Content"] or "")
    assert not any("strategy" in t for t in notes)
    files = {f.name: f for f in crm.deal_attachments([deal])[deal]}
    assert set(files) == {"brief.pdf", "pricing.txt"}
    assert b"".join(crm.download_file(files["pricing.txt"].id)) == b"price list v1"

    quiet = _report(pair)
    assert not any(
        quiet.notes.get(k)
        for k in (
            "partner notes created",
            "files copied",
            "vendor notes updated",
            "partner notes updated",
        )
    )

    # An edit crosses; a note deleted at the vendor and a file deleted in Salesforce go both ways.
    crm.update(
        "notes", [WriteInput("e", {"Content": "<p>Kick-off moved to Tuesday</p>"}, id=shared_note)]
    )
    pricing_note = next(n for n in vendor_notes if "Pricing" in (n["hs_note_body"] or ""))
    crm.delete_file(files["brief.pdf"].id)
    edited = _report(pair)
    assert edited.notes["vendor notes updated"] == 1, edited.notes
    assert edited.notes["files deleted"] == 1
    bodies = " ".join(n["hs_note_body"] or "" for n in _notes_on(pair, "vendor", vendor_deal))
    assert "Tuesday" in bodies and "brief.pdf" not in bodies
    pair.api("vendor", "DELETE", f"/crm/v3/objects/notes/{pricing_note['id']}")
    gone = _report(pair)
    assert gone.notes["partner notes deleted"] == 1, gone.notes
    assert not any("Pricing" in t for t in _sf_notes(crm, deal))
    # The vendor's note carried pricing.txt: archiving it deleted the file on the opportunity too.
    assert gone.notes["files deleted"] == 1
    assert not crm.deal_attachments([deal])[deal]

    # A shared note made private on the record leaves the vendor; nothing written after crosses.
    user("PATCH", f"/sobjects/ContentNote/{shared_note}", json={"SharingPrivacy": "P"})
    private = _report(pair)
    assert private.notes["vendor notes deleted"] == 1
    assert "Tuesday" not in " ".join(
        n["hs_note_body"] or "" for n in _notes_on(pair, "vendor", vendor_deal)
    )


def test_deletions_are_found_when_the_delete_log_does_not_reach_back(gamma, salesforce, caplog):
    pair, crm, user = gamma
    deals = _shared(crm, 3)
    _sf_file(user, deals[0], "[shared] plan", "plan.txt", b"the plan")
    first = _report(pair)
    assert first.created["vendor"] == 3 and first.notes["files copied"] == 1
    vendor_deal = _twin(pair, "vendor", f"gamma:partner:{deals[0]}")["id"]
    user("DELETE", f"/sobjects/Opportunity/{deals[1]}")
    crm.delete_file(crm.deal_attachments([deals[0]])[deals[0]][0].id)
    _delete_log_from(salesforce, datetime.timedelta(0))  # the recycle bin was emptied just now
    found = _report(pair)
    assert found.deleted["vendor"] == 1 and found.notes["files deleted"] == 1
    # The run says so in its report (and its log): which log, and what it did instead.
    assert any(
        "delete log starts at" in m and "every linked Opportunity was checked instead" in m
        for m in found.messages
    ), found.messages
    assert "every linked Opportunity was checked instead" in caplog.text
    assert not any(
        "plan.txt" in (n["hs_note_body"] or "") for n in _notes_on(pair, "vendor", vendor_deal)
    )
    assert len(pair.deals("vendor")) == 2


def _next_second() -> None:
    """Until Salesforce's clock (to the second) can stamp a later time than anything written yet."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.01)


def test_a_deal_shared_later_brings_the_files_it_already_had(gamma):
    pair, crm, user = gamma
    text = pair.config.read_text().replace(
        "kind: salesforce\n", "kind: salesforce\n      lookback_seconds: 0\n"
    )
    pair.config.write_text(text)
    (deal,) = crm.create(
        "deals",
        [WriteInput("d", {"Name": "Later", "StageName": "Prospecting", "CloseDate": "2027-06-01"})],
    )
    deal_id = deal.record.id
    _sf_file(user, deal_id, "[shared] old brief", "old-brief.txt", b"written long ago")
    _next_second()
    assert _report(pair).created["vendor"] == 0  # not shared yet
    _next_second()
    crm.update("deals", [WriteInput("s", {"dealsync_shared__c": "true"}, id=deal_id)])
    shared = _report(pair)
    assert shared.created["vendor"] == 1 and shared.notes["files copied"] == 1, shared.notes
    vendor_deal = _twin(pair, "vendor", f"gamma:partner:{deal_id}")["id"]
    assert any(
        "old brief.txt" in (n["hs_note_body"] or "") for n in _notes_on(pair, "vendor", vendor_deal)
    )


def test_check_passes_after_init_and_names_a_missing_field(gamma):
    pair, _crm, _user = gamma
    ok = pair.cli("check")
    assert "gamma" in ok.output
    broken = pair.config.read_text() + ""
    mapping = pair.config.parent / "salesforce_deal.yaml"
    source = (Path(__file__).parents[2] / "mappings" / "salesforce_shared_deal.yaml").read_text()
    mapping.write_text(source.replace("partner: dealsync_pain__c", "partner: dealsync_pains__c"))
    pair.config.write_text(
        broken.replace("  - id: gamma\n", f"  - id: gamma\n    mapping: {mapping}\n")
    )
    failed = pair.cli("check", ok=False)
    assert failed.exit_code != 0
    assert "Opportunity.dealsync_pains__c" in failed.output and "mapping" in failed.output


def test_a_conversion_brings_its_welcome_note_and_vendor_replies_become_notes(gamma):
    pair, crm, _user = gamma
    conversion = pair.create(
        "vendor",
        dealname="Welcome deal",
        closedate="2027-04-30",
        dealsync_partner="gamma",
        dealsync_partner_owner_email="ann@gamma.test",
        dealsync_welcome_note="Welcome aboard, Ann: the kick-off is on Monday.",
    )
    _report(pair)
    twin_id, _ = _by_key(crm, f"gamma:vendor:{conversion}")
    notes = _sf_notes(crm, twin_id)
    (welcome,) = notes.values()
    assert welcome["dealsync_shared"] == "true" and "kick-off is on Monday" in (
        welcome["Content"] or ""
    )
    assert not _notes_on(pair, "vendor", conversion)  # the welcome note never crosses back
    (note,) = crm.associations("deals", "notes", [twin_id])[twin_id]
    shared = _note(pair, "vendor", conversion, "<p>Agenda attached</p>", dealsync_shared="true")
    _note(pair, "vendor", conversion, "<p>Thanks!</p>", dealsync_reply_to=shared)
    replies = _report(pair)
    assert replies.notes["partner notes created"] == 2, replies.notes
    texts = [n["Content"] or "" for n in _sf_notes(crm, twin_id).values()]
    assert any("Agenda attached" in t for t in texts) and any("Thanks!" in t for t in texts)
    assert note in crm.associations("deals", "notes", [twin_id])[twin_id]


@pytest.fixture
def salesforce_vendor(
    crm_servers, salesforce: SalesforceProcess, tmp_path, monkeypatch, ledger_url
):
    """The vendor on a Salesforce org (two reps), partner acme on the HubSpot sandbox, deals only."""
    partner = crm_servers["partner"]
    partner.admin("POST", "reset")
    partner.admin("POST", "owners", json={"email": "ann@acme.test", "firstName": "Ann"})
    user = salesforce_user(salesforce)
    for email in ("rep1@vendor.test", "rep2@vendor.test"):
        user(
            "POST",
            "/sobjects/User/",
            json={"Username": email, "Email": email, "LastName": "Rep", "IsActive": True},
        )
    _delete_log_from(salesforce, datetime.timedelta(days=1))
    monkeypatch.setenv("TEST_ACME_TOKEN", partner.token)
    monkeypatch.setenv("VENDOR_SF_CLIENT_ID", salesforce.app.client_id)
    monkeypatch.setenv("VENDOR_SF_REFRESH_TOKEN", salesforce.app.refresh_token)
    config = tmp_path / "dealsync.yaml"
    config.write_text(
        f"ledger: {ledger_url}\n"
        "tracking: {property: null}\n"
        "vendor:\n"
        "  crm:\n"
        "    kind: salesforce\n"
        f'    base_url: "{salesforce.instance_url}"\n'
        "    client_id: env:VENDOR_SF_CLIENT_ID\n"
        "    token: env:VENDOR_SF_REFRESH_TOKEN\n"
        f"    ca_bundle: {salesforce.cert}\n"
        "  owner_assignment: {strategy: round_robin, pool: [rep1@vendor.test, rep2@vendor.test]}\n"
        "partners:\n"
        "  - id: acme\n"
        f'    crm: {{kind: hubspot, base_url: "{partner.base_url}", token: "env:TEST_ACME_TOKEN"}}\n'
        "    mapping: mappings/salesforce_vendor_deal.yaml\n"
        "    notes_mapping: none\n"
    )
    pair = Pair({"partner": partner}, config, CliRunner())
    pair.cli("init")
    http = SalesforceHttp(
        salesforce_login(salesforce), "the vendor's user", verify=str(salesforce.cert)
    )
    return pair, SalesforceConnector(http, lookback_ms=0), user


def test_a_salesforce_vendor_with_a_hubspot_partner_syncs_deals(salesforce_vendor):
    pair, vendor, user = salesforce_vendor
    registration = pair.create(
        "partner",
        dealname="Acme on Salesforce",
        closedate="2027-02-01",
        dealsync_shared="true",
        dealsync_pain="slow quotes",
    )
    conversion = user(
        "POST",
        "/sobjects/Opportunity/",
        json={
            "Name": "Vendor deal for Acme",
            "StageName": "Qualification",
            "CloseDate": "2027-03-15",
            "Amount": 9000,
            "dealsync_partner__c": "acme",
            "dealsync_partner_owner_email__c": "ann@acme.test",
        },
    ).json()["id"]
    first = pair.cli("run")
    assert "quarantined: 0" in first.output, first.output

    key = f"acme:partner:{registration}"
    found = vendor.read(
        "deals", [key], ["Name", "CloseDate", "OwnerId"], id_property="dealsync_key__c"
    )
    twin_id, twin = found[key].id, found[key].properties
    reps = {o.id: o.email for o in vendor.owners()}
    assert twin["Name"] == "Acme on Salesforce" and twin["CloseDate"] == "2027-02-01"
    assert reps[twin["OwnerId"] or ""] in ("rep1@vendor.test", "rep2@vendor.test")
    assert vendor.read("deals", [twin_id], ["dealsync_pain__c"])[twin_id].properties == {
        "dealsync_pain__c": "slow quotes"
    }
    partner_twin = next(
        d
        for d in pair.deals("partner", "dealsync_key", "dealsync_vendor_amount", "hubspot_owner_id")
        if d.get("dealsync_key") == f"acme:vendor:{conversion}"
    )
    assert partner_twin["dealsync_vendor_amount"] == "9000"
    assert pair.deal("partner", registration, "dealsync_vendor_stage")["dealsync_vendor_stage"] == (
        "Prospecting"
    )

    user("PATCH", f"/sobjects/Opportunity/{twin_id}", json={"StageName": "Closed Won"})
    user("DELETE", f"/sobjects/Opportunity/{conversion}")
    pair.cli("run")
    stage = pair.deal("partner", registration, "dealsync_vendor_stage")["dealsync_vendor_stage"]
    assert stage == "Closed Won"
    assert pair.deal("partner", partner_twin["id"]) is None


def test_a_conversion_without_a_close_date_waits_in_quarantine_saying_so(gamma):
    pair, crm, _user = gamma
    conversion = pair.create(
        "vendor",
        dealname="No date yet",
        dealsync_partner="gamma",
        dealsync_partner_owner_email="ann@gamma.test",
    )
    report = _report(pair)
    assert report.created["partner"] == 0
    (waiting,) = [q for q in report.quarantined if q["record_id"] == conversion]
    assert any("CloseDate" in reason for reason in waiting["reasons"]), waiting["reasons"]
    pair.edit("vendor", conversion, closedate="2027-08-01")
    assert _report(pair).created["partner"] == 1
    _, twin = _by_key(crm, f"gamma:vendor:{conversion}")
    assert twin["CloseDate"] == "2027-08-01"


def test_mass_deletions_in_salesforce_wait_for_the_brake_however_long(gamma, salesforce):
    pair, crm, user = gamma
    deals = _shared(crm, 25)
    assert _report(pair).created["vendor"] == 25
    for deal in deals[:22]:
        user("DELETE", f"/sobjects/Opportunity/{deal}")
    held = _run(pair)
    assert "deletion brake" in held.output and "--allow-mass-deletion" in held.output
    assert len(pair.deals("vendor")) == 25
    # An hour later the delete log's window no longer names them: the held deletions stand.
    salesforce.admin("POST", "delete-log", json={"age_s": 3600})
    still = _run(pair)
    assert "deletion brake" in still.output, still.output
    assert "22" in pair.cli("deletions", "list").output
    _run(pair, "--allow-mass-deletion")
    assert len(pair.deals("vendor")) == 3


def test_a_run_stops_at_its_share_of_the_orgs_allowance_and_the_next_one_goes_on(gamma, salesforce):
    pair, crm, _user = gamma
    deals = _shared(crm, 3)
    used = int(salesforce.admin("GET", "allowance").json()["used"])
    # The org's other integrations used nearly a fifth of its allowance: dealsync's share (20 %).
    salesforce.admin("POST", "allowance", json={"limit": 100, "used": max(used, 19)})
    stopped = _run(pair, ok=False)
    assert stopped.exit_code == 1
    assert "daily API requests" in stopped.output and "api_share" in stopped.output
    assert "Traceback" not in stopped.output
    salesforce.admin("POST", "allowance", json={"limit": 15000, "used": 0})  # a day later
    _run(pair)
    # The stopped run may have made vendor twins before its next Salesforce call: they were
    # recorded as intents first, so the next run adopts them (one twin each, never two).
    assert len(pair.deals("vendor")) == 3
    assert {_twin(pair, "vendor", f"gamma:partner:{d}")["dealname"] for d in deals} == {
        "Shared 0",
        "Shared 1",
        "Shared 2",
    }
