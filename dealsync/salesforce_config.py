"""How a `kind: salesforce` connection logs in: a connected app's consumer key with a refresh token
(`token`) and optionally its secret, or with a user and the private key of the app's certificate (JWT
bearer). Every secret is a reference, resolved at the edge; `api_share` is dealsync's share of the
org's daily API allowance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.salesforce_http import DEFAULT_SHARE, SalesforceLogin
from dealsync.config_errors import ConfigError
from dealsync.secret_refs import check_token_reference, resolve_secret

SALESFORCE_KEYS = (
    "client_id",
    "client_secret",
    "username",
    "private_key",
    "api_share",
    "ca_bundle",
)


@dataclass(frozen=True)
class SalesforceAuth:
    """The login of one Salesforce connection, as references."""

    client_id_ref: str
    client_secret_ref: str | None
    username: str | None
    private_key_ref: str | None
    api_share: float
    ca_bundle: str | None  # a PEM file to trust (a private CA, or the sandbox's certificate)

    def login(self, login_url: str, refresh_token: str | None, where: str) -> SalesforceLogin:
        """The login with its secrets resolved (`where` names the connection in errors)."""

        def secret(reference: str | None, key: str) -> str | None:
            return None if reference is None else resolve_secret(reference, f"{where}.{key}")

        return SalesforceLogin(
            login_url,
            secret(self.client_id_ref, "client_id") or "",
            secret(self.client_secret_ref, "client_secret"),
            refresh_token,
            self.username,
            secret(self.private_key_ref, "private_key"),
        )


def salesforce_auth(
    data: dict[str, Any], where: str, has_token: bool, base: Path
) -> SalesforceAuth:
    """A Salesforce connection's login keys, checked: a refresh token (`token`) or a username and
    private key, never both, every secret a reference."""

    def reference(key: str, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                raise ConfigError(
                    f"{where}.{key}: missing. A Salesforce connection needs the connected app's "
                    "consumer key as a reference (env:NAME or a Prefect Secret block name)."
                )
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: give a reference, env:NAME or a block name.")
        check_token_reference(value, f"{where}.{key}")
        return value

    client_id = reference("client_id", required=True)
    assert client_id is not None
    private_key = reference("private_key")
    username = data.get("username")
    if username is not None and (not isinstance(username, str) or "@" not in username):
        raise ConfigError(
            f"{where}.username: {username!r} must be the Salesforce username (it looks like an "
            "email address) of the user dealsync logs in as."
        )
    jwt = private_key is not None or username is not None
    if jwt and (private_key is None or username is None):
        raise ConfigError(
            f"{where}: the JWT bearer login needs both username and private_key (a reference to "
            "the PEM private key of the connected app's certificate)."
        )
    if jwt == has_token:
        raise ConfigError(
            f"{where}: give either token (a reference to the refresh token) or username and "
            "private_key (the JWT bearer flow), not both and not neither."
        )
    share = data.get("api_share", DEFAULT_SHARE)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ConfigError(
            f"{where}.api_share: {share!r} must be a fraction in (0, 1]: the share of the org's "
            f"daily API allowance dealsync may use (leave it out for {DEFAULT_SHARE})."
        )
    bundle = data.get("ca_bundle")
    if bundle is not None:
        path = Path(str(bundle)) if Path(str(bundle)).is_absolute() else base / str(bundle)
        if not path.is_file():
            raise ConfigError(
                f"{where}.ca_bundle: {path} does not exist: give the PEM file of the certificate "
                "(or CA) to trust, relative to the config file, or leave it out."
            )
        bundle = str(path)
    return SalesforceAuth(
        client_id, reference("client_secret"), username, private_key, float(share), bundle
    )
