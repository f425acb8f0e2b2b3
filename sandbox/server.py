"""Run the sandbox: in this process (the CLI) or as a managed child process (tests, demo, benchmarks)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from sandbox.traffic import Limits


def serve(
    host: str, port: int, tokens: list[str], db_path: str | None, limits: Limits, seed: str | None
) -> None:
    """Serve the sandbox until interrupted."""
    import uvicorn

    from sandbox.app import build_app

    app = build_app(tokens, db_path, limits)
    if seed:
        from sandbox.seed import seed_portal

        seed_portal(app.state.sandbox.store, seed)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


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
            "--token",
            self.token,
            "--rate-limit",
            str(self.limits.per_interval),
            "--search-rate-limit",
            str(self.limits.search_per_second),
            "--search-lag-ms",
            str(self.limits.search_lag_ms),
            "--quiet",
        ]
        if self.db_path:
            cmd += ["--db", str(self.db_path)]
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
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"sandbox on {self.base_url} did not answer within {timeout_s:.0f} s")

    def stop(self) -> None:
        """Stop the server (SIGINT, then SIGKILL if it lingers)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def admin(self, method: str, path: str, **kwargs) -> requests.Response:
        """Call an admin (`/_sandbox/...`) endpoint."""
        response = requests.request(
            method,
            f"{self.base_url}/_sandbox/{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
            **kwargs,
        )
        response.raise_for_status()
        return response

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()
