"""`dealsync serve`: a local Prefect server, the work pool, the deployments and a worker, in one command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import requests

PROJECT_DIR = Path(__file__).resolve().parents[2]
WORK_POOL = "dealsync"
# Flow runs one worker runs at once: each is a process of its own (about 200 MB, and seconds of CPU
# to start), so a worker that took every scheduled run at once would crowd the machine.
RUNS_PER_WORKER = 4


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP (what systemd, Docker and `timeout` send) stop the
    program as Ctrl-C does, so that everything it started is stopped on the way out."""

    def interrupt(_signum: int, _frame: object) -> None:
        # Once stopping has begun, more signals must not cut the clean-up short.
        for name in ("SIGTERM", "SIGHUP", "SIGINT"):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        raise KeyboardInterrupt

    handled = [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]
    previous = {number: signal.signal(number, interrupt) for number in handled}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def worker_command(runs: int = RUNS_PER_WORKER, name: str | None = None) -> list[str]:
    """The command of a process worker on the dealsync pool, at most `runs` flow runs at once."""
    named = ["--name", name] if name else []
    return [
        prefect_executable(),
        "worker",
        "start",
        "--pool",
        WORK_POOL,
        "--limit",
        str(runs),
        *named,
    ]


def prefect_executable() -> str:
    """The `prefect` command of this environment."""
    candidate = Path(sys.executable).parent / "prefect"
    return str(candidate) if candidate.exists() else "prefect"


LEASES_ON_DISK = "prefect.server.concurrency.lease_storage.filesystem"


@dataclass
class PrefectStack:
    """A Prefect server (SQLite under `home`), the dealsync work pool and deployments, and a worker."""

    home: Path
    port: int = 4200
    host: str = "127.0.0.1"
    worker_env: dict[str, str] = field(default_factory=dict)
    ui: bool = True
    poll_seconds: int = 5
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        """Where the API answers."""
        return f"http://{self.host}:{self.port}/api"

    def env(self) -> dict[str, str]:
        """The environment of every Prefect process of this stack."""
        return {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "true" if self.ui else "false",
            "PREFECT_WORKER_QUERY_SECONDS": str(self.poll_seconds),
            # Slot leases on disk: kept in memory (Prefect's default), the leases of runs that
            # ended while the server was down are forgotten by a restart, and their pairs' slots
            # stay taken for good (every later run of those pairs ends Cancelled).
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": LEASES_ON_DISK,
            **self.worker_env,
        }

    def _prefect(self, *args: str) -> None:
        result = subprocess.run(
            [prefect_executable(), *args],
            env=self.env(),
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"`prefect {' '.join(args)}` failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )

    def start_server(self, timeout_s: float = 180.0) -> None:
        """Start the server and wait until its API is healthy (20-30 s on these machines)."""
        self.home.mkdir(parents=True, exist_ok=True)
        log = (self.home / "server.log").open("ab")
        command = [
            prefect_executable(),
            "server",
            "start",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        self.processes.append(
            subprocess.Popen(
                command,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.processes[0].poll() is not None:
                raise RuntimeError(f"the Prefect server exited; see {self.home / 'server.log'}")
            try:
                if requests.get(f"{self.api_url}/health", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise TimeoutError(
            f"the Prefect server did not answer on {self.api_url} within {timeout_s:.0f} s"
        )

    def stop_server(self) -> None:
        """Stop the server alone (its database stays), as an operator's restart or a crash would."""
        server = self.processes[0]
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()

    def restart_server(self, timeout_s: float = 180.0) -> None:
        """Start the stopped server again, on the same port and database."""
        stopped = self.processes.pop(0)
        assert stopped.poll() is not None, "stop_server() first"
        others, self.processes = self.processes, []
        try:
            self.start_server(timeout_s)
        finally:
            self.processes += others

    def deploy(self) -> None:
        """Create the process work pool and deploy everything in prefect.yaml."""
        self._prefect("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite")
        self._prefect("--no-prompt", "deploy", "--all")

    def pause_schedules(self) -> None:
        """Turn every deployment's schedules off: a test or benchmark starts the runs it measures."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with (
            temporary_settings(updates={PREFECT_API_URL: self.api_url}),
            get_client(sync_client=True) as client,
        ):
            for deployment in client.read_deployments():
                for schedule in deployment.schedules:
                    client.update_deployment_schedule(deployment.id, schedule.id, active=False)

    def start_worker(self, runs: int = RUNS_PER_WORKER) -> None:
        """Start a process worker on the dealsync pool, running at most `runs` flow runs at once."""
        log = (self.home / "worker.log").open("ab")
        self._spawn(worker_command(runs), log)

    def _spawn(self, command: list[str], log: BinaryIO) -> subprocess.Popen[bytes]:
        """Start a process of the stack in its own session (so stop() reaches its children)."""
        process = subprocess.Popen(
            command,
            env=self.env(),
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def start_receiver(self, config: Path, port: int, timeout_s: float = 60.0) -> str:
        """Start `dealsync receive` for the config, waking runs on this server; its webhook URL."""
        log = (self.home / "receiver.log").open("ab")
        command = [
            str(Path(sys.executable).parent / "dealsync"),
            "receive",
            "--config",
            str(config),
            "--host",
            self.host,
            "--port",
            str(port),
        ]
        process = self._spawn(command, log)
        base = f"http://{self.host}:{port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"`dealsync receive` exited; see {self.home / 'receiver.log'}:\n"
                    + (self.home / "receiver.log").read_text()[-1500:]
                )
            try:
                if requests.get(f"{base}/health", timeout=2).ok:
                    return f"{base}/webhooks/hubspot"
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"`dealsync receive` did not answer on {base} within {timeout_s:.0f} s")

    def stop(self) -> None:
        """Stop the worker and the server."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()

    def __enter__(self) -> PrefectStack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def write_local_config(
    folder: Path,
    vendor_url: str,
    vendor_token: str,
    partners: dict[str, tuple[str, ...]],
    webhook_secret: str | None = None,
) -> Path:
    """A dealsync.yaml for local sandboxes; tokens go to the environment, the file holds references.
    With a webhook secret, every HubSpot portal's deliveries are checked with it."""
    os.environ["LOCAL_VENDOR_TOKEN"] = vendor_token
    hooks = ""
    if webhook_secret is not None:
        os.environ["LOCAL_WEBHOOK_SECRET"] = webhook_secret
        hooks = ', webhook_secret: "env:LOCAL_WEBHOOK_SECRET"'
    lines = [
        f"ledger: sqlite:///{folder}/ledger.db",
        "vendor:",
        f'  crm: {{kind: hubspot, base_url: "{vendor_url}", token: "env:LOCAL_VENDOR_TOKEN"{hooks}}}',
        "  owner_assignment: {strategy: round_robin, pool: [rita@vendor.test, sam@vendor.test], fallback: rita@vendor.test}",
        "partners:",
    ]
    for partner_id, (url, token, *kind) in partners.items():
        variable = f"LOCAL_{partner_id.upper()}_TOKEN"
        os.environ[variable] = token
        crm_kind = kind[0] if kind else "hubspot"
        if crm_kind == "salesforce":  # (login url, refresh token, kind, consumer key, secret, cert)
            lines += _local_salesforce(partner_id, url, variable, *kind[1:])
            continue
        lines += [
            f"  - id: {partner_id}",
            f'    crm: {{kind: {crm_kind}, base_url: "{url}", token: "env:{variable}"'
            + (hooks if crm_kind == "hubspot" else "")
            + "}",
        ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dealsync.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _local_salesforce(
    partner_id: str, url: str, token_variable: str, client_id: str, secret: str, cert: str
) -> list[str]:
    """A local Salesforce sandbox partner's config lines; its keys go to the environment."""
    prefix = f"LOCAL_{partner_id.upper()}"
    os.environ[f"{prefix}_CLIENT_ID"] = client_id
    os.environ[f"{prefix}_CLIENT_SECRET"] = secret
    return [
        f"  - id: {partner_id}",
        "    crm:",
        "      kind: salesforce",
        f'      base_url: "{url}"',
        f"      client_id: env:{prefix}_CLIENT_ID",
        f"      client_secret: env:{prefix}_CLIENT_SECRET",
        f"      token: env:{token_variable}",
        f'      ca_bundle: "{cert}"',
    ]
