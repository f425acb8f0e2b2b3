"""A real BottleCRM server for tests and the demo: from a migrated template database in seconds.

`make bottlecrm` installs BottleCRM (django-crm 1.35.0, Python 3.12, its own venv in `.bottlecrm/`) and
migrates a template SQLite database once (3-4 minutes). Each server copies the template, bootstraps an
org with an ADMIN and two USER profiles and a personal access token, and serves it with gunicorn.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from sandbox.server import free_port

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".bottlecrm"
VENV = HOME / "venv"
TEMPLATE_DB = HOME / "template.db"
SETTINGS_DIR = Path(__file__).resolve().parent
SETTINGS_MODULE = "dealsync_bottlecrm_settings"


class BottleCrmMissing(RuntimeError):
    """BottleCRM is not installed here: `make bottlecrm` installs it."""


def _env(db: Path, media: Path) -> dict[str, str]:
    return {
        **os.environ,
        "BOTTLECRM_DB": str(db),
        "BOTTLECRM_MEDIA": str(media),
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "PYTHONPATH": str(SETTINGS_DIR),
    }


@dataclass
class BottleCrmServer:
    """One BottleCRM org behind gunicorn on a free local port."""

    host: str = "127.0.0.1"
    port: int = 0
    org_name: str = "Partner org"
    token: str = ""
    profiles: list[dict] = field(default_factory=list)
    folder: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        """The server's root URL."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 90.0) -> BottleCrmServer:
        """Copy the template, bootstrap the org, start gunicorn, wait for /healthz/."""
        if not (VENV / "bin" / "gunicorn").exists() or not TEMPLATE_DB.exists():
            raise BottleCrmMissing(
                f"BottleCRM is not installed in {HOME}: run `make bottlecrm` (about 5 minutes, once)."
            )
        self.folder = Path(tempfile.mkdtemp(prefix="bottlecrm-"))
        db, media = self.folder / "db.sqlite3", self.folder / "media"
        media.mkdir()
        shutil.copyfile(TEMPLATE_DB, db)
        env = {**_env(db, media), "BOTTLECRM_ORG": self.org_name}
        with (SETTINGS_DIR / "bootstrap.py").open() as script:
            result = subprocess.run(
                [str(VENV / "bin" / "django-admin"), "shell"],
                stdin=script,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
        line = next(
            (x for x in result.stdout.splitlines() if x.startswith("DEALSYNC_BOOTSTRAP ")), None
        )
        if result.returncode != 0 or line is None:
            self.stop()
            raise RuntimeError(
                f"BottleCRM bootstrap failed ({result.returncode}): {result.stderr[-2000:]}"
            )
        facts = json.loads(line.split(" ", 1)[1])
        self.token, self.profiles = facts["token"], facts["profiles"]
        self.port = self.port or free_port(self.host)
        log = (self.folder / "gunicorn.log").open("ab")
        # --no-control-socket: gunicorn's default control socket is one path shared by every server.
        command = [
            str(VENV / "bin" / "gunicorn"),
            "crm.wsgi:application",
            "-b",
            f"{self.host}:{self.port}",
            "-w",
            "2",
            "--no-control-socket",
        ]
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log_tail = (self.folder / "gunicorn.log").read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"gunicorn exited:\n{log_tail}")
            try:
                if requests.get(f"{self.base_url}/healthz/", timeout=(2, 20)).status_code == 200:
                    return self
            except requests.RequestException:
                pass  # not listening yet, or Django still importing on a busy machine
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"BottleCRM on {self.base_url} did not answer within {timeout_s:.0f} s")

    def stop(self) -> None:
        """Stop gunicorn and forget the database."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> BottleCrmServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()
