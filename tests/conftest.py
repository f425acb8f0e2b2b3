"""Shared fixtures: real sandbox servers started by the tests themselves."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from sandbox.salesforce.server import SalesforceProcess
from sandbox.server import SandboxProcess
from sandbox.traffic import Limits

# Rich tables in CLI output wrap to the terminal; tests read them whole.
os.environ.setdefault("COLUMNS", "240")

# Tests that are not about rate limits or search lag run against a roomy, instant sandbox.
ROOMY = Limits(per_interval=100_000, search_per_second=10_000, search_lag_ms=0)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxProcess]:
    """One roomy sandbox for the whole session; each test starts from a reset portal."""
    with SandboxProcess(limits=ROOMY) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxProcess) -> SandboxProcess:
    """The session sandbox, reset to empty with no faults and zeroed request counts."""
    sandbox_server.admin("POST", "reset")
    return sandbox_server


@pytest.fixture
def api(sandbox: SandboxProcess):
    """A raw `requests` caller for the sandbox: api(method, path, **kwargs) -> Response."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sandbox.token}"

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return session.request(method, f"{sandbox.base_url}{path}", timeout=60, **kwargs)

    return call


@pytest.fixture(scope="session")
def salesforce_server() -> Iterator[SalesforceProcess]:
    """One Salesforce sandbox for the whole session; each test starts from a fresh org."""
    with SalesforceProcess() as server:
        yield server


@pytest.fixture
def salesforce(salesforce_server: SalesforceProcess) -> SalesforceProcess:
    """The session's Salesforce sandbox with a fresh org: Salesforce's own fields, its admin user."""
    salesforce_server.admin("DELETE", "org")
    return salesforce_server
