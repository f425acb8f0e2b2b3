"""A real BottleCRM partner and a HubSpot (sandbox) vendor, synced end to end through the same engine."""

from __future__ import annotations

import json

import pytest

from connectors.base import WriteInput
from connectors.bottlecrm import BottleCrmConnector
from dealsync.config import load_config
from dealsync.context import open_context
from dealsync.ledger import Ledger
from dealsync.phases import notes
from dealsync.run import run_pair
from tests.integration.test_notes import _download, _note, _notes_on, _owner, _upload
from tests.integration.test_sync import _twin


def _run(config, full_resync: bool = False):
    loaded = load_config(config)
    ledger = Ledger(loaded.ledger_url)
    return run_pair(open_context(loaded, "beta", ledger, full_resync=full_resync))


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
        dealsync_welcome_note="Welcome aboard, Ann: the kick-off is on Monday.",
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

    # The welcome note is the partner deal's first comment, shared, and it never crosses back.
    welcome = crm.comments(partner_twin.id)
    assert [(c["comment"], c["is_internal"]) for c in welcome] == [
        ("Welcome aboard, Ann: the kick-off is on Monday.", False)
    ]

    quiet = _run(pair.config, full_resync=True)  # everything re-read, nothing to write
    assert quiet.created == quiet.updated == quiet.deleted == {"partner": 0, "vendor": 0}
    assert (
        not quiet.notes.get("vendor notes created") and _notes_on(pair, "vendor", conversion) == []
    )

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


def _comments(crm: BottleCrmConnector, deal_id: str) -> dict[str, dict]:
    return {c["comment"]: c for c in crm.comments(deal_id)}


def _bytes(crm: BottleCrmConnector, attachment_id: str) -> bytes:
    return b"".join(crm.download_file(attachment_id))


def _registered(pair, crm) -> tuple[str, str]:
    """A shared BottleCRM deal and its vendor twin, synced."""
    made = crm.create(
        "deals",
        [
            WriteInput(
                "r", {"name": "Beta notes", "stage": "PROSPECTING", "tags": "dealsync-shared"}
            )
        ],
    )
    deal_id = made[0].record.id
    assert _run(pair.config).created["vendor"] == 1
    return deal_id, _twin(pair, "vendor", f"beta:partner:{deal_id}")["id"]


@pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)
def test_comments_and_attachments_cross_and_internal_comments_stay(bottle):
    pair, crm = bottle
    deal_id, vendor_deal = _registered(pair, crm)
    crm.add_comment(deal_id, "Customer wants a demo\nnext week & <soon>")
    crm.add_comment(deal_id, "Our margin here is 30%", internal=True)
    crm.attach(deal_id, "brief.pdf", b"%PDF brief " * 500)
    pricing = _upload(pair, "vendor", "pricing.txt", b"price list v1")
    _note(
        pair,
        "vendor",
        vendor_deal,
        "<p>Pricing <b>attached</b></p>",
        _owner(pair, "vendor", "rep1@vendor.test"),
        dealsync_shared="true",
        hs_attachment_ids=pricing,
    )
    _note(pair, "vendor", vendor_deal, "<p>Vendor-only strategy</p>")

    preview = pair.cli("run", "--dry-run").output
    assert "files to copy: 2" in preview and "vendor notes created: 1" in preview, preview
    assert len(crm.comments(deal_id)) == 2  # a dry run writes nothing
    assert len(crm.attachments(deal_id)) == 1

    report = _run(pair.config)
    assert report.notes["vendor notes created"] == 1, report.notes
    assert report.notes["partner notes created"] == 1
    assert report.notes["files copied"] == 2

    vendor_notes = {n["id"]: n for n in _notes_on(pair, "vendor", vendor_deal)}
    from_comment = next(n for n in vendor_notes.values() if "demo" in (n["hs_note_body"] or ""))
    assert from_comment["dealsync_shared"] == "true"
    # The author has no vendor account: named in an author line; the text is escaped HTML.
    assert from_comment["hs_note_body"].startswith('<p class="dealsync-author">')
    assert "Customer wants a demo<br>next week &amp; &lt;soon&gt;" in from_comment["hs_note_body"]
    assert not any("margin" in (n["hs_note_body"] or "") for n in vendor_notes.values())
    file_note = next(n for n in vendor_notes.values() if "brief.pdf" in (n["hs_note_body"] or ""))
    assert _download(pair, "vendor", file_note["hs_attachment_ids"]) == b"%PDF brief " * 500

    comments = _comments(crm, deal_id)
    # HTML became plain text; the vendor rep cannot be a BottleCRM comment's author: named in a line.
    assert "Rep X (rep1@vendor.test) wrote:\n\nPricing attached" in comments
    assert not any("strategy" in text for text in comments)
    attachments = {a.name: a for a in crm.attachments(deal_id)}
    assert set(attachments) == {"brief.pdf", "pricing.txt"}
    assert _bytes(crm, attachments["pricing.txt"].id) == b"price list v1"

    quiet = _run(pair.config)
    assert not quiet.notes.get("partner notes created") and not quiet.notes.get("files copied")
    assert not quiet.notes.get("vendor notes updated") and not quiet.notes.get(
        "partner notes updated"
    )
    assert len(_notes_on(pair, "vendor", vendor_deal)) == 4
    assert len(crm.comments(deal_id)) == 3 and len(crm.attachments(deal_id)) == 2

    # Edits both ways.
    crm.edit_comment(comments["Customer wants a demo\nnext week & <soon>"]["id"], "Demo on Tuesday")
    pricing_note = next(n for n in vendor_notes.values() if "Pricing" in (n["hs_note_body"] or ""))
    pair.api(
        "vendor",
        "PATCH",
        f"/crm/v3/objects/notes/{pricing_note['id']}",
        json={"properties": {"hs_note_body": "<p>Pricing attached, valid until March</p>"}},
    )
    edited = _run(pair.config)
    assert edited.notes["vendor notes updated"] == 1 and edited.notes["partner notes updated"] == 1
    body = pair.api("vendor", "GET", f"/crm/v3/objects/notes/{from_comment['id']}").json()
    assert body["properties"]["hs_note_body"].endswith("<p>Demo on Tuesday</p>")
    assert body["properties"]["hs_note_body"].startswith('<p class="dealsync-author">')
    assert "Rep X (rep1@vendor.test) wrote:\n\nPricing attached, valid until March" in _comments(
        crm, deal_id
    )

    # A synced comment made internal leaves the vendor, and what is written after never crosses.
    visit = crm.add_comment(deal_id, "Visit planned")
    assert _run(pair.config).notes["vendor notes created"] == 1
    crm.associations("deals", "notes", [deal_id])
    assert crm.update("notes", [WriteInput("i", {"is_internal": "true"}, id=visit)])[0].ok
    crm.edit_comment(visit, "Visit planned; our cost is 12k")
    private = _run(pair.config)
    assert private.notes["vendor notes deleted"] == 1 and not private.notes.get(
        "vendor notes updated"
    )
    assert not any(
        "Visit" in (n["hs_note_body"] or "") for n in _notes_on(pair, "vendor", vendor_deal)
    )
    assert not _run(pair.config, full_resync=True).notes.get("vendor notes created")

    # Deletions both ways: an attachment deleted in BottleCRM, a file removed from a vendor note,
    # a comment deleted in BottleCRM.
    crm.delete_file(attachments["brief.pdf"].id)
    pair.api(
        "vendor",
        "PATCH",
        f"/crm/v3/objects/notes/{pricing_note['id']}",
        json={"properties": {"hs_attachment_ids": ""}},
    )
    crm.delete_comment(_comments(crm, deal_id)["Demo on Tuesday"]["id"])
    deleted = _run(pair.config)
    assert deleted.notes["files deleted"] == 2, deleted.notes
    assert deleted.notes["vendor notes deleted"] == 1
    assert crm.attachments(deal_id) == []
    left = {n["id"] for n in _notes_on(pair, "vendor", vendor_deal)}
    assert file_note["id"] not in left and from_comment["id"] not in left
    assert _download(pair, "vendor", file_note["hs_attachment_ids"]) is None
    settled = _run(pair.config)
    assert not settled.notes.get("files deleted") and not settled.notes.get("vendor notes deleted")


def test_a_run_killed_after_creating_comments_does_not_duplicate_them(bottle):
    pair, crm = bottle
    deal_id, vendor_deal = _registered(pair, crm)
    _note(pair, "vendor", vendor_deal, "<p>Kick-off call booked</p>", dealsync_shared="true")
    loaded = load_config(pair.config)

    def killed_before_the_commit(step, *args):
        if step is notes.commit:
            raise KeyboardInterrupt("killed")
        return step(*args)

    with pytest.raises(KeyboardInterrupt):
        run_pair(open_context(loaded, "beta", Ledger(loaded.ledger_url)), killed_before_the_commit)
    assert list(_comments(crm, deal_id)) == ["Kick-off call booked"]  # sent, never recorded

    again = _run(pair.config)
    assert not again.notes.get("partner notes created")  # found through the intent, not re-sent
    assert list(_comments(crm, deal_id)) == ["Kick-off call booked"]
    assert not _run(pair.config).notes.get("partner notes updated")


def test_an_attachment_already_there_is_adopted_not_made_again(bottle):
    pair, crm = bottle
    deal_id, vendor_deal = _registered(pair, crm)
    pricing = _upload(pair, "vendor", "pricing.txt", b"price list v1")
    note = _note(
        pair,
        "vendor",
        vendor_deal,
        "<p>Prices</p>",
        dealsync_shared="true",
        hs_attachment_ids=pricing,
    )
    # The same file already on the deal, untracked: what a run killed right after BottleCRM stored
    # the attachment leaves behind, or the partner attaching the vendor's file too.
    crm.attach(deal_id, "pricing.txt", b"price list v1")

    report = _run(pair.config)
    assert report.notes["files copied"] == 1
    assert [a.name for a in crm.attachments(deal_id)] == ["pricing.txt"]
    assert [n["id"] for n in _notes_on(pair, "vendor", vendor_deal)] == [note]  # not copied back
    assert not _run(pair.config).notes.get("files copied")
    assert len(crm.attachments(deal_id)) == 1

    # Deleting it in BottleCRM takes the file off the vendor's note (the note itself stays).
    crm.delete_file(crm.attachments(deal_id)[0].id)
    assert _run(pair.config).notes["files deleted"] == 1
    (kept,) = _notes_on(pair, "vendor", vendor_deal)
    assert kept["id"] == note and not kept["hs_attachment_ids"]
    assert _download(pair, "vendor", pricing) is None


def test_a_notes_mapping_with_files_on_notes_is_refused_for_bottlecrm(bottle):
    pair, _crm = bottle
    pair.config.write_text(
        pair.config.read_text() + "    notes_mapping: mappings/shared_notes.yaml\n"
    )
    result = pair.cli("run", ok=False)
    assert result.exit_code != 0
    assert "shared_notes.yaml:" in result.output and "keeps files on deals" in result.output
    assert "attachments_property" in result.output


def test_a_cloned_bottlecrm_deal_with_its_twins_key_is_quarantined_not_linked(bottle):
    pair, crm = bottle
    conversion = pair.create(
        "vendor",
        dealname="Converted for Beta",
        amount="500",
        dealsync_partner="beta",
        dealsync_partner_owner_email="ann@partner.test",
    )
    _run(pair.config)
    key = f"beta:vendor:{conversion}"
    # BottleCRM keys are not unique: a user clones the twin, key and tag included.
    clone = crm.create(
        "deals",
        [
            WriteInput(
                "c",
                {
                    "name": "Clone",
                    "stage": "PROSPECTING",
                    "tags": "dealsync-shared",
                    "cf_dealsync_key": key,
                    "closed_on": "2031-01-01",
                },
            )
        ],
    )[0].record.id
    forged = crm.create(
        "deals",
        [
            WriteInput(
                "f",
                {
                    "name": "Forged",
                    "stage": "PROSPECTING",
                    "tags": "dealsync-shared",
                    "cf_dealsync_key": "beta:vendor:999999999",
                },
            )
        ],
    )[0].record.id
    report = _run(pair.config)
    assert report.created == {"partner": 0, "vendor": 0} and report.adopted == 0
    assert report.updated == report.deleted == {"partner": 0, "vendor": 0}
    refused = {q["record_id"] for q in report.quarantined if q["security"]}
    assert refused == {clone, forged}, report.quarantined
    # Unchanged, they are not judged again: they wait in quarantine for a change, linking nothing.
    report = _run(pair.config)
    assert report.created == {"partner": 0, "vendor": 0} and report.adopted == 0
    assert report.updated == report.deleted == {"partner": 0, "vendor": 0}
    listed = json.loads(pair.cli("quarantine", "list", "--json").output)["quarantine"]
    assert {q["record_id"] for q in listed if q["waits_for"] == "change"} == {clone, forged}
    assert not pair.deal("vendor", conversion, "closedate")["closedate"]
    assert len(pair.deals("vendor")) == 1
    scanned = {r.id for page in crm.pull_changes("deals", None, []) for r in page.records}
    assert {clone, forged} <= scanned


def test_newest_wins_by_when_a_scan_first_saw_the_bottlecrm_change(bottle):
    pair, crm = bottle
    reg = crm.create(
        "deals",
        [
            WriteInput(
                "r",
                {
                    "name": "Beta Newest",
                    "stage": "PROSPECTING",
                    "tags": "dealsync-shared;Product: Billing",
                },
            )
        ],
    )[0].record.id
    _run(pair.config)
    twin = _twin(pair, "vendor", f"beta:partner:{reg}")["id"]
    # Both sides change product interest (conflict rule: newest); BottleCRM's change comes last.
    pair.edit("vendor", twin, dealsync_product_interest="Connect")
    assert crm.update("deals", [WriteInput("e", {"tags_product": "Analytics"}, id=reg)])[0].ok
    report = _run(pair.config)
    (conflict,) = report.conflicts
    assert conflict["field"] == "product_interest" and conflict["winner"] == "partner"
    assert (
        pair.deal("vendor", twin, "dealsync_product_interest")["dealsync_product_interest"]
        == "Analytics"
    )
    # BottleCRM records no edit time: the stamp is when a scan first saw the new content.
    later = _run(pair.config)
    assert later.conflicts == [] and later.updated == {"partner": 0, "vendor": 0}
