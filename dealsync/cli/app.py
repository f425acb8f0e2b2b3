"""The `dealsync` command."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from dealsync.cli import inspecting
from dealsync.cli.common import (
    ConfigOption,
    PartnerOption,
    console,
    err_console,
    fail,
    load,
)
from dealsync.cli.deletions import deletions_app
from dealsync.cli.output import JsonOption
from dealsync.cli.receive import receive
from sandbox.cli import sandbox_app

app = typer.Typer(
    help="Keep shared deals in sync between partner CRMs and the vendor CRM.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")
mapping_app = typer.Typer(help="Check mapping files.", no_args_is_help=True)
quarantine_app = typer.Typer(
    help="Records kept out of syncs, with their reasons.", no_args_is_help=True
)
app.add_typer(mapping_app, name="mapping")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(deletions_app, name="deletions")
app.command()(receive)


@mapping_app.command("check")
def mapping_check(file: Annotated[Path, typer.Argument(help="The mapping file to check.")]) -> None:
    """Check a mapping file against the schema and the rules; print every problem with its line."""
    from dealsync.mapping import load_mapping, load_notes_mapping
    from dealsync.mapping_check import check_mapping

    data, problems = check_mapping(file)
    if problems:
        for problem in problems:
            err_console.print(Text(str(problem), style="red"))
        raise typer.Exit(1)
    mapping = load_notes_mapping(file) if data.get("object") == "notes" else load_mapping(file)
    flowing = len(mapping.synced_fields())
    console.print(
        f"[green]OK[/green] {file}: {len(mapping.fields)} fields ({flowing} synced), key property {mapping.key('vendor')}"
    )


@app.command()
def init(config: ConfigOption = None) -> None:
    """Create the ledger and the custom properties the mappings need on every portal (idempotent)."""
    from rich.table import Table

    from dealsync.mapping_check import MappingError
    from dealsync.setup import prepare_portals

    loaded, _ledger = load(config)
    table = Table(title="dealsync init")
    for column in ("portal", "object", "created", "already there"):
        table.add_column(column)
    try:
        prepared = prepare_portals(loaded)
    except MappingError as exc:
        raise fail(f"mapping:\n{exc}") from None
    except Exception as exc:
        raise fail(f"init could not prepare a portal: {exc}", 1) from None
    for row in prepared:
        table.add_row(
            row.portal, row.object_type, ", ".join(row.created) or "-", str(row.already_there)
        )
    console.print(table)
    from dealsync.ledger.repo import redacted

    console.print(f"Ledger ready at {redacted(loaded.ledger_url)}")


@app.command()
def run(
    config: ConfigOption = None,
    partner: PartnerOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; write nothing anywhere.")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Ignore cursors: compare every record (full resync).")
    ] = False,
    allow_mass_deletion: Annotated[
        bool, typer.Option(help="Release the deletion brake for this run.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Sync shared deals now: every partner, or one. Exit 0 when every run completed (even with quarantine)."""
    from dealsync.cli.runner import run_partners

    loaded, ledger = load(config)
    ids = [partner] if partner else [p.id for p in loaded.partners]
    code = run_partners(
        loaded,
        ledger,
        ids,
        dry_run,
        full,
        allow_mass_deletion,
        console,
        err_console,
        as_json=as_json,
    )
    if code:
        raise typer.Exit(code)


# Read-only commands (what a run did, whether a run would work) live in inspecting.py.
app.command()(inspecting.check)
app.command()(inspecting.status)
app.command()(inspecting.conflicts)
quarantine_app.command("list")(inspecting.quarantine_list)


@quarantine_app.command("retry")
def quarantine_retry(config: ConfigOption = None, partner: PartnerOption = None) -> None:
    """Retry quarantined records now, including those waiting for a change (after fixing what
    the record's reason names outside the record: a portal's property, an owner)."""
    from dealsync.cli.runner import run_partners

    loaded, ledger = load(config)
    if partner and partner not in {p.id for p in loaded.partners}:
        raise fail(f"{loaded.path}: partners: no partner {partner!r}; see `dealsync status`.")
    ledger.retry_waiting(partner)
    pending = ledger.quarantine_pairs()
    ids = [p for p in ([partner] if partner else [p.id for p in loaded.partners]) if pending.get(p)]
    if not ids:
        console.print("Nothing in quarantine.")
        return
    if code := run_partners(loaded, ledger, ids, False, False, False, console, err_console):
        raise typer.Exit(code)


@app.command()
def serve(
    config: ConfigOption = None,
    port: Annotated[int, typer.Option(help="Port of the Prefect server and UI.")] = 4200,
    sandboxes: Annotated[
        bool,
        typer.Option(
            "--sandboxes", help="Also start a local vendor and partner sandbox CRM and use them."
        ),
    ] = False,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the Prefect server and the sandboxes keep their files (default: ./.dealsync)."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Process workers on the work pool: runs of different partners overlap across "
            "them (never two of one partner), sharing the vendor portal's budget.",
        ),
    ] = 1,
    runs_per_worker: Annotated[
        int,
        typer.Option(min=1, help="Flow runs each worker runs at once (each is a process)."),
    ] = 4,
    receiver_port: Annotated[
        int,
        typer.Option(
            help="Port of the webhook receiver, started when a connection has a webhook_secret "
            "(always with --sandboxes, whose portals then deliver their deal events to it)."
        ),
    ] = 8787,
) -> None:
    """Start a Prefect server, deploy prefect.yaml, start the workers and the webhook receiver
    (Ctrl-C stops them all)."""
    from dealsync.cli.serve import PROJECT_DIR, stop_on_signals

    with stop_on_signals():
        try:
            _serve(
                config,
                port,
                sandboxes,
                state_dir or PROJECT_DIR / ".dealsync",
                workers,
                runs_per_worker,
                receiver_port,
            )
        except KeyboardInterrupt:
            console.print("Stopped the worker, the server and the sandboxes.")


def _serve(
    config: Path | None,
    port: int,
    sandboxes: bool,
    state: Path,
    workers: int = 1,
    runs_per_worker: int = 4,
    receiver_port: int = 8787,
) -> None:
    import secrets
    from contextlib import ExitStack

    from dealsync.cli.serve import PrefectStack, write_local_config
    from sandbox.server import SandboxProcess

    with ExitStack() as stack:
        sandbox_portals: list[SandboxProcess] = []
        webhook_secret = secrets.token_urlsafe(24)
        if sandboxes:
            folder = state / "serve"
            folder.mkdir(parents=True, exist_ok=True)
            vendor = stack.enter_context(
                SandboxProcess(db_path=folder / "vendor.db", token="local-vendor")
            )
            acme = stack.enter_context(
                SandboxProcess(db_path=folder / "acme.db", token="local-acme")
            )
            sandbox_portals = [vendor, acme]
            config = write_local_config(
                folder,
                vendor.base_url,
                vendor.token,
                {"acme": (acme.base_url, acme.token)},
                webhook_secret,
            )
            console.print(
                f"sandboxes: vendor {vendor.base_url}, partner acme {acme.base_url}; config {config}"
            )
        loaded, _ledger = load(config)
        from dealsync.setup import prepare_portals

        prepare_portals(loaded)
        env = {"DEALSYNC_CONFIG": str(loaded.path.resolve())}
        env.update({k: v for k, v in os.environ.items() if k.startswith("LOCAL_")})
        prefect = stack.enter_context(
            PrefectStack(home=state / "prefect", port=port, worker_env=env)
        )
        with console.status("Starting the Prefect server (20-30 s)..."):
            prefect.start_server()
        with console.status("Creating the work pool and deploying prefect.yaml..."):
            prefect.deploy()
        for _ in range(workers):
            prefect.start_worker(runs_per_worker)
        hooks = "No connection has a webhook_secret: changes wait for the schedule."
        crms = [loaded.vendor_crm, *(p.crm for p in loaded.partners)]
        if any(crm.webhook_secret_ref for crm in crms):
            with console.status("Starting the webhook receiver..."):
                target = prefect.start_receiver(loaded.path.resolve(), receiver_port)
            for portal in sandbox_portals:
                portal.admin(
                    "POST", "webhooks", json={"targetUrl": target, "secret": webhook_secret}
                )
            hooks = f"Webhooks: {target} wakes a partner's sync on a change" + (
                " (the sandboxes deliver there)." if sandbox_portals else "."
            )
        console.print(
            f"[green]Ready.[/green] Open http://127.0.0.1:{port}, Deployments, sync-partner, Run (custom run for "
            f"parameters). sync-all-partners runs every 15 minutes, audit nightly. {hooks} Logs: {state / 'prefect'}. "
            "Ctrl-C (or SIGTERM) stops everything."
        )
        try:
            signal.pause()
        except KeyboardInterrupt:
            console.print("Stopping the worker, the server and the sandboxes...")
            raise


@app.command()
def demo(
    bottlecrm: Annotated[
        bool,
        typer.Option(
            "--bottlecrm", help="Add partner beta on a real BottleCRM (needs `make bottlecrm`)."
        ),
    ] = False,
) -> None:
    """A guided tour on local sandbox CRMs: registrations, a conversion, notes, files, deletions."""
    from dealsync.cli.demo import run_demo

    try:
        run_demo(console, with_bottlecrm=bottlecrm)
    except KeyboardInterrupt:
        err_console.print("Interrupted: the sandboxes were stopped.")
        raise typer.Exit(130) from None


if __name__ == "__main__":
    app()
