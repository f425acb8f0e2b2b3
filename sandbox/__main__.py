"""`python -m sandbox serve ...`: the sandbox CRM server."""

from sandbox.cli import sandbox_app

sandbox_app()
