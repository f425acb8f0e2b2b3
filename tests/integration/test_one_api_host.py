"""Every HubSpot portal answers on the same API host: portals are told apart by token, never by URL.
Three portals of one sandbox process (vendor, acme, beta) share one base URL here, as on HubSpot."""

from __future__ import annotations

import pytest
import requests
from typer.testing import CliRunner

from dealsync.cli import app
from sandbox.server import SandboxProcess
from tests.conftest import ROOMY


@pytest.fixture
def one_host(tmp_path, monkeypatch):
    with SandboxProcess(portals=3, limits=ROOMY) as server:
        vendor, acme, beta = server.tokens
        server.admin(
            "POST", "owners", token=vendor, json={"email": "rep1@vendor.test", "firstName": "R"}
        )
        for name, token in {"VENDOR": vendor, "ACME": acme, "BETA": beta}.items():
            monkeypatch.setenv(f"ONE_HOST_{name}", token)
        crm = f'kind: hubspot, base_url: "{server.base_url}"'
        config = tmp_path / "dealsync.yaml"
        config.write_text(
            f"ledger: sqlite:///{tmp_path}/ledger.db\n"
            "vendor:\n"
            f'  crm: {{{crm}, token: "env:ONE_HOST_VENDOR"}}\n'
            "  owner_assignment: {strategy: fixed, owner: rep1@vendor.test}\n"
            "partners:\n"
            f'  - {{id: acme, crm: {{{crm}, token: "env:ONE_HOST_ACME"}}}}\n'
            f'  - {{id: beta, crm: {{{crm}, token: "env:ONE_HOST_BETA"}}}}\n'
        )
        yield server, config


def _cli(config, *args: str):
    result = CliRunner().invoke(app, [*args, "--config", str(config)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _get(server: SandboxProcess, token: str, path: str, **params) -> dict:
    response = requests.get(
        f"{server.base_url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def test_init_prepares_every_portal_on_one_host(one_host):
    server, config = one_host
    _cli(config, "init")
    vendor, *partners = server.tokens
    wanted = {vendor: {"dealsync_key", "dealsync_partner"}}
    wanted |= {token: {"dealsync_key", "dealsync_shared"} for token in partners}
    for token, properties in wanted.items():
        names = {p["name"] for p in _get(server, token, "/crm/v3/properties/deals")["results"]}
        assert properties <= names, names


def test_partners_on_one_host_stay_apart(one_host):
    server, config = one_host
    _cli(config, "init")
    vendor, acme, beta = server.tokens
    for token, name in ((acme, "Acme deal"), (beta, "Beta deal")):
        requests.post(
            f"{server.base_url}/crm/v3/objects/deals",
            json={"properties": {"dealname": name, "dealsync_shared": "true"}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).raise_for_status()
    _cli(config, "run")
    twins = _get(
        server, vendor, "/crm/v3/objects/deals", properties="dealname,dealsync_partner", limit=100
    )["results"]
    assert sorted(
        (t["properties"]["dealname"], t["properties"]["dealsync_partner"]) for t in twins
    ) == [
        ("Acme deal", "acme"),
        ("Beta deal", "beta"),
    ]
    for token, own in ((acme, "Acme deal"), (beta, "Beta deal")):
        deals = _get(server, token, "/crm/v3/objects/deals", properties="dealname")["results"]
        assert [d["properties"]["dealname"] for d in deals] == [own]
