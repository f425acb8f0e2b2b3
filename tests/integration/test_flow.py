"""The Prefect flows run the same steps as tasks against a real (temporary) Prefect API."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from connectors.base import WriteInput
from flows.sync import sync_all_partners, sync_partner
from tests.integration import test_isolation
from tests.integration.test_notes import _notes_on
from tests.integration.test_run_cost import _no_lookback
from tests.integration.test_sync import SHARED, _twin

more_partners = test_isolation.more_partners  # the fixtures of three partners on one vendor
three = test_isolation.three


@pytest.fixture(scope="module")
def prefect_api():
    """Prefect's temporary API server, started once for this module (it takes 20-30 s here)."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _wait_until_free(limit_name: str) -> None:
    """Wait until a global concurrency limit has no active slot (a condition, not a delay)."""
    with get_client(sync_client=True) as client:
        for _ in range(600):
            if client.read_global_concurrency_limit_by_name(limit_name).active_slots == 0:
                return
            time.sleep(0.1)
    raise AssertionError(f"{limit_name} kept a slot for a minute after its holder released it")


async def _artifacts(key: str) -> list:
    async with get_client() as client:
        return [a for a in await client.read_latest_artifacts() if a.key == key]


async def _task_names(flow_run_id) -> set[str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        return {r.name.split("-")[0] for r in runs}


def test_sync_partner_flow_runs_the_steps_as_tasks_and_leaves_a_report(prefect_api, pair):
    reg = pair.create("partner", dealname="Via Prefect", **SHARED)
    state = sync_partner("acme", config_path=str(pair.config), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["created"]["vendor"] == 1 and summary["quarantined"] == 0
    _twin(pair, "vendor", f"acme:partner:{reg}")
    assert {"pull", "validate", "plan", "push", "commit"} <= asyncio.run(
        _task_names(state.state_details.flow_run_id)
    )
    summary_artifact = asyncio.run(_artifacts("dealsync-acme-summary"))
    assert summary_artifact and "| created | 0 | 1 |" in summary_artifact[0].data
    changes = asyncio.run(_artifacts("dealsync-acme-changes"))
    assert changes and "dealsync_key" in changes[0].data
    progress = asyncio.run(_artifacts("dealsync-acme-progress"))
    assert progress and float(progress[0].data) == 100.0

    # The run's own writes read back ask nothing of another run.
    everything = sync_all_partners(config_path=str(pair.config))
    assert everything["acme"] == "nothing new since its last run: not started"
    # Without a sync-partners deployment, fan-out falls back to running the batches here.
    everything = sync_all_partners(config_path=str(pair.config), look_first=False)
    assert everything["acme"]["created"] == {"partner": 0, "vendor": 0}


def test_tokens_can_come_from_prefect_secret_blocks(prefect_api, pair, monkeypatch):
    from prefect.blocks.system import Secret

    Secret(value=pair.servers["partner"].token).save("acme-partner-token", overwrite=True)
    monkeypatch.delenv("TEST_ACME_TOKEN")
    pair.config.write_text(
        pair.config.read_text().replace("env:TEST_ACME_TOKEN", "acme-partner-token")
    )
    reg = pair.create("partner", dealname="Secret block", **SHARED)
    summary = sync_partner("acme", config_path=str(pair.config))
    assert summary["created"]["vendor"] == 1
    _twin(pair, "vendor", f"acme:partner:{reg}")


def test_a_secret_block_that_does_not_exist_is_named_by_its_key_never_its_value(prefect_api, pair):
    pair.config.write_text(
        pair.config.read_text().replace("env:TEST_ACME_TOKEN", "pasted-token-look-alike")
    )
    result = pair.cli("run", ok=False)
    assert result.exit_code == 2
    assert "partners[0].crm.token: the token reference is neither env:NAME" in result.output
    assert "pasted-token-look-alike" not in result.output


def test_a_second_run_of_the_same_pair_ends_cancelled_with_a_clear_message(
    prefect_api, pair, monkeypatch
):
    from prefect.concurrency.sync import concurrency

    import flows.pair_runs
    from dealsync.config import load_config
    from dealsync.ledger import Ledger
    from dealsync.ledger.lease import PairLease

    flows.pair_runs.ensure_pair_limit("acme")
    # Held here for the whole call: the run's short wait can only end in a timeout.
    usual_wait = flows.pair_runs.PAIR_LIMIT_WAIT_S
    monkeypatch.setattr(flows.pair_runs, "PAIR_LIMIT_WAIT_S", 1.0)
    with concurrency(flows.pair_runs.pair_limit_name("acme"), occupy=1, strict=True):
        state = sync_partner("acme", config_path=str(pair.config), return_state=True)
    assert state.is_cancelled() and "another run held the pair" in state.message
    # The next runs must get the slot: wait until the server shows it free, and wait for it as
    # long as a real run would (a release can take the server a moment to record).
    monkeypatch.setattr(flows.pair_runs, "PAIR_LIMIT_WAIT_S", usual_wait)
    _wait_until_free(flows.pair_runs.pair_limit_name("acme"))

    # The ledger lease guards the pair too (CLI runs, other Prefect servers).
    ledger = Ledger(load_config(pair.config).ledger_url)
    with PairLease(ledger, "acme"):
        state = sync_partner("acme", config_path=str(pair.config), return_state=True)
    assert state.is_cancelled() and "already being synced" in state.message
    assert sync_partner("acme", config_path=str(pair.config), return_state=True).is_completed()


def test_a_bottlecrm_partner_syncs_through_the_same_flow(prefect_api, bottle):
    pair, crm = bottle
    made = crm.create(
        "deals",
        [
            WriteInput(
                "r", {"name": "Beta via Prefect", "stage": "PROSPECTING", "tags": "dealsync-shared"}
            )
        ],
    )
    deal_id = made[0].record.id
    crm.add_comment(deal_id, "Budget confirmed")
    crm.attach(deal_id, "terms.txt", b"net 30")
    state = sync_partner("beta", config_path=str(pair.config), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["created"]["vendor"] == 1
    assert summary["notes"]["vendor notes created"] == 1 and summary["notes"]["files copied"] == 1
    assert {"pull", "sync"} <= asyncio.run(_task_names(state.state_details.flow_run_id))
    twin = _twin(pair, "vendor", f"beta:partner:{deal_id}")["id"]
    bodies = [n["hs_note_body"] for n in _notes_on(pair, "vendor", twin)]
    assert len(bodies) == 2 and any("Budget confirmed" in b for b in bodies)
    assert any("terms.txt" in b for b in bodies)


def test_files_without_notes_is_refused_with_what_to_choose(prefect_api, pair):
    pair.reset_counts()
    state = sync_partner("acme", objects=["files"], config_path=str(pair.config), return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match=r"needs notes too; run with objects=\['notes', 'files'\]"):
        state.result()
    assert pair.writes("vendor") == pair.writes("partner") == 0


def _paused_run_id():
    """The id of the sync-partner flow run that paused (waits for the condition, bounded)."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    paused = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    )
    with get_client(sync_client=True) as client:
        for _ in range(1200):
            runs = client.read_flow_runs(flow_run_filter=paused)
            if runs:
                return runs[0].id
            time.sleep(0.1)
    raise AssertionError("no flow run paused within two minutes")


def _run_in_background(pair) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        outcome["state"] = sync_partner("acme", config_path=str(pair.config), return_state=True)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _held_mass_deletion(pair) -> list[str]:
    """25 shared deals synced, then all deleted on the partner side: the brake holds them."""
    deals = [pair.create("partner", dealname=f"Doomed {n}", **SHARED) for n in range(25)]
    pair.cli("run")
    twins = [_twin(pair, "vendor", f"acme:partner:{d}")["id"] for d in deals]
    for deal in deals:
        pair.archive("partner", deal)
    return twins


def test_held_deletions_pause_the_flow_run_and_an_approval_applies_exactly_them(prefect_api, pair):
    from prefect.flow_runs import resume_flow_run

    twins = _held_mass_deletion(pair)
    thread, outcome = _run_in_background(pair)
    run_id = _paused_run_id()
    assert all(pair.deal("vendor", twin) is not None for twin in twins)  # nothing deleted yet
    resume_flow_run(run_id, run_input={"approve": True})
    thread.join()
    state = outcome["state"]
    assert state.is_completed(), state.message
    assert state.result()["deleted"]["vendor"] == 25
    assert all(pair.deal("vendor", twin) is None for twin in twins)
    assert "approved" in " ".join(state.result()["messages"])


def test_rejected_deletions_stay_held_until_approved_from_the_cli(prefect_api, pair):
    from prefect.flow_runs import resume_flow_run

    twins = _held_mass_deletion(pair)
    thread, outcome = _run_in_background(pair)
    resume_flow_run(_paused_run_id(), run_input={"approve": False})
    thread.join()
    state = outcome["state"]
    assert state.is_completed(), state.message
    assert "Rejected in the Prefect UI" in state.result()["brake"]
    assert all(pair.deal("vendor", twin) is not None for twin in twins)
    listed = json.loads(pair.cli("deletions", "list", "--json").stdout)
    assert listed["count"] == 25 and {d["state"] for d in listed["deletions"]} == {"rejected"}
    assert (
        "25 held deletions of partner acme approved"
        in pair.cli("deletions", "approve", "--partner", "acme").output
    )
    pair.cli("run")  # the approved deletions go ahead; applied, they are no longer held
    assert all(pair.deal("vendor", twin) is None for twin in twins)
    assert json.loads(pair.cli("deletions", "list", "--json").stdout)["count"] == 0


def test_the_fan_out_starts_no_run_for_a_partner_with_nothing_new(prefect_api, pair):
    _no_lookback(pair)
    reg = pair.create("partner", dealname="Looked at first", **SHARED)
    pair.cli("run")
    pair.cli("run")
    quiet = sync_all_partners(config_path=str(pair.config))
    assert quiet == {"acme": "nothing new since its last run: not started"}
    pair.edit("partner", reg, dealsync_pain="Changed since")
    busy = sync_all_partners(config_path=str(pair.config))
    assert busy["acme"]["updated"] == {"partner": 0, "vendor": 1}
    everyone = sync_all_partners(config_path=str(pair.config), look_first=False)
    assert everyone["acme"]["updated"] == {"partner": 0, "vendor": 0}


def test_a_batch_runs_each_partner_as_a_subflow_and_one_failure_stops_no_other(
    prefect_api, three, monkeypatch
):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    from flows.batch import sync_partners

    regs = {
        name: view.create("partner", dealname=f"{name} in a batch", **SHARED)
        for name, view in three.items()
    }
    monkeypatch.delenv("TEST_GLOBEX_TOKEN")  # globex's token is gone: its run fails, alone
    config = str(three["acme"].config)
    state = sync_partners(["acme", "globex", "initech"], config_path=config, return_state=True)
    assert state.is_failed() and "the runs of globex failed" in state.message
    assert "the other 2 partners of this batch completed" in state.message
    for name in ("acme", "initech"):
        _twin(three[name], "vendor", f"{name}:partner:{regs[name]}")
    keys = {d.get("dealsync_key") for d in three["acme"].deals("vendor", "dealsync_key")}
    assert f"globex:partner:{regs['globex']}" not in keys

    async def members():
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(
                        any_=[state.state_details.flow_run_id]
                    )
                )
            )
            return {r.name: r.state.name for r in runs}

    assert asyncio.run(members()) == {
        "acme": "Completed",
        "globex": "Failed",
        "initech": "Completed",
    }
    assert asyncio.run(_artifacts("dealsync-initech-summary"))  # each run leaves its report

    # The cycle spreads the partners with work over its batches (run here: no deployment).
    monkeypatch.setenv("TEST_GLOBEX_TOKEN", three["globex"].servers["partner"].token)
    results = sync_all_partners(config_path=config, batches=2)
    assert results["globex"]["created"]["vendor"] == 1  # its registration, now it can run


def test_a_batch_without_subflows_keeps_each_failure_its_own_and_reports_in_one_table(
    prefect_api, three, monkeypatch
):
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )

    from flows.batch import batch_results, sync_partners

    regs = {
        name: view.create("partner", dealname=f"{name} inline", **SHARED)
        for name, view in three.items()
    }
    monkeypatch.delenv("TEST_GLOBEX_TOKEN")
    config = str(three["acme"].config)
    state = sync_partners(
        ["acme", "globex", "initech"], config_path=config, subflows=False, return_state=True
    )
    assert state.is_failed() and "the runs of globex failed" in state.message
    for name in ("acme", "initech"):
        _twin(three[name], "vendor", f"{name}:partner:{regs[name]}")
    results = batch_results(state)
    assert "TEST_GLOBEX_TOKEN" in results["globex"] and results["acme"]["created"]["vendor"] == 1
    run_id = state.state_details.flow_run_id

    async def children_and_tables():
        async with get_client() as client:
            children = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])
                )
            )
            tables = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
            return children, [a for a in tables if a.type == "table"]

    children, tables = asyncio.run(children_and_tables())
    assert children == []  # no subflow, no per-partner process or run
    table = json.loads(tables[0].data) if isinstance(tables[0].data, str) else tables[0].data
    outcomes = {row["partner"]: row["outcome"] for row in table}
    assert outcomes["acme"] == outcomes["initech"] == "completed"
    assert outcomes["globex"].startswith("Failed: ConfigError")


def test_a_woken_batch_runs_the_free_partners_first_and_the_busy_one_after_its_run(
    prefect_api, three
):
    from prefect.concurrency.sync import concurrency

    from flows.batch import sync_partners
    from flows.pair_runs import ensure_pair_limits, pair_limit_name

    regs = {
        name: view.create("partner", dealname=f"{name} woken", **SHARED)
        for name, view in three.items()
    }
    vendor = three["acme"]

    def twinned() -> set[str]:
        keys = {d.get("dealsync_key") for d in vendor.deals("vendor", "dealsync_key")}
        return {name for name, reg in regs.items() if f"{name}:partner:{reg}" in keys}

    outcome: dict = {}
    batch = threading.Thread(
        target=lambda: outcome.update(
            state=sync_partners(
                ["acme", "globex", "initech"],
                config_path=str(vendor.config),
                after_running=True,
                return_state=True,
            )
        )
    )
    ensure_pair_limits(["acme"])
    with concurrency(pair_limit_name("acme"), occupy=1, strict=True):  # acme's run is going
        batch.start()
        deadline = time.monotonic() + 300
        while twinned() != {"globex", "initech"}:
            assert time.monotonic() < deadline and batch.is_alive(), (twinned(), outcome)
            time.sleep(0.5)
        assert batch.is_alive()  # acme waits behind its running run, holding up no other
    batch.join(timeout=600)
    assert twinned() == {"acme", "globex", "initech"}
    results = outcome["state"].result()
    assert {name: result["created"]["vendor"] for name, result in results.items()} == {
        "acme": 1,
        "globex": 1,
        "initech": 1,
    }


def test_a_batch_runs_the_free_partners_when_a_run_holds_one_of_them(
    prefect_api, three, monkeypatch
):
    from prefect.concurrency.sync import concurrency

    import flows.pair_runs
    from flows.batch import sync_partners

    regs = {
        name: view.create("partner", dealname=f"{name} beside a busy pair", **SHARED)
        for name, view in three.items()
    }
    flows.pair_runs.ensure_pair_limits(["initech"])
    monkeypatch.setattr(flows.pair_runs, "PAIR_LIMIT_WAIT_S", 1.0)
    with concurrency(flows.pair_runs.pair_limit_name("initech"), occupy=1, strict=True):
        state = sync_partners(
            ["acme", "globex", "initech"],
            config_path=str(three["acme"].config),
            subflows=False,
            return_state=True,
        )
    results = state.result()
    assert results["initech"].startswith("Cancelled") and "held the pair" in results["initech"]
    for name in ("acme", "globex"):
        _twin(three[name], "vendor", f"{name}:partner:{regs[name]}")
    keys = {d.get("dealsync_key") for d in three["acme"].deals("vendor", "dealsync_key")}
    assert f"initech:partner:{regs['initech']}" not in keys
    _wait_until_free(flows.pair_runs.pair_limit_name("initech"))
