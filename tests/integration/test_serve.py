"""`dealsync serve` stops everything it started (Prefect server, worker, sandboxes) on Ctrl-C and on
SIGTERM (what systemd, Docker and `timeout` send), and leaves its port free."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.server import free_port

DEALSYNC = str(Path(sys.executable).parent / "dealsync")


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_stops_everything_it_started(tmp_path, sig):
    port = free_port()
    serve = subprocess.Popen(
        [DEALSYNC, "serve", "--sandboxes", "--port", str(port), "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    output = []
    for line in serve.stdout:  # wait for the condition: everything is up
        output.append(line)
        if "Ready." in line:
            break
    assert serve.poll() is None, "".join(output)
    started = _descendants(serve.pid)
    assert len(started) >= 4 and _listening(port), "".join(output)  # 2 sandboxes, server, worker

    serve.send_signal(sig)
    rest = serve.communicate(timeout=120)[0]
    assert serve.returncode == 0, rest
    assert "Stopped the worker, the server and the sandboxes." in rest
    for pid in started:
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid), f"process {pid} outlived `dealsync serve`"
    assert not _listening(port)


def _cmdline(pid: int) -> list[str]:
    try:
        return [a for a in Path(f"/proc/{pid}/cmdline").read_text().split("\0") if a]
    except OSError:
        return []


def test_serve_starts_the_workers_asked_for_and_they_run_flows(tmp_path):
    """`--workers 2 --runs-per-worker 1`: two process workers poll the pool, each taking one flow
    run at a time; a run started from the deployment (the UI's Run button) is picked up and ends
    Completed; SIGTERM stops both."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from dealsync.cli.serve import WORK_POOL

    port = free_port()
    serve = subprocess.Popen(
        [
            DEALSYNC,
            "serve",
            "--sandboxes",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path),
            "--workers",
            "2",
            "--runs-per-worker",
            "1",
            "--receiver-port",
            str(free_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    try:
        output = []
        for line in serve.stdout:
            output.append(line)
            if "Ready." in line:
                break
        assert serve.poll() is None, "".join(output)
        workers = [
            pid
            for pid in _descendants(serve.pid)
            if "worker" in _cmdline(pid) and "start" in _cmdline(pid)
        ]
        assert len(workers) == 2, "".join(output)
        assert all(_cmdline(pid)[-2:] == ["--limit", "1"] for pid in workers)
        with (
            temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}),
            get_client(sync_client=True) as client,
        ):
            deadline = time.monotonic() + 120
            online: list[str] = []
            while len(online) < 2:  # each worker registers with the pool once it polls
                assert time.monotonic() < deadline, f"workers online: {online}"
                online = [
                    w.name
                    for w in client.read_workers_for_work_pool(WORK_POOL)
                    if str(w.status).endswith("ONLINE")
                ]
                time.sleep(0.5)
            run = run_deployment(
                "sync-partner/sync-partner",
                parameters={"partner_id": "acme"},
                timeout=240,
                poll_interval=2,
            )
            assert run.state.is_completed(), (run.state, "".join(output))
    finally:
        serve.send_signal(signal.SIGTERM)
        rest = serve.communicate(timeout=120)[0]
    assert serve.returncode == 0, rest
    for pid in workers:
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid), f"worker {pid} outlived `dealsync serve`"
