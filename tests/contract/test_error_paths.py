"""How the HubSpot connector handles each kind of failure, driven by the sandbox's fault injection."""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from connectors.base import WriteInput
from connectors.errors import AuthError, RetriesExhausted
from connectors.hubspot import HubSpotConnector
from sandbox.server import SandboxProcess


@pytest.fixture
def connector(sandbox) -> HubSpotConnector:
    return HubSpotConnector(sandbox.base_url, sandbox.token, connection="vendor", lookback_ms=0)


def _fault(sandbox, **spec) -> None:
    sandbox.admin("POST", "faults", json=spec)


def _seed(connector, count=3) -> list[str]:
    outcomes = connector.create(
        "deals", [WriteInput(f"r{i}", {"dealname": f"d{i}"}) for i in range(count)]
    )
    return [o.record.id for o in outcomes]


@pytest.mark.parametrize("status", [429, 502, 503, 504, 524])
def test_transient_statuses_are_retried(sandbox, connector, status):
    ids = _seed(connector)
    _fault(sandbox, method="POST", path_regex="batch/read", status=status, count=2)
    found = connector.read("deals", ids, ["dealname"])
    assert set(found) == set(ids)
    assert connector.http.retries == 2
    assert sandbox.admin("GET", "requests").json()["by_status"][str(status)] == 2


def test_locked_waits_at_least_two_seconds(sandbox, connector):
    ids = _seed(connector)
    _fault(sandbox, method="POST", path_regex="batch/update", status=423, count=1)
    started = time.monotonic()
    outcomes = connector.update("deals", [WriteInput("a", {"dealname": "z"}, id=ids[0])])
    assert outcomes[0].ok and time.monotonic() - started >= 2.0


def test_477_honours_retry_after(sandbox, connector):
    _fault(sandbox, method="GET", path_regex="owners", status=477, count=1, retry_after_s=1)
    started = time.monotonic()
    assert connector.owners() == []
    assert time.monotonic() - started >= 1.0


def test_timeouts_are_retried(sandbox):
    connector = HubSpotConnector(
        sandbox.base_url, sandbox.token, connection="slow", timeout_s=(2.0, 0.3)
    )
    _fault(sandbox, method="GET", path_regex="owners", status=None, latency_ms=800, count=1)
    assert connector.owners() == []
    assert connector.http.retries == 1


def test_retries_are_bounded_and_leave_the_records_retriable(sandbox):
    connector = HubSpotConnector(
        sandbox.base_url, sandbox.token, connection="vendor", max_attempts=3
    )
    _fault(sandbox, method="POST", path_regex="batch/create", status=503)
    outcomes = connector.create(
        "deals", [WriteInput("a", {"dealname": "a"}), WriteInput("b", {"dealname": "b"})]
    )
    assert [o.ok for o in outcomes] == [False, False]
    assert all(isinstance(o.error, RetriesExhausted) and o.error.retriable for o in outcomes)
    assert sandbox.admin("GET", "requests").json()["by_status"]["503"] == 3


def test_other_4xx_fail_the_record_with_hubspots_message(sandbox, connector):
    _fault(sandbox, method="POST", path_regex="batch/update", status=409, count=1)
    ids = _seed(connector, 1)
    outcomes = connector.update("deals", [WriteInput("a", {"dealname": "z"}, id=ids[0])])
    assert not outcomes[0].ok and "409" in str(outcomes[0].error)
    assert outcomes[0].error.retriable is False


def test_401_stops_with_a_message_naming_the_connection_and_never_the_token(sandbox, caplog):
    secret = "pat-na1-this-is-a-secret-token"
    connector = HubSpotConnector(sandbox.base_url, secret, connection="partner acme")
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as failure:
        connector.create("deals", [WriteInput("a", {"dealname": "a"})])
    message = str(failure.value)
    assert "partner acme" in message and "token" in message and "401" in message
    assert secret not in message and secret not in caplog.text


def test_retry_logs_never_show_the_token(sandbox, connector, caplog):
    _fault(sandbox, method="GET", path_regex="owners", status=503, count=1)
    with caplog.at_level(logging.WARNING):
        connector.owners()
    assert "retry" in caplog.text and sandbox.token not in caplog.text


def test_a_big_pull_and_push_under_default_limits_gets_no_429():
    with SandboxProcess() as server:  # HubSpot's default limits: 190 / 10 s, search 5 / s
        connector = HubSpotConnector(
            server.base_url, server.token, connection="limits", lookback_ms=0
        )
        inputs = [
            WriteInput(f"r{i}", {"dealname": f"deal {i}", "amount": str(i)}) for i in range(6_000)
        ]
        created = connector.create("deals", inputs)
        assert all(o.ok for o in created)
        ids = [o.record.id for o in created]
        updated = connector.update("deals", [WriteInput(i, {"amount": "1"}, id=i) for i in ids])
        assert all(o.ok for o in updated)
        assert len(connector.read("deals", ids, ["amount"])) == 6_000
        time.sleep(0.6)  # the default search lag
        pulled = {
            r.id for page in connector.pull_changes("deals", 1, ["amount"]) for r in page.records
        }
        assert pulled == set(ids)
        counts = server.admin("GET", "requests").json()
        assert counts["total"] >= 210  # more than one 10-second budget's worth of calls
        assert counts["rate_limited"] == 0, counts


def test_a_streamed_upload_survives_a_retry(sandbox, connector, tmp_path):
    content = bytes(range(256)) * 2048
    path = tmp_path / "big.bin"
    path.write_bytes(content)
    _fault(sandbox, method="POST", path_regex="/files/v3/files$", status=503, count=1)
    with path.open("rb") as handle:
        info = connector.upload_file("big.bin", handle, "/retry")
    assert info.size == len(content) and connector.http.retries == 1
    assert b"".join(connector.download_file(info.id)) == content


@contextmanager
def _forward_proxy() -> Iterator[tuple[str, list[str]]]:
    """A plain HTTP forward proxy on a free port; yields its URL and the URLs it forwarded."""
    forwarded: list[str] = []

    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            target = urlsplit(self.path)  # a proxy is asked for the absolute URL
            forwarded.append(self.path)
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
            upstream.request(
                "GET", target.path + (f"?{target.query}" if target.query else ""), headers=headers
            )
            answer = upstream.getresponse()
            body = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            upstream.close()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", forwarded
    finally:
        server.shutdown()
        thread.join()


def test_calls_go_through_the_environments_proxy_unless_no_proxy_names_the_host(
    sandbox, monkeypatch
):
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with _forward_proxy() as (proxy, forwarded):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        through = HubSpotConnector(sandbox.base_url, sandbox.token, connection="proxied")
        assert through.owners() == [] and through.owners() == []
        assert [url.split("?")[0] for url in forwarded] == [
            f"{sandbox.base_url}/crm/v3/owners/"
        ] * 2
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        direct = HubSpotConnector(sandbox.base_url, sandbox.token, connection="direct")
        assert direct.owners() == [] and len(forwarded) == 2
