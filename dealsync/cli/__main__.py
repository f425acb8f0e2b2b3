"""`python -m dealsync.cli`."""

from dealsync.cli.app import app

app()
