"""What a connector does with each kind of failed call, as data, and the exceptions it raises."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Action(Enum):
    """What to do with a failed call."""

    RATE_LIMIT = "wait as the rate-limit headers say, then retry"
    BACKOFF = "pause with exponential backoff and jitter, then retry"
    LOCKED = "wait at least the rule's minimum, then retry"
    RETRY_AFTER = "wait the Retry-After seconds, then retry"
    FAIL_RECORD = "give up on this record; the rest go on"
    FAIL_AUTH = "stop the run: the connection's credentials are wrong"


@dataclass(frozen=True)
class ErrorRule:
    """One row of an error table: the action and a plain-English explanation."""

    action: Action
    message: str
    min_wait_s: float = 0.0

    @property
    def retriable(self) -> bool:
        """Whether the call is tried again."""
        return self.action not in (Action.FAIL_RECORD, Action.FAIL_AUTH)


# What any HTTP API's statuses mean for a sync; CRM-specific tables add to it.
HTTP_ERRORS: dict[int, ErrorRule] = {
    401: ErrorRule(Action.FAIL_AUTH, "the token was rejected"),
    403: ErrorRule(Action.FAIL_AUTH, "the token lacks a permission this call needs"),
    429: ErrorRule(Action.RATE_LIMIT, "the CRM's rate limit was reached"),
    500: ErrorRule(Action.BACKOFF, "the CRM had an internal error"),
    502: ErrorRule(Action.BACKOFF, "the CRM's gateway failed"),
    503: ErrorRule(Action.BACKOFF, "the CRM is temporarily unavailable"),
    504: ErrorRule(Action.BACKOFF, "the CRM's gateway timed out"),
    524: ErrorRule(Action.BACKOFF, "the CRM took too long to answer"),
}

# HubSpot's documented error handling (HUBSPOT_API.md, "Limits and errors").
HUBSPOT_ERRORS: dict[int, ErrorRule] = {
    **HTTP_ERRORS,
    403: ErrorRule(Action.FAIL_AUTH, "the token lacks a scope this call needs"),
    423: ErrorRule(Action.LOCKED, "the record is locked by another write", min_wait_s=2.0),
    429: ErrorRule(Action.RATE_LIMIT, "the portal's rate limit was reached"),
    477: ErrorRule(Action.RETRY_AFTER, "the portal is migrating; retry after the given delay"),
}
CLIENT_ERROR = ErrorRule(Action.FAIL_RECORD, "the CRM refused the request")
SERVER_ERROR = ErrorRule(Action.BACKOFF, "the CRM failed")
TRANSPORT_ERROR = ErrorRule(Action.BACKOFF, "the CRM did not answer (timeout or connection error)")


def rule_for(table: dict[int, ErrorRule], status: int) -> ErrorRule:
    """The rule for an HTTP status: the table's row, else the default for its class."""
    if status in table:
        return table[status]
    return SERVER_ERROR if status >= 500 else CLIENT_ERROR


class ConnectorError(Exception):
    """A call to a CRM that failed for good; `retriable` says whether a later run may succeed."""

    retriable = True

    def __init__(
        self, message: str, status: int | None = None, category: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category


class AuthError(ConnectorError):
    """The connection's credentials are wrong: stop the run."""

    retriable = False


class RecordRejected(ConnectorError):
    """The CRM refused a record (a 4xx): the record's problem, quarantined with this message."""

    retriable = False


class RetriesExhausted(ConnectorError):
    """A transient failure that outlasted every retry; the next run will try again."""


class DailyLimitReached(ConnectorError):
    """The portal's daily request budget is spent: stop the run until tomorrow."""
