"""One vendor, three partners: a partner's shared deals, notes and files never reach another partner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox.server import SandboxProcess
from tests.conftest import ROOMY
from tests.integration.conftest import PARTNER_OWNERS, Pair, write_config
from tests.integration.test_notes import _note, _notes_on
from tests.integration.test_sync import DEAL_PROPS, SHARED, _twin


@pytest.fixture(scope="module")
def more_partners():
    with SandboxProcess(limits=ROOMY) as globex, SandboxProcess(limits=ROOMY) as initech:
        yield {"globex": globex, "initech": initech}


@pytest.fixture
def three(pair: Pair, more_partners, monkeypatch, tmp_path) -> dict[str, Pair]:
    """The acme pair plus globex and initech, sharing the vendor CRM and the ledger."""
    servers = {"acme": pair.servers["partner"], **more_partners}
    for name, server in more_partners.items():
        server.admin("POST", "reset")
        for email in PARTNER_OWNERS:
            server.admin(
                "POST",
                "owners",
                json={"email": email.replace("acme", name), "firstName": name, "lastName": "User"},
            )
        monkeypatch.setenv(f"TEST_{name.upper()}_TOKEN", server.token)
    ledger = pair.config.read_text().splitlines()[0].split(": ", 1)[1]
    config = write_config(pair.config, pair.servers, ledger, servers)
    views = {"acme": pair}
    for name, server in more_partners.items():
        views[name] = Pair(
            {"vendor": pair.servers["vendor"], "partner": server}, config, CliRunner()
        )
    pair.cli("init")
    return views


def _partner_deals(view: Pair) -> list[dict]:
    return view.deals("partner", *DEAL_PROPS)


def test_three_partners_stay_apart(three):
    acme = three["acme"]
    reg = acme.create("partner", dealname="Acme registration", **SHARED)
    for name, view in three.items():
        vid = view.create(
            "vendor",
            dealname=f"For {name}",
            dealsync_partner=name,
            dealsync_partner_owner_email=f"ann@{name}.test",
        )
        _note(view, "vendor", vid, f"<p>Secret pricing for {name}</p>", dealsync_shared="true")
    acme.cli("run")
    acme.cli("run")  # the second run carries the notes of deals that became shared in the first

    for name, view in three.items():
        names = sorted(d["dealname"] for d in _partner_deals(view))
        expected = sorted([f"For {name}", *(["Acme registration"] if name == "acme" else [])])
        assert names == expected, (name, names)
        for deal in _partner_deals(view):
            bodies = [n["hs_note_body"] for n in _notes_on(view, "partner", deal["id"])]
            assert all(name in b for b in bodies if "Secret pricing" in b), (name, bodies)
    _twin(acme, "vendor", f"acme:partner:{reg}")


def test_a_mapping_that_reaches_for_another_partners_deal_is_refused(three, tmp_path):
    acme, globex = three["acme"], three["globex"]
    # The welcome note happens to hold an acme user's email: a careless mapping could use it as the owner.
    vid = globex.create(
        "vendor",
        dealname="Globex only",
        dealsync_partner="globex",
        dealsync_partner_owner_email="ann@globex.test",
        dealsync_welcome_note="ann@acme.test",
    )
    globex.cli("run", "--partner", "globex")
    assert [d["dealname"] for d in _partner_deals(globex)] == ["Globex only"]

    greedy = tmp_path / "greedy.yaml"
    greedy.write_text(
        Path("mappings/shared_deal.yaml")
        .read_text()
        .replace('equals: "{partner}"', 'equals: "globex"')
        .replace(
            "partner_owner_email: dealsync_partner_owner_email",
            "partner_owner_email: dealsync_welcome_note",
        )
    )
    text = acme.config.read_text().replace(
        "  - id: acme\n", f"  - id: acme\n    mapping: {greedy}\n"
    )
    acme.config.write_text(text)
    # The planner refuses it (the vendor deal is linked to globex) and says so as a security event.
    result = acme.cli("run", "--partner", "acme")
    assert "security: vendor deal " + vid in result.output
    assert "already shared with another partner" in result.output
    assert _partner_deals(acme) == []
