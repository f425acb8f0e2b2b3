"""Secrets in the config are references: `env:NAME` or a Prefect Secret block name, never the value."""

from __future__ import annotations

import os
import re
from typing import Any

from dealsync.config_errors import ConfigError

_ENV_REFERENCE = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")
_BLOCK_NAME = re.compile(r"^(prefect:)?[a-z0-9][a-z0-9-]{0,63}$")  # Prefect's block name rules
_SECRET_LOOKING = re.compile(r"[0-9a-f]{16,}|[A-Za-z0-9_]{32,}")


def check_token_reference(reference: str, where: str) -> None:
    """Refuse a token that is not a reference, without ever repeating it (it may be the secret)."""
    literal = reference.startswith(("pat-", "Bearer", "bcrm_pat_")) or bool(
        _SECRET_LOOKING.search(reference.removeprefix("env:"))
    )
    if literal:
        raise ConfigError(
            f"{where}: looks like a literal token. Never put secrets in the config: use env:NAME or a "
            "Prefect Secret block name."
        )
    if not (_ENV_REFERENCE.match(reference) or _BLOCK_NAME.match(reference)):
        raise ConfigError(
            f"{where}: the token reference is neither env:NAME (an environment variable name) nor a "
            "Secret block name (lowercase letters, digits and dashes). Put the token in an "
            "environment variable and write env:NAME, or save it as a Prefect Secret block."
        )


def resolve_secret(reference: str, where: str) -> str:
    """`env:NAME` -> the environment variable; anything else -> the Prefect Secret block of that name."""
    if reference.startswith("env:"):
        name = reference[4:]
        value = os.environ.get(name)
        if not value:
            raise ConfigError(
                f"{where}: the environment variable {name} is not set. Export it, or point the token at a Prefect Secret block."
            )
        return value
    block = reference.removeprefix("prefect:")
    try:
        from prefect.blocks.system import Secret

        secret: Any = Secret.load(block)  # a block, loaded synchronously outside an event loop
        return str(secret.get())
    except Exception as exc:  # Prefect raises several kinds here; all mean the same to the user
        # The reference is not repeated: a pasted token can look like a block name.
        raise ConfigError(
            f"{where}: the token reference is neither env:NAME nor the name of a Prefect Secret block "
            f"that exists ({type(exc).__name__}). Save the block (Secret(value=...).save(name)) where "
            "PREFECT_API_URL points, or use env:NAME."
        ) from None
