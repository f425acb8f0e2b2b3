"""The Salesforce connection over the shared HTTP base: a session by OAuth (a refresh token, or the
JWT bearer grant), renewed once when Salesforce answers INVALID_SESSION_ID, the instance URL taken
from the token answer, and the org's daily API allowance, of which dealsync uses only its share."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from connectors.errors import HTTP_ERRORS, Action, AuthError, DailyLimitReached, ErrorRule
from connectors.http import HttpClient, register_secret

API_VERSION = "59.0"
DEFAULT_SHARE = 0.2  # of the org's daily allowance: the partner's admin guards the rest
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")

SALESFORCE_ERRORS: dict[int, ErrorRule] = {
    **HTTP_ERRORS,
    401: ErrorRule(Action.FAIL_AUTH, "the session expired or was refused"),
    403: ErrorRule(
        Action.FAIL_AUTH, "the user lacks a permission this call needs, or an API limit was hit"
    ),
}


# Sessions by login identity: a run (or a worker's hundredth run) does not log in again while the
# session lasts; Salesforce answers INVALID_SESSION_ID when it has expired, and the call logs in then.
_sessions: dict[tuple[str, ...], tuple[str, str, str]] = {}  # (access token, instance, user id)


class AllowanceSpent(DailyLimitReached):
    """dealsync's share of the org's daily API allowance is used up: the run stops cleanly."""


@dataclass(frozen=True)
class SalesforceLogin:
    """How a connection logs in: a connected app's consumer key with a refresh token (and its
    secret), or with a user and the private key of the app's certificate (JWT bearer)."""

    login_url: str  # https://login.salesforce.com, https://test.salesforce.com, or My Domain
    client_id: str
    client_secret: str | None = None
    refresh_token: str | None = None
    username: str | None = None
    private_key: str | None = None  # PEM

    def identity(self) -> tuple[str, ...]:
        """Who logs in where (a session serves every connection with the same identity)."""
        return (self.login_url, self.client_id, self.refresh_token or "", self.username or "")

    def grant(self) -> dict[str, str]:
        """The token endpoint's form for this login."""
        if self.refresh_token:
            form = {
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "refresh_token": self.refresh_token,
            }
            if self.client_secret:
                form["client_secret"] = self.client_secret
            return form
        if self.username and self.private_key:
            claims = {
                "iss": self.client_id,
                "sub": self.username,
                "aud": self.login_url.rstrip("/"),
                "exp": int(time.time()) + 180,
            }
            return {
                "grant_type": JWT_GRANT,
                "assertion": jwt.encode(claims, self.private_key, algorithm="RS256"),
            }
        raise ValueError(
            "a Salesforce login needs a refresh token, or a username and a private key (JWT bearer)"
        )


class SalesforceHttp(HttpClient):
    """Calls one Salesforce org: its data API under the instance URL the login answered with."""

    def __init__(
        self,
        login: SalesforceLogin,
        connection: str,
        share: float = DEFAULT_SHARE,
        verify: str | bool = True,
        **options: Any,
    ) -> None:
        self.login, self.share, self._verify = login, share, verify
        for secret in (login.client_secret, login.refresh_token, login.private_key):
            if secret:
                register_secret(secret)
        self.connection = connection
        self.logins = 0  # the logins this connection made (a session another one made serves it)
        access, instance_url, user_id = _sessions.get(login.identity()) or self._authenticate()
        super().__init__(
            f"{instance_url}/services/data/v{API_VERSION}",
            access,
            connection,
            SALESFORCE_ERRORS,
            **options,
        )
        if verify is not True:
            self._session.verify = verify
        self.instance_url = instance_url
        self.user_id = user_id  # who the connection acts as (the id URL's last part)
        self.api_used: int | None = None  # from the last answer's Sforce-Limit-Info
        self.api_total: int | None = None

    def _authenticate(self) -> tuple[str, str, str]:
        """A new session: (access token, instance URL, user id), or AuthError saying why not."""
        url = f"{self.login.login_url.rstrip('/')}/services/oauth2/token"
        try:
            answer = requests.post(url, data=self.login.grant(), timeout=30, verify=self._verify)
        except requests.RequestException as exc:
            raise AuthError(
                f"{self.connection}: could not reach Salesforce's login at {url} "
                f"({type(exc).__name__}); check login_url and the network."
            ) from None
        if not answer.ok:
            try:
                body = answer.json()
            except ValueError:
                body = {}
            reason = f"{body.get('error', answer.status_code)}: {body.get('error_description', '')}"
            raise AuthError(
                f"{self.connection}: Salesforce refused the login ({reason}). Check the connected "
                f"app's consumer key and the refresh token (or user and private key) that "
                f"connection '{self.connection}' references.",
                answer.status_code,
            )
        token = answer.json()
        self.logins += 1
        register_secret(token["access_token"])
        user_id = str(token.get("id") or "").rstrip("/").rsplit("/", 1)[-1]
        session = token["access_token"], token["instance_url"].rstrip("/"), user_id
        _sessions[self.login.identity()] = session  # the next connection of this process reuses it
        return session

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """`HttpClient.request`, within the allowance's share, logging in again once when the
        session expired."""
        self._check_allowance()
        try:
            return super().request(method, path, **kwargs)
        except AuthError as exc:
            if exc.status == 403 and "REQUEST_LIMIT_EXCEEDED" in str(exc):
                raise AllowanceSpent(
                    f"{self.connection}: Salesforce answered REQUEST_LIMIT_EXCEEDED: the org's API "
                    "limit is reached. The run stops here; the next one goes on once the org's "
                    "use has fallen (its allowance is a rolling 24 hours).",
                    403,
                ) from None
            if exc.status != 401:
                raise
        access, _, _ = self._authenticate()  # INVALID_SESSION_ID: the session timed out
        self._session.headers["Authorization"] = f"Bearer {access}"
        self._check_allowance()
        return super().request(method, path, **kwargs)  # a second refusal is final

    def _check_allowance(self) -> None:
        """Stop before a call past dealsync's share of the org's daily allowance."""
        if self.api_used is None or self.api_total is None:
            return
        budget = math.floor(self.share * self.api_total)
        if self.api_used >= budget:
            raise AllowanceSpent(
                f"{self.connection}: the org has used {self.api_used} of its {self.api_total} "
                f"daily API requests; dealsync may use {budget} ({self.share:.0%}, the "
                "connection's api_share). This run stops here; the next one goes on once the "
                "org's use over the last 24 hours is below that.",
                None,
            )

    def _adopt_limits(self, response: requests.Response) -> None:
        usage = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if usage:
            self.api_used, self.api_total = int(usage.group(1)), int(usage.group(2))
