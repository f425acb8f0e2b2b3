"""Run pairs from the CLI: as Prefect flow runs when an API is configured, else the same steps directly."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from connectors.errors import ConnectorError
from dealsync.cli.output import print_json, run_json
from dealsync.cli.report import print_report
from dealsync.config import Config, ConfigError
from dealsync.context import RunContext, open_context
from dealsync.isolation import IsolationError
from dealsync.ledger import Ledger
from dealsync.ledger.fencing import LeaseLost
from dealsync.ledger.lease import PairBusy
from dealsync.mapping_check import MappingError
from dealsync.pipeline.hub_read import HubUnavailable, read_for_cycle
from dealsync.run import run_pair
from validation.quarantine import SchemaLevelError

# What a run can fail with that the user can act on; anything else is a bug and shows its traceback.
EXPECTED_FAILURES = (
    ConfigError,
    MappingError,
    ConnectorError,
    SchemaLevelError,
    IsolationError,
    PairBusy,
    LeaseLost,
    HubUnavailable,
)
# Of those, the ones that say the configuration (or a mapping) is wrong: exit code 2, not 1.
CONFIGURATION_FAILURES = (ConfigError, MappingError)


def _read_vendor_once(
    config: Config,
    ledger: Ledger,
    partner_ids: list[str],
    solo: bool,
    err_console: Console,
) -> int | None:
    """Several partners share one read of the vendor (each run alone reads it for itself)."""
    if solo or len(partner_ids) < 2:
        return None
    try:
        return read_for_cycle(config, ledger)
    except EXPECTED_FAILURES as exc:  # each run will say it again, where it belongs
        err_console.print(
            f"[yellow]the vendor could not be read once for all:[/yellow] {escape(str(exc))}"
        )
        return None


def run_partners(
    config: Config,
    ledger: Ledger,
    partner_ids: list[str],
    dry_run: bool,
    full_resync: bool,
    allow_mass_deletion: bool,
    console: Console,
    err_console: Console,
    show_plan: bool = False,
    as_json: bool = False,
) -> int:
    """Run each partner in turn; print its report (or, `as_json`, one JSON document of every run).
    Returns the exit code: 0 when every run completed, 2 when a partner's configuration or mapping
    is wrong, else 1 when a run could not complete."""
    failed = 0
    misconfigured = 0
    runs: list[dict[str, Any]] = []
    read_since = _read_vendor_once(config, ledger, partner_ids, dry_run or full_resync, err_console)

    def context(
        partner_id: str, progress: Callable[[str, int, int], None] | None = None
    ) -> RunContext:
        return open_context(
            config,
            partner_id,
            ledger,
            dry_run,
            full_resync,
            allow_mass_deletion,
            progress,
            hub_since_ms=read_since,
        )

    for partner_id in partner_ids:
        try:
            if os.environ.get("PREFECT_API_URL"):
                from flows.sync import sync_partner

                summary = sync_partner(
                    partner_id,
                    dry_run=dry_run,
                    full_resync=full_resync,
                    allow_mass_deletion=allow_mass_deletion,
                    config_path=str(config.path),
                    vendor_read_since_ms=read_since,
                )
                runs.append({"partner": partner_id, "status": "completed", **summary})
                if not as_json:
                    console.print(f"partner {partner_id}: Prefect flow run completed: {summary}")
                continue
            if as_json:
                report = run_pair(context(partner_id))
                runs.append(run_json(report))
                continue
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=True,
            ) as bars:
                task = bars.add_task(f"partner {partner_id}: writing", total=None)

                def progress(
                    what: str,
                    done: int,
                    total: int,
                    task: TaskID = task,
                    bars: Progress = bars,
                    pid: str = partner_id,
                ) -> None:
                    bars.update(
                        task,
                        description=f"partner {pid}: {what}",
                        completed=done,
                        total=total,
                    )

                report = run_pair(context(partner_id, progress))
            print_report(console, report, show_plan=dry_run or show_plan)
        except EXPECTED_FAILURES as exc:
            failed += 1
            misconfigured += isinstance(exc, CONFIGURATION_FAILURES)
            runs.append({"partner": partner_id, "status": "failed", "error": str(exc)})
            err_console.print(f"[red]partner {partner_id}: run failed:[/red] {escape(str(exc))}")
    code = 2 if misconfigured else int(failed > 0)
    if as_json:
        print_json({"runs": runs, "exit_code": code})
    return code
