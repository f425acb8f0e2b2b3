"""Two real sandbox CRMs (vendor, partner), a real ledger (SQLite or PostgreSQL), the real CLI."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from typer.testing import CliRunner

from bottlecrm.server import BottleCrmServer
from connectors.bottlecrm import BottleCrmConnector
from dealsync.cli import app
from sandbox.server import SandboxProcess
from tests.conftest import ROOMY

POSTGRES_ADMIN = "postgresql+psycopg://root@127.0.0.1:5432/postgres"
VENDOR_OWNERS = ("rep1@vendor.test", "rep2@vendor.test")
PARTNER_OWNERS = ("ann@acme.test", "bob@acme.test")


@pytest.fixture(scope="session")
def crm_servers() -> Iterator[dict[str, SandboxProcess]]:
    """A vendor and a partner sandbox for the whole session."""
    with SandboxProcess(limits=ROOMY) as vendor, SandboxProcess(limits=ROOMY) as partner:
        yield {"vendor": vendor, "partner": partner}


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"dealsync_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    yield f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@dataclass
class Pair:
    """One configured pair over the two sandboxes, with helpers that act as the CRMs' users would."""

    servers: dict[str, SandboxProcess]
    config: Path
    runner: CliRunner

    def cli(self, *args: str, ok: bool = True):
        """Run `dealsync ARGS --config ...`; assert success unless ok=False."""
        result = self.runner.invoke(
            app, [*args, "--config", str(self.config)], catch_exceptions=False
        )
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def api(self, side: str, method: str, path: str, **kwargs) -> requests.Response:
        """Call a CRM's API directly, as its users' tools do."""
        server = self.servers[side]
        response = requests.request(
            method,
            f"{server.base_url}{path}",
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=30,
            **kwargs,
        )
        assert response.status_code < 400, response.text
        return response

    def create(self, side: str, **properties: str) -> str:
        """A user creates a deal."""
        return self.api(
            side, "POST", "/crm/v3/objects/deals", json={"properties": properties}
        ).json()["id"]

    def edit(self, side: str, deal_id: str, **properties: str) -> None:
        """A user edits a deal."""
        self.api(side, "PATCH", f"/crm/v3/objects/deals/{deal_id}", json={"properties": properties})

    def archive(self, side: str, deal_id: str) -> None:
        """A user deletes a deal."""
        self.api(side, "DELETE", f"/crm/v3/objects/deals/{deal_id}")

    def deal(self, side: str, deal_id: str, *props: str) -> dict:
        """A deal's properties (None when it is archived)."""
        server = self.servers[side]
        response = requests.get(
            f"{server.base_url}/crm/v3/objects/deals/{deal_id}",
            params={"properties": ",".join(props)},
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=30,
        )
        return response.json()["properties"] if response.status_code == 200 else None

    def deals(self, side: str, *props: str) -> list[dict]:
        """Every active deal of a side."""
        found, after = [], None
        while True:
            params = {"limit": 100, "properties": ",".join(props)}
            if after:
                params["after"] = after
            page = self.api(side, "GET", "/crm/v3/objects/deals", params=params).json()
            found += [{"id": r["id"], **r["properties"]} for r in page["results"]]
            after = (page.get("paging") or {}).get("next", {}).get("after")
            if not after:
                return found

    def writes(self, side: str) -> int:
        """Write calls the side received since the last reset of its counts."""
        counts = self.servers[side].admin("GET", "requests").json()["by_route"]
        return sum(
            n
            for route, n in counts.items()
            if route.startswith(("POST", "PATCH", "DELETE"))
            and "search" not in route
            and "batch/read" not in route
        )

    def reset_counts(self) -> None:
        """Zero both sides' request counts."""
        for server in self.servers.values():
            server.admin("DELETE", "requests")


def write_config(
    path: Path,
    servers: dict[str, SandboxProcess],
    ledger: str,
    partners: dict[str, SandboxProcess] | None = None,
) -> Path:
    """A dealsync.yaml for these servers (tokens by env reference)."""
    partners = partners or {"acme": servers["partner"]}
    lines = [
        f"ledger: {ledger}",
        "vendor:",
        f'  crm: {{kind: hubspot, base_url: "{servers["vendor"].base_url}", token: "env:TEST_VENDOR_TOKEN"}}',
        "  owner_assignment: {strategy: round_robin, pool: [rep1@vendor.test, rep2@vendor.test], fallback: rep1@vendor.test}",
        "partners:",
    ]
    for pid, server in partners.items():
        lines += [
            f"  - id: {pid}",
            f'    crm: {{kind: hubspot, base_url: "{server.base_url}", token: "env:TEST_{pid.upper()}_TOKEN"}}',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(params=["sqlite"])
def ledger_url(request, tmp_path) -> str:
    """The ledger of a test: SQLite in the test's folder (tests opt into PostgreSQL with indirect params)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
        return url
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture
def pair(crm_servers, tmp_path, monkeypatch, ledger_url) -> Pair:
    """Reset sandboxes with owners, a config, and `dealsync init` already run."""
    for side, server in crm_servers.items():
        server.admin("POST", "reset")
        for email in VENDOR_OWNERS if side == "vendor" else PARTNER_OWNERS:
            server.admin(
                "POST",
                "owners",
                json={"email": email, "firstName": email.split("@")[0], "lastName": "Test"},
            )
    monkeypatch.setenv("TEST_VENDOR_TOKEN", crm_servers["vendor"].token)
    monkeypatch.setenv("TEST_ACME_TOKEN", crm_servers["partner"].token)
    config = write_config(tmp_path / "dealsync.yaml", crm_servers, ledger_url)
    result = Pair(crm_servers, config, CliRunner())
    result.cli("init")
    return result


@pytest.fixture
def bottle(crm_servers, tmp_path, monkeypatch, ledger_url):
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
            f"ledger: {ledger_url}\n"
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
