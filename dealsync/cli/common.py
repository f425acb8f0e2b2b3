"""What every `dealsync` command shares: the consoles, the common options, loading the config."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from dealsync.cli.output import terminal_console

if TYPE_CHECKING:
    from dealsync.config import Config
    from dealsync.ledger import Ledger

console = terminal_console()
# Errors are whole lines a script can grep: never wrapped at the terminal's width.
err_console = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file (default: $DEALSYNC_CONFIG or ./dealsync.yaml)."
    ),
]
PartnerOption = Annotated[
    str | None, typer.Option("--partner", "-p", help="Only this partner (default: all).")
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error line and return the exit to raise."""
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


def load(config: Path | None) -> tuple[Config, Ledger]:
    """The config and its ledger (migrated), or an error naming what to fix."""
    from dealsync.config import ConfigError, load_config
    from dealsync.ledger import Ledger, LedgerUnavailable

    try:
        loaded = load_config(config)
        ledger = Ledger.open(loaded.ledger_url)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    except LedgerUnavailable as exc:
        raise fail(f"{loaded.path}: {exc}") from None
    return loaded, ledger
