"""Several hosts on one machine: network namespaces, each with its own hostname and a veth link to
this one, where the services they share listen (a Prefect server, PostgreSQL, the CRMs). A host
reaches them as `dealsync-host` (its /etc/hosts, through `ip netns exec`), so every host's config
names the same URLs, as machines on one network would. Cutting a host's link cuts it off from all."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SHARED_NAME = "dealsync-host"  # how every host names the machine its services run on
CRM_NAME = "crm-host"  # how every host names the CRMs (an address of their own on this machine)
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/nonexistent"))


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def namespaces_unavailable() -> str | None:
    """Why this machine cannot make network namespaces (None: it can)."""
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed: apt-get install iproute2"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"dsprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"`ip netns add` failed here: {exc.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass
class Host:
    """A host of its own: a network namespace and a hostname, linked to this machine by a veth."""

    name: str  # its hostname (lease holders and flow runs name it)
    netns: str
    outer: str  # the link's end on this machine
    shared_ip: str  # this machine, as the host reaches it
    own_ip: str  # the host, as this machine sees its calls come
    crm_ip: str  # the CRMs, as the host reaches them
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run on this host: in its namespace, under its own hostname."""
        script = f'hostname {self.name} && exec "$@"'
        return [
            "ip",
            "netns",
            "exec",
            self.netns,
            "unshare",
            "--uts",
            "sh",
            "-c",
            script,
            "-",
            *argv,
        ]

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """A long-running process on this host (stopped with the host)."""
        with log.open("ab") as out:
            process = subprocess.Popen(
                self.command(argv),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def cut(self) -> None:
        """Cut the host off from everything (its link down): its processes keep running."""
        _ip("link", "set", self.outer, "down")

    def restore(self) -> None:
        """Link the host up again."""
        _ip("link", "set", self.outer, "up")

    def cut_crms(self) -> None:
        """Make the CRMs unreachable from this host (their address gone); all else still answers."""
        _ip("addr", "del", f"{self.crm_ip}/29", "dev", self.outer)

    def restore_crms(self) -> None:
        """Make the CRMs reachable again."""
        _ip("addr", "add", f"{self.crm_ip}/29", "dev", self.outer)

    def stop(self) -> None:
        """Stop every process started on this host."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in self.processes:
            try:
                process.wait(timeout=5)  # a test's host: no need to wait for a graceful end
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
        self.processes.clear()


@contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    """`count` hosts (host-a, host-b, ...), removed with everything they ran on leaving."""
    tag = secrets.token_hex(2)
    made: list[Host] = []
    try:
        for n in range(count):
            letter = "abcdefgh"[n]
            block = 100 + int(tag, 16) % 100  # 10.<block>.<8n>.0/29: one per host and session
            host = Host(
                f"host-{letter}",
                f"ds{tag}{letter}",
                f"ds{tag}{letter}0",
                f"10.{block}.{8 * n}.1",
                f"10.{block}.{8 * n}.2",
                f"10.{block}.{8 * n}.3",
            )
            inner = f"ds{tag}{letter}1"
            _ip("netns", "add", host.netns)
            made.append(host)
            _ip("link", "add", host.outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", host.netns)
            _ip("addr", "add", f"{host.shared_ip}/29", "dev", host.outer)
            _ip("addr", "add", f"{host.crm_ip}/29", "dev", host.outer)
            _ip("link", "set", host.outer, "up")
            for args in (
                ("addr", "add", f"{host.own_ip}/29", "dev", inner),
                ("link", "set", inner, "up"),
                ("link", "set", "lo", "up"),
            ):
                _ip("netns", "exec", host.netns, "ip", *args)
            etc = Path("/etc/netns") / host.netns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(
                f"127.0.0.1 localhost\n{host.shared_ip} {SHARED_NAME}\n{host.crm_ip} {CRM_NAME}\n"
            )
        yield made
    finally:
        for host in made:
            host.stop()
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
            subprocess.run(["ip", "link", "del", host.outer], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / host.netns, ignore_errors=True)


@dataclass
class PrivatePostgres:
    """A PostgreSQL instance of a test's own (so a test may restart it), listening on every
    address of this machine; trust authentication, superuser `root`."""

    port: int
    # Its own folder, which the postgres user can reach (a test's tmp_path is root's alone).
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dealsync-pg-")))

    def _as_postgres(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True
        )
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")
        return done

    def init(self) -> None:
        """A new cluster in `folder`."""
        shutil.chown(self.folder, "postgres", "postgres")
        data = self.folder / "data"
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "root", "--auth=trust")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '*'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\nfsync = off\n"
            )
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 0.0.0.0/0 trust\n")

    def start(self) -> None:
        """Start it and wait until it answers."""
        data, log = self.folder / "data", self.folder / "server.log"
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop it (`immediate`: as a crash would)."""
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.folder / "data"),
            "-m",
            mode,
            "-w",
            "stop",
            check=False,
        )

    def remove(self) -> None:
        """Stop it and remove its files."""
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, host: str, database: str = "postgres") -> str:
        """Its SQLAlchemy URL, as seen from `host`."""
        return f"postgresql+psycopg://root@{host}:{self.port}/{database}"


def wait_for(condition, what: str, limit_s: float = 300.0, every_s: float = 0.5) -> None:
    """Wait for a condition (never for a time); the limit only ends a test that would hang."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(every_s)
