"""Webhooks end to end on Prefect: a change in a sandbox reaches its twin with nobody pressing Run
(sandbox -> signed delivery -> `dealsync receive` -> Prefect event -> prefect.yaml's trigger ->
worker -> sync-partner), changes that arrive while a run is going start at most one run after it,
and partners woken together run in one sync-partners batch."""

from __future__ import annotations

import os
import time
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.concurrency.sync import concurrency
from prefect.settings import PREFECT_API_URL, temporary_settings

from dealsync.cli.serve import PrefectStack
from flows.pair_runs import ensure_pair_limit, pair_limit_name
from flows.wake import wake_partner, wake_partners
from sandbox.server import free_port
from tests.integration import test_isolation
from tests.integration.test_sync import SHARED, _twin
from tests.integration.test_webhooks import SECRETS, _with_webhooks

more_partners = test_isolation.more_partners  # the fixtures of three partners on one vendor
three = test_isolation.three


def _until(condition, what: str, timeout_s: float = 240.0, on_timeout=lambda: None):
    """Wait for a condition (not for a time); fail naming it (and what `on_timeout` tells)."""
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        assert time.monotonic() < deadline, f"never: {what} {on_timeout()}"
        time.sleep(1)
    return found


def _woken_runs(client, deployment: str = "sync-partner") -> list:
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment]))
    )
    return [r for r in runs if r.parameters.get("after_running")]


def test_a_change_reaches_its_twin_through_the_webhook_trigger(three, tmp_path: Path, monkeypatch):
    pair = three["acme"]
    _with_webhooks(pair, monkeypatch)
    env = {
        "DEALSYNC_CONFIG": str(pair.config),
        **{k: v for k, v in os.environ.items() if k.startswith("TEST_")},
    }
    with PrefectStack(
        home=tmp_path / "prefect", port=free_port(), worker_env=env, ui=False, poll_seconds=1
    ) as stack:
        stack.start_server()
        stack.deploy()
        stack.start_worker()
        with (
            temporary_settings(updates={PREFECT_API_URL: stack.api_url}),
            get_client(sync_client=True) as client,
        ):
            stack.pause_schedules()  # only webhooks start runs in this test
            url = stack.start_receiver(pair.config, free_port())
            for side, secret in (("vendor", SECRETS["vendor"]), ("partner", SECRETS["acme"])):
                pair.servers[side].admin(
                    "POST", "webhooks", json={"targetUrl": url, "secret": secret}
                )

            reg = pair.create("partner", dealname="Woken by a webhook", **SHARED)
            twin = _until(
                lambda: [
                    d
                    for d in pair.deals("vendor", "dealname")
                    if d["dealname"] == "Woken by a webhook"
                ],
                "the registration's twin on the vendor side",
            )[0]
            pair.edit("vendor", twin["id"], closedate="2027-03-01")

            def close_date() -> str:
                return str((pair.deal("partner", reg, "closedate") or {}).get("closedate") or "")

            _until(
                lambda: close_date().startswith("2027-03-01"),
                "the vendor's close date on the partner's deal",
            )
            assert _twin(pair, "vendor", f"acme:partner:{reg}")["id"] == twin["id"]
            _until(
                lambda: all(r.state.is_final() for r in _woken_runs(client)),
                "the woken runs ending",
            )
            assert all(r.state.is_completed() for r in _woken_runs(client))

            for side in ("vendor", "partner"):  # from here on, only this test wakes acme
                pair.servers[side].admin("DELETE", "webhooks")

            # While a run holds the pair, three more wakes start one run that waits, not three.
            ensure_pair_limit("acme")
            before = {r.id for r in _woken_runs(client)}
            with concurrency(pair_limit_name("acme"), occupy=1, strict=True):
                for _ in range(3):
                    wake_partner("acme", {"deal.propertyChange": 1})

                def settled() -> list | None:
                    new = [r for r in _woken_runs(client) if r.id not in before]
                    waiting = [r for r in new if r.state.is_running()]
                    coalesced = [
                        r
                        for r in new
                        if r.state.is_completed() and "already waits" in (r.state.message or "")
                    ]
                    return new if len(waiting) == 1 and len(coalesced) >= 2 else None

                new = _until(
                    settled,
                    "two woken runs returning, one waiting",
                    on_timeout=lambda: [
                        (r.state.name, r.state.message)
                        for r in _woken_runs(client)
                        if r.id not in before
                    ],
                )
            waiter = next(r for r in new if r.state.is_running())
            _until(
                lambda: client.read_flow_run(waiter.id).state.is_final(), "the waiting run ending"
            )
            assert client.read_flow_run(waiter.id).state.is_completed()

            # Partners woken together run in one batch, after their running runs.
            regs = {
                name: three[name].create("partner", dealname=f"{name} woken together", **SHARED)
                for name in ("globex", "initech")
            }
            wake_partners({name: {"deal.creation": 1} for name in regs})
            batch = _until(
                lambda: [
                    r
                    for r in _woken_runs(client, "sync-partners")
                    if r.state.is_final() and r.parameters.get("after_running")
                ],
                "the woken batch ending",
            )[0]
            assert batch.state.is_completed(), batch.state.message
            assert sorted(batch.parameters["partner_ids"]) == ["globex", "initech"]
            for name, reg in regs.items():
                _twin(three[name], "vendor", f"{name}:partner:{reg}")
