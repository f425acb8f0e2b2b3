"""Run the Salesforce sandbox over TLS: in this process (`python -m sandbox.salesforce`) or as a
managed child process (tests), with a certificate and a connected app made for it."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import requests

from sandbox.salesforce.app import ConnectedApp, build_salesforce_app
from sandbox.salesforce.tls import make_certificate, make_signing_key
from sandbox.server import free_port


def serve(host: str, port: int, folder: Path) -> None:
    """Serve the org whose connected app and certificate are in `folder` until interrupted."""
    import uvicorn

    app = ConnectedApp(**json.loads((folder / "connected-app.json").read_text()))
    config = uvicorn.Config(
        build_salesforce_app(app, (folder / "jwt-public-key.pem").read_text()),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ssl_certfile=str(folder / "sandbox-cert.pem"),
        ssl_keyfile=str(folder / "sandbox-key.pem"),
        # A client that keeps its TLS connection open (an idle pooled one never answers the TLS
        # close) would otherwise hold the shutdown for ever.
        timeout_graceful_shutdown=1,
    )
    logging.getLogger("uvicorn.error").addFilter(_IdleClientsAtShutdown())
    uvicorn.Server(config).run()


class _IdleClientsAtShutdown(logging.Filter):
    """Drops uvicorn's error about connections still open at shutdown: clients' idle pooled TLS
    connections, dropped as they should be (not a fault worth an ERROR line in every test run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "timeout graceful shutdown exceeded" not in record.getMessage()


def prepare(folder: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> ConnectedApp:
    """The org's connected app and certificate in `folder`: the ones there from an earlier start,
    else new ones (so a restarted sandbox keeps its keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = folder / "connected-app.json"
    if not (folder / "sandbox-cert.pem").exists():
        make_certificate(folder, hosts)
    if not (folder / "jwt-public-key.pem").exists():
        make_signing_key(folder)
    if keys.exists():
        return ConnectedApp(**json.loads(keys.read_text()))
    app = ConnectedApp()
    keys.write_text(json.dumps(asdict(app)))
    keys.chmod(0o600)
    return app


class SalesforceProcess:
    """The Salesforce sandbox in a child process: `instance_url`, the connected app's keys, and
    `cert` (the certificate a client must trust)."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port or free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="dealsync-salesforce-"))
        self.app = prepare(self.folder, ("localhost", host))
        self.cert = self.folder / "sandbox-cert.pem"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def instance_url(self) -> str:
        """Where the org answers (also its login URL)."""
        return f"https://{self.host}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> SalesforceProcess:
        """Start it and wait until it answers."""
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox.salesforce",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--folder",
                str(self.folder),
            ],
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the Salesforce sandbox exited at start")
            try:
                self.admin("GET", "allowance")
                return self
            except requests.ConnectionError:
                time.sleep(0.2)
        raise TimeoutError(f"the Salesforce sandbox did not answer on {self.instance_url}")

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call an admin (`/_sandbox/...`) endpoint."""
        answer = requests.request(
            method,
            f"{self.instance_url}/_sandbox/{path}",
            verify=str(self.cert),
            timeout=30,
            **kwargs,
        )
        answer.raise_for_status()
        return answer

    def session(self) -> dict[str, Any]:
        """A new session by the refresh-token grant: the token endpoint's answer."""
        answer = requests.post(
            f"{self.instance_url}/services/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
                "refresh_token": self.app.refresh_token,
            },
            verify=str(self.cert),
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()

    def stop(self) -> None:
        """Stop it and remove its files."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> SalesforceProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
