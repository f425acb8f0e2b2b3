"""`dealsync receive`: the HubSpot webhook receiver, waking partners' syncs through Prefect."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from dealsync.cli.common import ConfigOption, console, fail, load

DEFAULT_PORT = 8787


def receive(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="The target URL the HubSpot app delivers to, exactly as subscribed (HubSpot signs "
            "it); needed behind a proxy that rewrites the URL. Default: the URL as requested."
        ),
    ] = None,
    debounce: Annotated[
        float,
        typer.Option(
            min=0.0, help="Seconds a partner's burst of changes is gathered into one wake."
        ),
    ] = 2.0,
) -> None:
    """Receive HubSpot webhooks (POST /webhooks/hubspot): check their signatures and wake the sync
    of each partner whose deals changed (`dealsync serve` starts it for you)."""
    import uvicorn

    from dealsync.config import ConfigError
    from dealsync.receiving import WEBHOOK_PATH, build_receiver, build_router
    from flows.wake import wake_partners

    if not os.environ.get("PREFECT_API_URL"):
        raise fail(
            "PREFECT_API_URL is not set: the receiver wakes syncs through a Prefect server. "
            "Point it at one (`dealsync serve` runs one at http://127.0.0.1:4200/api)."
        )
    loaded, ledger = load(config)
    try:
        router = build_router(loaded, ledger)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    app = build_receiver(router, wake_partners, public_url, debounce)
    portals = ", ".join(str(n) for n in router.portals)
    console.print(
        f"Receiving HubSpot webhooks on http://{host}:{port}{WEBHOOK_PATH} for portals {portals}; "
        f"config {Path(loaded.path)}."
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
