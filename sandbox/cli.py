"""`python -m sandbox serve` (also `dealsync sandbox serve`): run a sandbox CRM from the command line."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

sandbox_app = typer.Typer(help="The local HubSpot-compatible sandbox CRM.", no_args_is_help=True)
err_console = Console(stderr=True, soft_wrap=True)


@sandbox_app.callback()
def sandbox() -> None:
    """The local HubSpot-compatible sandbox CRM."""


@sandbox_app.command("serve")
def sandbox_serve(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8701,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    db: Annotated[
        Path | None,
        typer.Option(help="SQLite file that keeps state across restarts (default: in memory)."),
    ] = None,
    token: Annotated[
        list[str] | None,
        typer.Option(
            help="Accepted bearer token (repeatable; default: $DEALSYNC_SANDBOX_TOKEN or a random one)."
        ),
    ] = None,
    seed: Annotated[
        str | None, typer.Option(help="Seed an empty portal with a data set: 'demo'.")
    ] = None,
    rate_limit: Annotated[int, typer.Option(help="Requests per token per interval.")] = 190,
    rate_interval_ms: Annotated[
        int, typer.Option(help="The rolling interval of --rate-limit, in milliseconds.")
    ] = 10_000,
    search_rate_limit: Annotated[
        int, typer.Option(help="Search requests per token per second.")
    ] = 5,
    search_lag_ms: Annotated[
        int, typer.Option(help="Records written more recently are not yet found by search.")
    ] = 500,
    quiet: Annotated[bool, typer.Option(help="Print nothing but errors.")] = False,
    portals: Annotated[
        int,
        typer.Option(
            min=1,
            help="Serve this many portals from this one process, each with its own token, data "
            "and rate limits (a request's token picks its portal).",
        ),
    ] = 1,
    portals_file: Annotated[
        Path | None,
        typer.Option(
            help="With --portals: write the URL and each portal's name and token here (JSON)."
        ),
    ] = None,
    crm: Annotated[
        str,
        typer.Option(help="Which CRM to serve: hubspot, or salesforce (over https)."),
    ] = "hubspot",
    state_dir: Annotated[
        Path,
        typer.Option(
            help="With --crm salesforce: where its certificate and connected app's keys are kept "
            "(reused at the next start)."
        ),
    ] = Path(".dealsync/salesforce-sandbox"),
) -> None:
    """Serve a stateful HubSpot-compatible CRM API on HOST:PORT (or a Salesforce one)."""
    from sandbox.server import portal_list, serve, write_portals_file
    from sandbox.traffic import Limits

    if crm not in ("hubspot", "salesforce"):
        err_console.print(f"[red]Unknown CRM {crm!r}.[/red] Use --crm hubspot or --crm salesforce.")
        raise typer.Exit(2)
    if crm == "salesforce":
        if portals > 1 or token or seed or db:
            err_console.print(
                "[red]--crm salesforce serves one org[/red] logged into with its own connected app: "
                "leave out --portals, --token, --seed and --db."
            )
            raise typer.Exit(2)
        _serve_salesforce(host, port, state_dir, quiet)
        return

    limits = Limits(
        per_interval=rate_limit,
        interval_ms=rate_interval_ms,
        search_per_second=search_rate_limit,
        search_lag_ms=search_lag_ms,
    )
    if portals > 1:
        if token or seed:
            err_console.print(
                "[red]--portals gives each portal a token of its own and no seed:[/red] "
                "leave out --token and --seed (the tokens are printed, or written to --portals-file)."
            )
            raise typer.Exit(2)
        made = portal_list(portals, db, portals_file)
        base_url = f"http://{host}:{port}"
        if portals_file is not None:
            write_portals_file(portals_file, base_url, made)
        if not quiet:
            if portals_file is None:
                for portal in made:
                    err_console.print(f"{portal.name}  {next(iter(portal.tokens))}")
            where = f"tokens in {portals_file}" if portals_file else "tokens above"
            err_console.print(
                f"{portals} sandbox portals on {base_url} ({where}); Ctrl-C stops them"
            )
        serve(host, port, [], None, limits, None, portals=made)
        return
    tokens = list(token or [])
    if not tokens:
        env_token = os.environ.get("DEALSYNC_SANDBOX_TOKEN")
        tokens = [env_token] if env_token else ["sandbox-" + secrets.token_hex(12)]
        if not env_token:
            err_console.print(
                f"No --token given; this sandbox accepts the bearer token [bold]{tokens[0]}[/bold]"
            )
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    if seed not in (None, "demo"):
        err_console.print(
            f"[red]Unknown seed {seed!r}.[/red] The only data set is 'demo': use --seed demo."
        )
        raise typer.Exit(2)
    if not quiet:
        where = f"file {db}" if db else "in memory"
        err_console.print(f"Sandbox CRM on http://{host}:{port} ({where}); Ctrl-C stops it")
    serve(host, port, tokens, str(db) if db else None, limits, seed)


def _serve_salesforce(host: str, port: int, state_dir: Path, quiet: bool) -> None:
    """Serve the Salesforce sandbox, printing how to log in to it."""
    from sandbox.salesforce.server import prepare, serve

    app = prepare(state_dir, ("localhost", "127.0.0.1", host))
    if not quiet:
        err_console.print(
            f"Salesforce sandbox on https://{host}:{port}; Ctrl-C stops it.\n"
            f"  certificate: {state_dir / 'sandbox-cert.pem'} (trust it: REQUESTS_CA_BUNDLE)\n"
            f"  connected app keys (client id, secret, refresh token; user, password): "
            f"{state_dir / 'connected-app.json'}\n"
            f"  token endpoint: https://{host}:{port}/services/oauth2/token (client id "
            f"{app.client_id})"
        )
    serve(host, port, state_dir)
