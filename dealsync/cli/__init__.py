"""The `dealsync` command and what only it uses (typer, rich, the demo, `serve`): the top layer."""

from dealsync.cli.app import app

__all__ = ["app"]
