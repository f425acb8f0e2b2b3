"""The vendor hub: one read of the vendor portal for every partner, whatever their number; what it
reads reaches a pair only through the ledger's links (or, unlinked, its mark)."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from typer.testing import CliRunner

from dealsync.cli import app
from dealsync.config import load_config
from dealsync.connections import build_connector
from dealsync.hub import hub_of
from dealsync.ledger import Ledger
from dealsync.ledger.inbox import HUB
from dealsync.ledger.lease import PairLease
from dealsync.pipeline.hub_read import read_for_cycle, read_hub, refresh_hub
from sandbox.server import SandboxProcess
from tests.conftest import ROOMY
from tests.integration import test_isolation
from tests.integration.test_sync import SHARED, _twin

more_partners = test_isolation.more_partners  # the fixtures of three partners on one vendor
three = test_isolation.three
PARTNERS = 20


@pytest.fixture
def twenty(tmp_path, monkeypatch):
    """One sandbox process serving the vendor and 20 partner portals, each with 2 registrations,
    synced once and read back (what a quiet cycle follows)."""
    with SandboxProcess(portals=PARTNERS + 1, limits=ROOMY) as server:
        vendor, *partners = server.tokens
        server.admin("POST", "owners", token=vendor, json={"email": "rep1@vendor.test"})
        crm = f'kind: hubspot, base_url: "{server.base_url}", lookback_seconds: 0'
        # As a programme with many partners writes it: defaults, a token named from each id,
        # and the partners in a file of their own.
        config = tmp_path / "dealsync.yaml"
        config.write_text(
            f"ledger: sqlite:///{tmp_path}/ledger.db\n"
            "vendor:\n"
            f'  crm: {{{crm}, token: "env:HUB_VENDOR"}}\n'
            "  owner_assignment: {strategy: fixed, owner: rep1@vendor.test}\n"
            f'partner_defaults: {{crm: {{{crm}, token: "env:HUB_{{ID}}_TOKEN"}}}}\n'
            "partners_file: partners.csv\n"
        )
        monkeypatch.setenv("HUB_VENDOR", vendor)
        rows = []
        for n, token in enumerate(partners):
            monkeypatch.setenv(f"HUB_P{n:02d}_TOKEN", token)
            rows.append(f"p{n:02d}")
        (tmp_path / "partners.csv").write_text("id\n" + "\n".join(rows) + "\n")
        _cli(config, "init")
        for token in partners:
            for name in ("One", "Two"):
                _post(server, token, "/crm/v3/objects/deals", dealname=name, **SHARED)
        _cli(config, "run")
        _cli(config, "run")  # reads back the first run's own writes
        yield server, config


def _cli(config, *args: str):
    result = CliRunner().invoke(app, [*args, "--config", str(config)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _post(server: SandboxProcess, token: str, path: str, **properties: str) -> str:
    response = requests.post(
        f"{server.base_url}{path}",
        json={"properties": properties},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["id"])


def _vendor_calls(server: SandboxProcess) -> int:
    counts = server.admin("GET", "requests", token=server.tokens[0]).json()
    return int(counts["total"])


def test_a_quiet_cycle_of_twenty_partners_makes_at_most_six_vendor_calls(twenty):
    server, config = twenty
    server.admin("DELETE", "requests", token=server.tokens[0])
    result = _cli(config, "run")
    assert result.output.count("Partner p") == PARTNERS  # every partner's run reported
    assert _vendor_calls(server) <= 6  # the hub's read; no partner's run asked the vendor

    # A change on the vendor reaches its pair alone, still from that one read.
    ledger = Ledger.open(load_config(config).ledger_url)
    link = ledger.active_links("p07")[0]
    ledger.close()
    requests.patch(
        f"{server.base_url}/crm/v3/objects/deals/{link.vendor_id}",
        json={"properties": {"closedate": "2027-09-09"}},
        headers={"Authorization": f"Bearer {server.tokens[0]}"},
        timeout=30,
    ).raise_for_status()
    server.admin("DELETE", "requests", token=server.tokens[0])
    result = _cli(config, "run", "--json")
    runs = {r["partner"]: r for r in json.loads(result.output)["runs"]}
    assert runs["p07"]["updated"]["partner"] == 1
    assert all(r["writes"] == 0 for p, r in runs.items() if p != "p07")
    assert _vendor_calls(server) <= 8  # the read, and p07's read of the twin it merges


def test_check_looks_at_every_partner_of_a_partners_file(twenty):
    _server, config = twenty
    checked = json.loads(_cli(config, "check", "--json").output)
    assert checked["ok"]
    portals = {c["portal"] for c in checked["checks"]}
    assert {f"partner p{n:02d}" for n in range(PARTNERS)} <= portals
    table = _cli(config, "check").output
    assert f"{len(checked['checks'])} of {len(checked['checks'])} checks passed" in table


def test_a_run_waits_for_the_hub_read_another_run_makes_and_uses_it(twenty):
    _server, config_path = twenty
    config = load_config(config_path)
    ledger = Ledger.open(config.ledger_url)
    hub = hub_of(config)
    assert hub is not None and len(hub.deal_mappings) == PARTNERS
    reader, waiter = (build_connector(config.vendor_crm, "vendor") for _ in range(2))
    since = read_hub(hub, ledger, reader, commit=False).started_ms  # a moment before
    held = PairLease(ledger, HUB)
    held.acquire()  # another run is reading the hub
    waiting = threading.Thread(target=refresh_hub, args=(hub, ledger, waiter, since))
    waiting.start()
    read_hub(hub, ledger, reader)  # ... and commits a read that started after `since`
    held.release()
    waiting.join(timeout=60)
    assert not waiting.is_alive() and waiter.calls == 0  # it used that read
    ledger.close()


def test_a_vendor_deletion_found_by_the_hubs_count_reaches_its_pair_alone(twenty):
    server, config_path = twenty
    config = load_config(config_path)
    ledger = Ledger.open(config.ledger_url)
    link = ledger.active_links("p03")[0]
    requests.delete(
        f"{server.base_url}/crm/v3/objects/deals/{link.vendor_id}",
        headers={"Authorization": f"Bearer {server.tokens[0]}"},
        timeout=30,
    ).raise_for_status()
    read_for_cycle(config, ledger)
    inboxes = ledger.inbox_sizes()
    assert inboxes == {"p03": 1}
    (entry,) = ledger.inbox("p03", "deals")
    assert (entry.record_id, entry.kind) == (link.vendor_id, "check")
    ledger.close()
    result = _cli(config_path, "run", "--json")
    runs = {r["partner"]: r for r in json.loads(result.output)["runs"]}
    assert runs["p03"]["deleted"]["partner"] == 1  # the policy archives the partner's deal
    assert sum(r["deleted"]["partner"] for r in runs.values()) == 1


def test_a_mark_moved_to_another_partner_reaches_only_the_pair_that_links_the_deal(three):
    acme, globex = three["acme"], three["globex"]
    reg = acme.create("partner", dealname="Acme's", **SHARED)
    acme.cli("run")
    twin = _twin(acme, "vendor", f"acme:partner:{reg}")["id"]
    # A vendor user hands acme's deal to globex and edits it: the hub reads the change once.
    acme.edit("vendor", twin, dealsync_partner="globex", amount="999")
    config = load_config(acme.config)
    ledger = Ledger.open(config.ledger_url)
    read_for_cycle(config, ledger)
    assert set(ledger.inbox_sizes()) == {"acme"}  # routed by the link, not by the mark
    ledger.close()
    result = acme.cli("run")
    assert f"security: vendor deal {twin}" in result.output  # acme's run holds the link
    assert globex.deals("partner", "dealname") == []
    assert acme.deal("partner", reg, "dealsync_vendor_amount")["dealsync_vendor_amount"] != "999"
    # An unlinked deal marked for globex reaches globex (a conversion), and nobody else.
    converted = acme.create(
        "vendor",
        dealname="For globex",
        dealsync_partner="globex",
        dealsync_partner_owner_email="ann@globex.test",
    )
    ledger = Ledger.open(config.ledger_url)
    read_for_cycle(config, ledger)
    assert [(e.record_id, e.kind) for e in ledger.inbox("globex", "deals")] == [
        (converted, "changed")
    ]
    for other in ("acme", "initech"):
        assert converted not in {e.record_id for e in ledger.inbox(other, "deals")}
    ledger.close()
    acme.cli("run")
    assert [d["dealname"] for d in globex.deals("partner", "dealname")] == ["For globex"]
