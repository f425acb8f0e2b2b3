"""Run the sandbox: in this process (the CLI) or as a managed child process (tests, demo, benchmarks)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from sandbox.app import Portal
from sandbox.traffic import Limits


def serve(
    host: str,
    port: int,
    tokens: list[str],
    db_path: str | None,
    limits: Limits,
    seed: str | None,
    portals: list[Portal] | None = None,
) -> None:
    """Serve the sandbox until interrupted: one portal for `tokens`, or the given portals."""
    import uvicorn

    from sandbox.app import build_app, build_portals_app

    app = build_portals_app(portals, limits) if portals else build_app(tokens, db_path, limits)
    if seed:
        from sandbox.seed import seed_portal

        seed_portal(app.state.sandbox.store, seed)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def portal_list(count: int, db_folder: Path | None, known: Path | None = None) -> list[Portal]:
    """`count` portals named portal-00, portal-01...; each has a token of its own (the ones in `known`,
    a portals file from an earlier start, when it lists as many) and, with `db_folder`, its own file."""
    tokens = [f"sandbox-p{n:02d}-{secrets.token_hex(10)}" for n in range(count)]
    if known is not None and known.exists():
        listed = [p["token"] for p in json.loads(known.read_text()).get("portals", [])]
        if len(listed) == count:
            tokens = listed
    if db_folder is not None:
        db_folder.mkdir(parents=True, exist_ok=True)
    return [
        Portal(
            f"portal-{n:02d}",
            frozenset({token}),
            str(db_folder / f"portal-{n:02d}.db") if db_folder is not None else None,
        )
        for n, token in enumerate(tokens)
    ]


def write_portals_file(path: Path, base_url: str, portals: list[Portal]) -> None:
    """Where the portals answer and their tokens, as JSON (readable by the owner only)."""
    body = {
        "base_url": base_url,
        "portals": [{"name": p.name, "token": next(iter(p.tokens))} for p in portals],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n")
    path.chmod(0o600)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class SandboxProcess:
    """A sandbox server in a child process, stopped on `stop()` or when used as a context manager."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str = field(default_factory=lambda: "sandbox-" + secrets.token_hex(12))
    db_path: Path | None = None
    seed: str | None = None
    limits: Limits = field(default_factory=Limits)
    portals: int = 1  # more than one: each portal its own token, data and limits (`tokens`)
    tokens: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        """The server's root URL."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The CLI command that serves this sandbox."""
        cmd = [
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            *(
                ["--portals", str(self.portals), "--portals-file", str(self._portals_file)]
                if self.portals > 1
                else ["--token", self.token]
            ),
            "--rate-limit",
            str(self.limits.per_interval),
            "--rate-interval-ms",
            str(self.limits.interval_ms),
            "--search-rate-limit",
            str(self.limits.search_per_second),
            "--search-lag-ms",
            str(self.limits.search_lag_ms),
            "--quiet",
        ]
        if self.db_path:
            cmd += ["--db", str(self.db_path)]  # a folder of portal files with --portals
        if self.seed:
            cmd += ["--seed", self.seed]
        return cmd

    def start(self, timeout_s: float = 60.0) -> SandboxProcess:
        """Start the server and wait until it answers."""
        if not self.port:
            self.port = free_port(self.host)
        self.process = subprocess.Popen(self.command(), env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"sandbox exited with code {self.process.returncode}: {' '.join(self.command()[:6])}"
                )
            try:
                if requests.get(f"{self.base_url}/_sandbox/health", timeout=1).ok:
                    self._read_tokens()
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"sandbox on {self.base_url} did not answer within {timeout_s:.0f} s")

    @property
    def _portals_file(self) -> Path:
        return Path(tempfile.gettempdir()) / f"dealsync-sandbox-{self.port}-portals.json"

    def _read_tokens(self) -> None:
        """Each portal's token (the file is written before the server answers)."""
        if self.portals == 1:
            self.tokens = [self.token]
            return
        listed = json.loads(self._portals_file.read_text())["portals"]
        self.tokens = [p["token"] for p in listed]
        self.token = self.tokens[0]

    def stop(self) -> None:
        """Stop the server (SIGINT, then SIGKILL if it lingers)."""
        if self.portals > 1:
            self._portals_file.unlink(missing_ok=True)
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def admin(
        self, method: str, path: str, token: str | None = None, **kwargs
    ) -> requests.Response:
        """Call an admin (`/_sandbox/...`) endpoint, of the portal of `token` (default: the first)."""
        response = requests.request(
            method,
            f"{self.base_url}/_sandbox/{path}",
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=60,
            **kwargs,
        )
        response.raise_for_status()
        return response

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()
