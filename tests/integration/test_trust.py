"""Keys are claims: a `dealsync_key` a CRM user typed, pasted or re-imported never moves a link, never
crosses partners and never deletes anything; the record is quarantined with a reason instead."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dealsync.config import load_config
from dealsync.ledger import Ledger
from dealsync.ledger.models import LinkRow
from sandbox.server import SandboxProcess
from tests.conftest import ROOMY
from tests.integration.conftest import Pair, write_config
from tests.integration.test_notes import _note, _notes_on
from tests.integration.test_sync import DEAL_PROPS, SHARED, _twin


@pytest.fixture(scope="module")
def beta_server():
    with SandboxProcess(limits=ROOMY) as server:
        yield server


@pytest.fixture
def partners(pair: Pair, beta_server, monkeypatch) -> dict[str, Pair]:
    """Partners acme (the `pair` fixture's partner sandbox) and beta, one vendor, one ledger."""
    beta_server.admin("POST", "reset")
    for email in ("ann@beta.test", "bob@beta.test"):
        beta_server.admin("POST", "owners", json={"email": email, "firstName": "Beta"})
    monkeypatch.setenv("TEST_BETA_TOKEN", beta_server.token)
    ledger = pair.config.read_text().splitlines()[0].split(": ", 1)[1]
    servers = {"acme": pair.servers["partner"], "beta": beta_server}
    write_config(pair.config, pair.servers, ledger, servers)
    pair.cli("init")
    beta = Pair(
        {"vendor": pair.servers["vendor"], "partner": beta_server}, pair.config, CliRunner()
    )
    return {"acme": pair, "beta": beta}


def _ledger(view: Pair) -> Ledger:
    return Ledger(load_config(view.config).ledger_url)


def _links(view: Pair) -> set[tuple]:
    """Every link row of every pair, as (pair, object, partner id, vendor id, state)."""
    ledger = _ledger(view)
    with ledger.session() as s:
        rows = s.execute(
            sa.select(
                LinkRow.pair,
                LinkRow.object_type,
                LinkRow.partner_id,
                LinkRow.vendor_id,
                LinkRow.state,
            )
        ).all()
    ledger.close()
    return {tuple(r) for r in rows}


def _quarantined(view: Pair, partner: str) -> dict[str, list[str]]:
    """Open quarantine of a partner: record id -> reasons."""
    ledger = _ledger(view)
    entries = {e.record_id: e.reasons for e in ledger.open_quarantine(partner)}
    ledger.close()
    return entries


def _run(view: Pair, partner: str):
    return view.cli("run", "--partner", partner)


def _conversion_for(view: Pair, partner: str, **props: str) -> str:
    return view.create(
        "vendor",
        dealname=f"For {partner}",
        dealsync_partner=partner,
        dealsync_partner_owner_email=f"ann@{partner}.test",
        **props,
    )


def _refused(reasons: list[str]) -> bool:
    return any("dealsync_key" in r and "clear" in r for r in reasons)


def test_a_key_naming_another_partners_vendor_deal_reaches_nothing(partners):
    acme, beta = partners["acme"], partners["beta"]
    v = _conversion_for(beta, "beta", amount="777", closedate="2026-12-01")
    _run(beta, "beta")
    beta_twin = _twin(beta, "partner", f"beta:vendor:{v}")["id"]
    before = _links(acme)

    forged = acme.create(
        "partner",
        dealname="Forged",
        closedate="2027-01-01",
        dealsync_key=f"acme:vendor:{v}",
        **SHARED,
    )
    _run(acme, "acme")
    _run(acme, "acme")
    assert _links(acme) == before
    assert acme.deal("partner", forged, "dealsync_vendor_amount")["dealsync_vendor_amount"] in (
        None,
        "",
    )
    assert _refused(_quarantined(acme, "acme")[forged])
    acme.edit("partner", forged, closedate="2027-02-02")
    _run(acme, "acme")
    _run(beta, "beta")
    assert acme.deal("vendor", v, "closedate")["closedate"].startswith("2026-12-01")
    assert beta.deal("partner", beta_twin, "closedate")["closedate"].startswith("2026-12-01")


def test_a_key_naming_the_twin_of_another_registration_takes_nothing_over(partners):
    acme = partners["acme"]
    first = acme.create("partner", dealname="First", closedate="2026-12-10", **SHARED)
    _run(acme, "acme")
    twin = _twin(acme, "vendor", f"acme:partner:{first}")["id"]
    before = _links(acme)

    second = acme.create(
        "partner",
        dealname="Second",
        closedate="2027-03-03",
        dealsync_key=f"acme:vendor:{twin}",
        **SHARED,
    )
    for _ in range(2):
        _run(acme, "acme")
        assert _links(acme) == before
        assert acme.deal("vendor", twin, "closedate")["closedate"].startswith("2026-12-10")
    assert _refused(_quarantined(acme, "acme")[second])
    # The first registration still syncs, and a run with nothing new writes nothing.
    acme.edit("partner", first, closedate="2026-12-11")
    _run(acme, "acme")
    assert acme.deal("vendor", twin, "closedate")["closedate"].startswith("2026-12-11")
    acme.reset_counts()
    _run(acme, "acme")
    assert acme.writes("vendor") == acme.writes("partner") == 0


def test_a_key_naming_a_missing_vendor_deal_deletes_nothing(partners):
    acme = partners["acme"]
    forged = acme.create(
        "partner", dealname="Pointing nowhere", dealsync_key="acme:vendor:999999999999", **SHARED
    )
    _run(acme, "acme")
    _run(acme, "acme")
    assert acme.deal("partner", forged, "dealname") is not None  # still there, not archived
    assert _refused(_quarantined(acme, "acme")[forged])
    assert not [link for link in _links(acme) if link[2] == forged]


@pytest.mark.parametrize("shape", ["beta:partner:123", "acme:partner:{existing}", "hello world"])
def test_a_shared_deal_with_a_foreign_key_is_quarantined_then_registers_once_cleared(
    partners, shape
):
    acme = partners["acme"]
    existing = acme.create("partner", dealname="Someone else's")
    key = shape.format(existing=existing)
    deal = acme.create("partner", dealname="Re-imported", dealsync_key=key, **SHARED)
    result = _run(acme, "acme")
    reasons = _quarantined(acme, "acme").get(deal)
    assert reasons and _refused(reasons), reasons
    assert "security" in result.output.lower() and deal in result.output
    assert not [d for d in acme.deals("vendor", *DEAL_PROPS) if d["dealname"] == "Re-imported"]

    acme.edit("partner", deal, dealsync_key="")
    _run(acme, "acme")
    assert _twin(acme, "vendor", f"acme:partner:{deal}")["dealname"] == "Re-imported"
    assert deal not in _quarantined(acme, "acme")


def test_a_note_keyed_to_another_notes_twin_takes_nothing_over(partners):
    acme = partners["acme"]
    deal = acme.create("partner", dealname="With notes", **SHARED)
    _run(acme, "acme")
    vendor_deal = _twin(acme, "vendor", f"acme:partner:{deal}")["id"]
    original = _note(acme, "partner", deal, "<p>Original</p>", dealsync_shared="true")
    _run(acme, "acme")
    (twin_note,) = _notes_on(acme, "vendor", vendor_deal)
    before = _links(acme)

    forged = _note(
        acme,
        "partner",
        deal,
        "<p>Forged</p>",
        dealsync_shared="true",
        dealsync_key=f"acme:vendor:{twin_note['id']}",
    )
    for _ in range(2):  # a takeover flips the link back and forth from run to run: check each
        _run(acme, "acme")
        assert _links(acme) == before
        bodies = [n["hs_note_body"] for n in _notes_on(acme, "vendor", vendor_deal)]
        assert bodies == [twin_note["hs_note_body"]]
    assert _refused(_quarantined(acme, "acme")[forged])
    assert {n["id"] for n in _notes_on(acme, "partner", deal)} == {original, forged}


def test_a_vendor_deal_moved_to_another_partner_alone_is_noticed_and_held(partners):
    """The hub reads every marked vendor deal and routes the moved one by its link, to acme alone:
    acme's run holds the link (a security event), and it stays held, waiting in quarantine for a
    change, while later runs read nothing of it."""
    acme = partners["acme"]
    text = acme.config.read_text().replace("kind: hubspot,", "kind: hubspot, lookback_seconds: 0,")
    acme.config.write_text(text)  # search shows writes at once here: nothing is re-read
    reg = acme.create("partner", dealname="Mine", closedate="2026-12-10", **SHARED)
    _run(acme, "acme")
    _run(acme, "acme")  # reads back the first run's own writes
    twin = _twin(acme, "vendor", f"acme:partner:{reg}")["id"]
    acme.edit("vendor", twin, dealsync_partner="beta", amount="999")
    result = _run(acme, "acme")
    assert f"security: vendor deal {twin}" in result.output
    for _ in range(2):  # held on every run after: nothing of it crosses either way
        acme.edit("partner", reg, closedate="2027-02-02")
        _run(acme, "acme")
        assert twin in _quarantined(acme, "acme")
        assert acme.deal("vendor", twin, "closedate")["closedate"].startswith("2026-12-10")
    assert acme.deal("partner", reg, "dealsync_vendor_amount")["dealsync_vendor_amount"] != "999"


def test_a_linked_vendor_deal_marked_for_another_partner_is_held_both_ways(partners):
    acme, beta = partners["acme"], partners["beta"]
    reg = acme.create("partner", dealname="Mine", closedate="2026-12-10", **SHARED)
    _run(acme, "acme")
    twin = _twin(acme, "vendor", f"acme:partner:{reg}")["id"]
    # A vendor user hands the deal to beta (by mistake, or on purpose): acme's link is held.
    acme.edit("vendor", twin, dealsync_partner="beta", amount="999")
    acme.edit("partner", reg, closedate="2027-01-01")
    result = _run(acme, "acme")
    assert f"security: vendor deal {twin}" in result.output
    assert acme.deal("vendor", twin, "closedate")["closedate"].startswith("2026-12-10")
    assert acme.deal("partner", reg, "dealsync_vendor_amount")["dealsync_vendor_amount"] != "999"
    # Beta does not get it either: the hub routes a linked deal to the pair whose link holds it
    # (acme), whatever its mark says, so beta's run never even reads it.
    _run(beta, "beta")
    assert beta.deals("partner", "dealname") == []
    assert twin not in _quarantined(beta, "beta")
    # Deleting acme's deal does not archive a vendor deal now marked for beta.
    acme.archive("partner", reg)
    result = _run(acme, "acme")
    assert acme.deal("vendor", twin, "dealname") is not None
    assert "deletion is held" in result.output
    # Marked for acme again, the held deletion goes ahead.
    acme.edit("vendor", twin, dealsync_partner="acme")
    _run(acme, "acme")
    assert acme.deal("vendor", twin, "dealname") is None
