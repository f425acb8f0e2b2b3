"""Two hosts of the project's own (network namespaces) running Prefect workers over one ledger: a
private PostgreSQL, a Prefect server and a sandbox of 21 portals on this machine, where both reach
them as `dealsync-host` (the CRMs as `crm-host`, an address of their own that a test can take away)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from dealsync.cli.serve import WORK_POOL, PrefectStack, worker_command
from dealsync.config import load_config
from dealsync.ledger import Ledger
from dealsync.setup import prepare_portals
from sandbox.server import SandboxProcess, free_port
from tests.multihost.hosts import CRM_NAME, SHARED_NAME, Host, PrivatePostgres, hosts, wait_for

PARTNERS = 20
DEALS = 20


@dataclass
class Cluster:
    """What a two-host test works with."""

    hosts: list[Host]
    sandbox: SandboxProcess
    postgres: PrivatePostgres
    prefect: PrefectStack
    config: Path  # as the test process reads it (127.0.0.1)
    folder: Path

    @property
    def ledger(self) -> Ledger:
        return Ledger(load_config(self.config).ledger_url)

    def partner_token(self, n: int) -> str:
        return self.sandbox.tokens[n]


def _write_configs(folder: Path, sandbox: SandboxProcess, postgres: PrivatePostgres) -> Path:
    """The hosts' config (services named `dealsync-host`) and the test's (the same, on 127.0.0.1)."""
    os.environ["MH_VENDOR_TOKEN"] = sandbox.tokens[0]
    crm = f'kind: hubspot, base_url: "http://{CRM_NAME}:{sandbox.port}", lookback_seconds: 2'
    text = (
        f"ledger: {postgres.url(SHARED_NAME, 'dealsync')}\n"
        "lease_seconds: 10\n"
        "vendor:\n"
        f'  crm: {{{crm}, token: "env:MH_VENDOR_TOKEN"}}\n'
        "  owner_assignment: {strategy: round_robin, pool: [rep1@vendor.test, rep2@vendor.test]}\n"
        f'partner_defaults: {{crm: {{{crm}, token: "env:MH_{{ID}}_TOKEN"}}}}\n'
        "partners_file: partners.csv\n"
    )
    rows = ["id"]
    for n in range(1, PARTNERS + 1):
        os.environ[f"MH_P{n:02d}_TOKEN"] = sandbox.tokens[n]
        rows.append(f"p{n:02d}")
    (folder / "partners.csv").write_text("\n".join(rows) + "\n")
    (folder / "hosts.yaml").write_text(text)
    (folder / "local.yaml").write_text(
        text.replace(SHARED_NAME, "127.0.0.1").replace(CRM_NAME, "127.0.0.1")
    )
    return folder / "local.yaml"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("two-hosts")
    with hosts(2) as machines:
        postgres = PrivatePostgres(free_port())
        postgres.init()
        postgres.start()
        admin = sa.create_engine(postgres.url("127.0.0.1"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE dealsync"))
        admin.dispose()
        try:
            with SandboxProcess(host="0.0.0.0", portals=PARTNERS + 1) as sandbox:
                config = _write_configs(folder, sandbox, postgres)
                loaded = load_config(config)
                Ledger(loaded.ledger_url).migrate()
                prepare_portals(loaded)
                for email in ("rep1@vendor.test", "rep2@vendor.test"):
                    sandbox.admin("POST", "owners", token=sandbox.tokens[0], json={"email": email})
                env = {"DEALSYNC_CONFIG": str(folder / "hosts.yaml")} | {
                    k: v for k, v in os.environ.items() if k.startswith("MH_")
                }
                with PrefectStack(
                    home=folder / "prefect",
                    host="0.0.0.0",
                    port=free_port(),
                    worker_env=env,
                    ui=False,
                    poll_seconds=1,
                ) as prefect:
                    prefect.start_server()
                    prefect.deploy()
                    prefect.pause_schedules()
                    for host in machines:
                        _start_worker(host, prefect, folder)
                    _wait_for_workers(prefect, len(machines))
                    yield Cluster(machines, sandbox, postgres, prefect, config, folder)
        finally:
            postgres.remove()


def _start_worker(host: Host, prefect: PrefectStack, folder: Path) -> None:
    """A process worker on `host`, reaching the Prefect server as `dealsync-host`."""
    env = prefect.env() | {
        "PREFECT_HOME": str(folder / f"{host.name}-prefect"),
        "PREFECT_API_URL": f"http://{SHARED_NAME}:{prefect.port}/api",
    }
    command = worker_command(2, name=f"worker-{host.name}")
    host.start(command, env, folder / f"{host.name}.log")


def _wait_for_workers(prefect: PrefectStack, count: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def online() -> bool:
        with (
            temporary_settings(updates={PREFECT_API_URL: prefect.api_url}),
            get_client(sync_client=True) as client,
        ):
            workers = client.read_workers_for_work_pool(WORK_POOL)
        return sum(str(w.status).endswith("ONLINE") for w in workers) >= count

    wait_for(online, f"{count} workers online", limit_s=180)
