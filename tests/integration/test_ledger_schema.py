"""The ledger enforces its own rules (links written once, one pair per vendor record), on SQLite and
PostgreSQL; its migrations build exactly the models, and upgrade an older ledger safely."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from dealsync.isolation import IsolationError, check_vendor_writes
from dealsync.ledger import Ledger
from dealsync.ledger.models import Base, CreateIntent, LinkRow
from dealsync.ledger.repo import MIGRATIONS, RunCommit
from dealsync.model import Link

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite", "postgresql"], indirect=True)


def _commit(ledger: Ledger, pair: str, *links: Link) -> list[Link]:
    run_id = ledger.start_run(pair, False, False)
    return ledger.commit_run(run_id, pair, RunCommit(list(links), {}, {}, [], [], {}, {}))


def _rows(ledger: Ledger) -> set[tuple]:
    with ledger.session() as s:
        return {
            tuple(r)
            for r in s.execute(sa.select(LinkRow.pair, LinkRow.partner_id, LinkRow.vendor_id))
        }


def test_a_link_is_written_once_and_a_vendor_record_belongs_to_one_pair(ledger_url):
    ledger = Ledger(ledger_url)
    ledger.migrate()
    assert _commit(ledger, "acme", Link(None, "p1", "v1", "partner", {})) == []
    takeovers = [
        Link(None, "p2", "v1", "partner", {}),  # another acme record for the same vendor twin
        Link(None, "p1", "v2", "vendor", {}),  # the same acme record for another vendor record
    ]
    assert _commit(ledger, "acme", *takeovers) == takeovers
    beta = Link(None, "b1", "v1", "partner", {})  # beta claiming acme's vendor record
    assert _commit(ledger, "beta", beta) == [beta]
    assert _rows(ledger) == {("acme", "p1", "v1")}

    # The schema itself refuses it, whatever the code does.
    with pytest.raises(IntegrityError), ledger.sessions.begin() as s:
        s.add(
            LinkRow(
                pair="beta", object_type="deals", partner_id="b1", vendor_id="v1", origin="partner"
            )
        )
    # Once acme's link has ended, the vendor record may be shared with another partner.
    with ledger.sessions.begin() as s:
        s.execute(sa.update(LinkRow).values(state="unlinked"))
    assert _commit(ledger, "beta", beta) == []
    ledger.close()


def test_the_vendor_guard_refuses_writes_to_records_this_pair_does_not_link(ledger_url):
    ledger = Ledger(ledger_url)
    ledger.migrate()
    _commit(ledger, "acme", Link(None, "p1", "v1", "partner", {}))
    _commit(ledger, "beta", Link(None, "b1", "v2", "partner", {}))
    check_vendor_writes(ledger, "acme", "deals", ["v1"])
    with pytest.raises(IsolationError, match="v2"):
        check_vendor_writes(ledger, "acme", "deals", ["v1", "v2"])
    with pytest.raises(IsolationError, match="v1"):
        check_vendor_writes(ledger, "acme", "notes", ["v1"])
    ledger.close()


def test_the_migrations_build_exactly_the_models(ledger_url):
    ledger = Ledger(ledger_url)
    ledger.migrate()
    with ledger.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert compare_metadata(context, Base.metadata) == []
    ledger.close()


def test_an_older_ledger_is_upgraded_without_losing_what_it_knew(ledger_url):
    ledger = Ledger(ledger_url)
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with ledger.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
    with ledger.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO runs (pair, started_at, status, dry_run, full_resync, summary) "
                "VALUES ('acme', CURRENT_TIMESTAMP, 'completed', false, false, '{}')"
            )
        )
        intents = [
            ("acme:partner:1", "vendor", "1", "done", "v1"),  # a deal's twin
            ("acme:partner:2", "vendor", "2", "done", "n9"),  # a note's twin (linked below)
            ("acme:vendor:7:welcome", "partner", "welcome-7", "done", "n5"),
            ("acme:vendor:file-3-4", "partner", "4", "done", "a1"),
        ]
        for key, target, source, state, target_id in intents:
            connection.execute(
                sa.text(
                    "INSERT INTO create_intents (pair, key, target_side, source_id, run_id, state, "
                    "target_id, created_at) VALUES ('acme', :k, :t, :s, 1, :st, :ti, CURRENT_TIMESTAMP)"
                ),
                {"k": key, "t": target, "s": source, "st": state, "ti": target_id},
            )
        # Before keys were claims, a forged key could link one vendor deal to two pairs.
        for pair, object_type, partner_id, vendor_id in [
            ("acme", "notes", "2", "n9"),
            ("acme", "deals", "1", "v1"),
            ("beta", "deals", "b1", "v1"),
        ]:
            connection.execute(
                sa.text(
                    "INSERT INTO links (pair, object_type, partner_id, vendor_id, origin, state, base, "
                    "created_at, updated_at) VALUES (:p, :o, :pi, :vi, 'partner', 'active', '{}', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"p": pair, "o": object_type, "pi": partner_id, "vi": vendor_id},
            )
    ledger.migrate()
    with ledger.session() as s:
        kinds = dict(s.execute(sa.select(CreateIntent.key, CreateIntent.object_type)).all())
        states = dict(
            s.execute(sa.select(LinkRow.pair, LinkRow.state).where(LinkRow.vendor_id == "v1")).all()
        )
    assert kinds == {
        "acme:partner:1": "deals",
        "acme:partner:2": "notes",
        "acme:vendor:7:welcome": "notes",
        "acme:vendor:file-3-4": "files",
    }
    assert states == {"acme": "active", "beta": "disputed"}
    ledger.close()
