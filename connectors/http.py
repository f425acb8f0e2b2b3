"""The shared HTTP base of every connector: auth, rate limiting, retries decided by an error table."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from connectors.errors import (
    HUBSPOT_ERRORS,
    TRANSPORT_ERROR,
    Action,
    AuthError,
    DailyLimitReached,
    ErrorRule,
    RecordRejected,
    RetriesExhausted,
    rule_for,
)
from connectors.ratelimit import PortalLimiters, limiters_for, portal_key, shared_budget

log = logging.getLogger("dealsync.http")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(secret: str) -> None:
    """Remember a secret so that `redact` removes it from any text."""
    if secret:
        with _secrets_lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs registered secrets from every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def _session_for(base_url: str) -> requests.Session:
    """A session with the environment's proxy and CA bundle for `base_url`, read once.

    requests reads them from os.environ on every call otherwise: with a token variable per partner
    (thousands of variables), that scan cost more CPU than the rest of a quiet call."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(base_url)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


class HttpClient:
    """Calls one CRM connection over HTTP; retries what the error table says is transient."""

    def __init__(
        self,
        base_url: str,
        token: str,
        connection: str,
        error_table: Mapping[int, ErrorRule] = HUBSPOT_ERRORS,
        limiters: PortalLimiters | None = None,
        rate_share: float = 1.0,
        timeout_s: tuple[float, float] = (5.0, 60.0),
        max_attempts: int = 6,
        max_backoff_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        register_secret(token)
        self.base_url = base_url.rstrip("/")
        self.connection = connection
        self.error_table = dict(error_table)
        self.limiters = limiters or limiters_for(base_url, token, rate_share)
        self.portal = portal_key(base_url, token)
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._session = _session_for(self.base_url)
        self._session.headers["Authorization"] = f"Bearer {token}"
        self.calls = 0
        self.retries = 0
        self.answer_s = 0.0  # time spent waiting for the CRM's answers (not for the rate limit)
        # Called before every attempt of a call that writes; raises to stop the write (a run's lease).
        self.write_guard: Callable[[], None] | None = None

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        search: bool = False,
        reads: bool = False,
        stream: bool = False,
        body: Callable[[], tuple[Any, dict[str, str]]] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one call, retrying transient failures; raise a ConnectorError when it fails for good.

        A call other than GET is taken for a write (and passes `write_guard` first) unless it is a
        search or says it only `reads`. `body` makes a fresh (data, headers) for every attempt: a
        streamed upload cannot be re-read.
        """
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        where = f"{method} {path.split('?')[0]}"
        guard = None if method == "GET" or search or reads else self.write_guard
        for attempt in range(1, self.max_attempts + 1):
            if guard is not None:
                guard()
            (self.limiters.search if search else self.limiters.general).acquire()
            if (shared := shared_budget(self.portal)) is not None:
                shared.take(search)
            self.calls += 1
            if body is not None:
                kwargs["data"], kwargs["headers"] = body()
            response: requests.Response | None = None
            sent = time.perf_counter()
            try:
                answer = self._session.request(
                    method, url, timeout=self.timeout_s, stream=stream, **kwargs
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                rule, detail = TRANSPORT_ERROR, type(exc).__name__
            else:
                response = answer
                self.answer_s += time.perf_counter() - sent
                self._adopt_limits(answer)
                if answer.status_code < 400:
                    return answer
                rule = rule_for(self.error_table, answer.status_code)
                detail = _error_message(answer)
            if response is not None and rule.action is Action.FAIL_AUTH:
                raise AuthError(
                    f"{self.connection}: {where} answered {response.status_code}: {rule.message} ({detail}). "
                    f"Check the token reference configured for connection '{self.connection}'.",
                    response.status_code,
                )
            if response is not None and not rule.retriable:
                raise RecordRejected(
                    f"{where} answered {response.status_code}: {detail}",
                    response.status_code,
                    _error_category(response),
                )
            if (
                response is not None
                and response.status_code == 429
                and _policy(response) == "DAILY"
            ):
                raise DailyLimitReached(
                    f"{self.connection}: the portal's daily API limit is spent ({detail}); runs resume tomorrow.",
                    429,
                )
            if attempt == self.max_attempts:
                status = response.status_code if response is not None else None
                raise RetriesExhausted(
                    f"{self.connection}: {where} still failing after {attempt} attempts: {rule.message} ({detail})",
                    status,
                )
            wait = self._wait_for(rule, response, attempt)
            self.retries += 1
            log.warning(
                "%s: %s failed (%s: %s); retry %d in %.2fs",
                self.connection,
                where,
                rule.message,
                detail,
                attempt,
                wait,
            )
            if rule.action is Action.RATE_LIMIT:
                (self.limiters.search if search else self.limiters.general).block_for(wait)
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: random between 0 and min(cap, 0.5 * 2^attempt)."""
        return random.uniform(0.1, min(self.max_backoff_s, 0.5 * 2**attempt))

    def _wait_for(self, rule: ErrorRule, response: requests.Response | None, attempt: int) -> float:
        if rule.action is Action.RATE_LIMIT and response is not None:
            policy = _policy(response)
            if policy == "SECONDLY" or "search" in response.url:
                return 1.0
            # The rolling window frees up gradually: wait 1 s, 2 s, 4 s... capped at the window's length.
            interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
            window_s = int(interval) / 1000 if interval and interval.isdigit() else 10.0
            return min(window_s, 2.0 ** (attempt - 1))
        if rule.action is Action.RETRY_AFTER and response is not None:
            retry_after = response.headers.get("Retry-After", "")
            return (
                float(retry_after)
                if retry_after.replace(".", "", 1).isdigit()
                else self._backoff(attempt)
            )
        return (
            max(rule.min_wait_s, self._backoff(attempt))
            if rule.min_wait_s
            else self._backoff(attempt)
        )

    def _adopt_limits(self, response: requests.Response) -> None:
        limit = response.headers.get("X-HubSpot-RateLimit-Max")
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        if limit and interval and limit.isdigit() and interval.isdigit():
            self.limiters.adopt_headers(int(limit), int(interval))


def _json_or_empty(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_message(response: requests.Response) -> str:
    body = _json_or_empty(response)
    message = body.get("message") or _listed_errors(response) or response.reason
    return redact(str(message or f"HTTP {response.status_code}"))[:2000]


def _listed_errors(response: requests.Response) -> str:
    """Salesforce's error body, `[{"message", "errorCode"}]`, as `CODE: message; ...`."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, list):
        return ""
    return "; ".join(
        f"{e.get('errorCode')}: {e.get('message')}" if e.get("errorCode") else str(e.get("message"))
        for e in body
        if isinstance(e, dict) and e.get("message")
    )


def _error_category(response: requests.Response) -> str | None:
    return _json_or_empty(response).get("category")


def _policy(response: requests.Response) -> str | None:
    return _json_or_empty(response).get("policyName")
