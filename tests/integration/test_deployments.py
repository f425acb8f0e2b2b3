"""End to end on Prefect: a real server, deployments from prefect.yaml, a worker, a Run as from the UI."""

from __future__ import annotations

import time
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
)
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from dealsync.cli.serve import PrefectStack
from sandbox.server import free_port
from tests.integration.test_notes import _note, _notes_on
from tests.integration.test_sync import SHARED, _twin


def test_a_deployed_sync_partner_run_completes_with_artifacts(pair, tmp_path: Path):
    reg = pair.create("partner", dealname="Deployed run", **SHARED)
    _note(pair, "partner", reg, "<p>From the partner</p>", dealsync_shared="true")
    env = {
        "DEALSYNC_CONFIG": str(pair.config),
        "TEST_VENDOR_TOKEN": pair.servers["vendor"].token,
        "TEST_ACME_TOKEN": pair.servers["partner"].token,
    }
    with PrefectStack(
        home=tmp_path / "prefect", port=free_port(), worker_env=env, ui=False, poll_seconds=2
    ) as stack:
        stack.start_server()
        stack.deploy()
        stack.start_worker()
        with (
            temporary_settings(updates={PREFECT_API_URL: stack.api_url}),
            get_client(sync_client=True) as client,
        ):
            deployments = {d.name: d for d in client.read_deployments()}
            assert set(deployments) == {
                "sync-partner",
                "sync-all-partners",
                "sync-partners",
                "audit",
            }
            assert deployments["sync-all-partners"].schedules[0].schedule.cron == "*/15 * * * *"
            stack.pause_schedules()  # no runs of the clock's own (at :00, :15, :30, :45)
            # What the UI's Run button does: a flow run of the deployment with the form's parameters.
            run = run_deployment(
                "sync-partner/sync-partner",
                parameters={"partner_id": "acme", "objects": ["deals", "notes", "files"]},
                timeout=240,
                poll_interval=2,
            )
            assert run.state.is_completed(), (
                run.state,
                (tmp_path / "prefect" / "worker.log").read_text()[-3000:],
            )
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            )
            keys = {a.key for a in artifacts}
            assert {
                "dealsync-acme-summary",
                "dealsync-acme-changes",
                "dealsync-acme-progress",
            } <= keys
            summary = next(a for a in artifacts if a.key == "dealsync-acme-summary").data
            assert "| created | 0 | 1 |" in summary
            everything = " ".join(str(a.data) for a in artifacts)
            assert (
                env["TEST_VENDOR_TOKEN"] not in everything
                and env["TEST_ACME_TOKEN"] not in everything
            )

            # The scheduled fan-out: the partners with work in sync-partners batches, picked up
            # by the worker, each partner a subflow of its own.
            fan_out = run_deployment(
                "sync-all-partners/sync-all-partners", timeout=240, poll_interval=2
            )
            assert fan_out.state.is_completed(), fan_out.state
            started_by_fan_out = {
                t.id
                for t in client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[fan_out.id]))
                )
            }
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                runs = [
                    r
                    for r in client.read_flow_runs(
                        deployment_filter=DeploymentFilter(
                            id=DeploymentFilterId(any_=[deployments["sync-partners"].id])
                        )
                    )
                    if r.parent_task_run_id in started_by_fan_out
                ]
                if len(runs) == 1 and all(r.state.is_final() for r in runs):
                    break
                time.sleep(2)
            # One batch (acme had its own writes to read back), picked up by the worker.
            assert len(runs) == 1 and all(r.state.is_completed() for r in runs), [
                r.state for r in runs
            ]
            members = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[runs[0].id])
                )
            )
            assert [(m.name, m.state.name) for m in members] == [("acme", "Completed")]
    vid = _twin(pair, "vendor", f"acme:partner:{reg}")["id"]
    assert [n["hs_note_body"] for n in _notes_on(pair, "vendor", vid)] == [
        "<p>From the partner</p>"
    ]
    assert (
        pair.deal("partner", reg, "dealsync_vendor_stage")["dealsync_vendor_stage"]
        == "Appointment scheduled"
    )
