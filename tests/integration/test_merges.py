"""HubSpot merges: when a user merges two deals, the sync follows the record they became: no second
twin, no deletion, and a line in the run report."""

from __future__ import annotations

from dealsync.config import load_config
from dealsync.ledger import Ledger
from tests.integration.test_sync import SHARED, _twin


def _merge(pair, side: str, primary: str, other: str) -> str:
    body = {"primaryObjectId": primary, "objectIdToMerge": other}
    return pair.api(side, "POST", "/crm/v3/objects/deals/merge", json=body).json()["id"]


def _link_of(pair, side: str, record_id: str):
    ledger = Ledger(load_config(pair.config).ledger_url)
    found = ledger.links_for("acme", side, [record_id])
    ledger.close()
    return found[0] if found else None


def test_a_vendor_merge_moves_the_link_to_the_survivor(pair):
    reg = pair.create("partner", dealname="Registered", closedate="2026-12-01", **SHARED)
    pair.cli("run")
    twin = _twin(pair, "vendor", f"acme:partner:{reg}")["id"]
    duplicate = pair.create("vendor", dealname="Duplicate the rep typed", amount="900")
    survivor = _merge(pair, "vendor", twin, duplicate)

    result = pair.cli("run")
    assert f"merged into {survivor}" in result.output
    assert [d["id"] for d in pair.deals("vendor")] == [survivor]  # no second twin
    assert pair.deal("partner", reg, "dealname") is not None  # no deletion
    assert _link_of(pair, "partner", reg).vendor_id == survivor
    assert pair.deal("partner", reg, "dealsync_vendor_amount")["dealsync_vendor_amount"] == "900"

    pair.edit("partner", reg, closedate="2027-02-02")
    pair.cli("run")
    assert pair.deal("vendor", survivor, "closedate")["closedate"].startswith("2027-02-02")
    pair.reset_counts()
    pair.cli("run")
    assert pair.writes("vendor") == pair.writes("partner") == 0


def test_a_partner_merge_of_two_registrations_keeps_one_link_and_deletes_nothing(pair):
    first = pair.create("partner", dealname="First", closedate="2026-12-01", **SHARED)
    second = pair.create("partner", dealname="Second", **SHARED)
    pair.cli("run")
    first_twin = _twin(pair, "vendor", f"acme:partner:{first}")["id"]
    second_twin = _twin(pair, "vendor", f"acme:partner:{second}")["id"]
    survivor = _merge(pair, "partner", first, second)

    result = pair.cli("run")
    assert f"merged into {survivor}" in result.output and second_twin in result.output
    assert sorted(d["id"] for d in pair.deals("vendor")) == sorted([first_twin, second_twin])
    assert _link_of(pair, "partner", survivor).vendor_id == first_twin
    assert _link_of(pair, "vendor", second_twin) is None

    pair.edit("partner", survivor, closedate="2027-03-03")
    pair.cli("run")
    assert pair.deal("vendor", first_twin, "closedate")["closedate"].startswith("2027-03-03")
    pair.reset_counts()
    pair.cli("run")
    assert pair.writes("vendor") == pair.writes("partner") == 0


def _merge_notes(pair, side: str, primary: str, other: str) -> str:
    body = {"primaryObjectId": primary, "objectIdToMerge": other}
    return pair.api(side, "POST", "/crm/v3/objects/notes/merge", json=body).json()["id"]


def test_a_vendor_merge_of_a_shared_note_moves_its_link(pair):
    from tests.integration.test_notes import _note, _notes_on

    reg = pair.create("partner", dealname="With notes", **SHARED)
    pair.cli("run")
    vendor_deal = _twin(pair, "vendor", f"acme:partner:{reg}")["id"]
    note = _note(pair, "partner", reg, "<p>Shared</p>", dealsync_shared="true")
    pair.cli("run")
    (twin,) = _notes_on(pair, "vendor", vendor_deal)
    local = _note(pair, "vendor", vendor_deal, "<p>Rep's own</p>")
    survivor = _merge_notes(pair, "vendor", twin["id"], local)

    result = pair.cli("run")
    assert f"vendor note {twin['id']} was merged into {survivor}" in result.output
    assert [n["id"] for n in _notes_on(pair, "vendor", vendor_deal)] == [survivor]
    assert [n["id"] for n in _notes_on(pair, "partner", reg)] == [note]  # nothing deleted or added
    pair.api(
        "partner",
        "PATCH",
        f"/crm/v3/objects/notes/{note}",
        json={"properties": {"hs_note_body": "<p>Shared, edited</p>"}},
    )
    pair.cli("run")
    assert "edited" in _notes_on(pair, "vendor", vendor_deal)[0]["hs_note_body"]
    pair.reset_counts()
    pair.cli("run")
    assert pair.writes("vendor") == pair.writes("partner") == 0
