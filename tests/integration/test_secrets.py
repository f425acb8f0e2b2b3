"""Tokens never reach the ledger, logs, reports or error messages."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from dealsync.config import load_config
from dealsync.ledger import Ledger
from dealsync.ledger.models import Base
from tests.integration.test_notes import _note
from tests.integration.test_sync import SHARED, _twin


def test_no_token_in_the_ledger_logs_or_output(pair, caplog, monkeypatch):
    tokens = [server.token for server in pair.servers.values()]
    outputs = []
    with caplog.at_level(logging.DEBUG):
        reg = pair.create("partner", dealname="Secretive", **SHARED)
        pair.create("partner", **SHARED)  # quarantined: its payload is stored
        outputs.append(pair.cli("run").output)
        vid = _twin(pair, "vendor", f"acme:partner:{reg}")["id"]
        _note(pair, "vendor", vid, "<p>note</p>", dealsync_shared="true")
        pair.servers["partner"].admin(
            "POST",
            "faults",
            json={"method": "POST", "path_regex": "notes/batch/create", "status": 503, "count": 1},
        )
        outputs.append(pair.cli("run", "--dry-run").output)
        outputs.append(pair.cli("run").output)
        monkeypatch.setenv(
            "TEST_ACME_TOKEN", "pat-wrong-" + tokens[1]
        )  # a 401 whose message must not echo it
        outputs.append(pair.cli("run", ok=False).output)
        outputs.append(
            pair.cli("status").output
            + pair.cli("quarantine", "list").output
            + pair.cli("conflicts").output
        )
    ledger = Ledger(load_config(pair.config).ledger_url)
    dump = []
    with ledger.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            dump += [repr(tuple(row)) for row in conn.execute(sa.select(table))]
    text = "\n".join(dump + outputs + [caplog.text])
    assert ("401" in outputs[3] and "partners[0]" not in outputs[3]) or "token" in outputs[3]
    for token in tokens:
        assert token not in text
    assert "Bearer" not in text
