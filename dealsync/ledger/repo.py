"""The ledger's repository: every read and write the engine makes, each in its own transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from dealsync.ledger.budgets import BudgetsMixin
from dealsync.ledger.census import CensusMixin
from dealsync.ledger.commits import CommitsMixin, RunCommit
from dealsync.ledger.files import FilesMixin
from dealsync.ledger.held import HeldMixin
from dealsync.ledger.inbox import InboxMixin
from dealsync.ledger.intents import IntentsMixin
from dealsync.ledger.links import MADE_AS, LinksMixin
from dealsync.ledger.mapping_fields import MappingFieldsMixin
from dealsync.ledger.quarantine import QuarantineEntry, QuarantineMixin
from dealsync.ledger.runs import RunsMixin

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
__all__ = [
    "MADE_AS",
    "MIGRATIONS",
    "Ledger",
    "LedgerUnavailable",
    "QuarantineEntry",
    "RunCommit",
    "redacted",
]


class LedgerUnavailable(RuntimeError):
    """The ledger's database cannot be opened: names the URL (never its password) and what to check."""


def redacted(url: str) -> str:
    """A database URL safe to print: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<an unreadable database URL>"


class Ledger(
    RunsMixin,
    LinksMixin,
    QuarantineMixin,
    IntentsMixin,
    CommitsMixin,
    FilesMixin,
    CensusMixin,
    BudgetsMixin,
    MappingFieldsMixin,
    HeldMixin,
    InboxMixin,
):
    """The ledger behind a SQLAlchemy URL (sqlite:///... or postgresql+psycopg://...)."""

    @classmethod
    def open(cls, url: str) -> Ledger:
        """The ledger at `url`, migrated to the newest schema; LedgerUnavailable when it cannot be."""
        try:
            ledger = cls(url)
            ledger.migrate()
        except (OSError, sa.exc.SQLAlchemyError) as exc:
            raise LedgerUnavailable(_unavailable(url, exc)) from None
        return ledger

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine: Engine = sa.create_engine(url, pool_pre_ping=True)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        if self.engine.dialect.name == "postgresql":
            sa.event.listen(self.engine, "connect", _postgresql_plans)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def session(self) -> Session:
        """A plain session, for reports and tests."""
        return self.sessions()


def _unavailable(url: str, exc: Exception) -> str:
    """What went wrong opening the ledger, in one line, and what to check."""
    cause = getattr(exc, "orig", None) or exc
    detail = (getattr(cause, "strerror", None) or str(cause)).strip().splitlines()[0]
    if filename := getattr(cause, "filename", None):
        detail = f"{detail}: {filename}"
    if url.startswith("sqlite"):
        hint = (
            "check that the folder of the file exists or can be created (no plain file in its path) "
            "and is writable"
        )
    else:
        hint = (
            "check that the database server is running and reachable from here, that the database "
            "exists, and that the user may connect"
        )
    return f"the ledger {redacted(url)} cannot be opened: {detail}. {hint.capitalize()}; or point `ledger:` in the config at another database."


def _postgresql_plans(dbapi_conn: Any, _record: Any) -> None:
    """Plan every statement for its own values. psycopg prepares a statement run five times, and
    PostgreSQL then keeps a generic plan for it: for `record_id IN (500 ids)` over the hub's census
    of 100,000 that plan scanned the whole census (1.7 s a query, not 3 ms)."""
    dbapi_conn.execute("SET plan_cache_mode = force_custom_plan")
    dbapi_conn.commit()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA foreign_keys=ON")
    dbapi_conn.execute("PRAGMA busy_timeout=10000")
