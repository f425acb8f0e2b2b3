"""`--json` gives scripts one JSON document with stable keys; tables printed into a pipe keep whole
cells on one line."""

from __future__ import annotations

import json

from tests.integration.conftest import Pair
from tests.integration.test_sync import SHARED, _twin


def _json(pair: Pair, *args: str) -> dict:
    result = pair.cli(*args, "--json")
    return json.loads(result.stdout)


def test_run_status_conflicts_and_quarantine_as_json(pair: Pair):
    reg = pair.create("partner", dealname="Shared", closedate="2026-10-01", **SHARED)
    nameless = pair.create("partner", closedate="2026-10-01", **SHARED)
    first = _json(pair, "run")
    assert first["exit_code"] == 0
    [run] = first["runs"]
    assert run["partner"] == "acme" and run["status"] == "completed"
    assert run["created"]["vendor"] == 1 and run["api_calls"] > 0
    assert [q["record_id"] for q in run["quarantined"]] == [nameless]

    vendor_id = _twin(pair, "vendor", f"acme:partner:{reg}")["id"]
    pair.edit("vendor", vendor_id, closedate="2026-11-11")
    pair.edit("partner", reg, closedate="2026-12-12")
    _json(pair, "run")

    [conflict] = _json(pair, "conflicts")["conflicts"]
    assert conflict["field"] == "close_date" and conflict["winner"] == "vendor"
    assert conflict["partner"] == "acme" and conflict["at"].endswith("+00:00")
    assert conflict["base"].startswith("2026-10-01")
    assert conflict["partner_value"].startswith("2026-12-12")

    listed = _json(pair, "quarantine", "list")
    assert listed["count"] == 1
    [entry] = listed["quarantine"]
    assert entry["record_id"] == nameless and entry["partner"] == "acme"
    assert entry["attempts"] == 2 and any("dealname" in r for r in entry["reasons"])

    status = _json(pair, "status")
    [acme] = status["partners"]
    assert acme["partner"] == "acme" and acme["shared_deals"] == 1
    assert acme["quarantine"] == 1 and acme["conflicts"] == 1
    assert acme["last_run_status"] == "completed" and acme["last_run"].endswith("+00:00")


def test_a_failed_run_is_in_the_document_with_its_exit_code(pair: Pair):
    result = pair.cli("run", "--partner", "nobody", "--json", ok=False)
    document = json.loads(result.stdout)
    assert document["exit_code"] == result.exit_code == 2
    assert document["runs"][0]["status"] == "failed" and "nobody" in document["runs"][0]["error"]


def test_piped_tables_keep_long_cells_on_one_line(pair: Pair):
    nameless = pair.create("partner", closedate="2026-10-01", **SHARED)
    pair.cli("run")
    [entry] = _json(pair, "quarantine", "list")["quarantine"]
    reason = entry["reasons"][0]
    lines = pair.cli("quarantine", "list").output.splitlines()
    [row] = [line for line in lines if nameless in line]
    assert reason in row and len(row) > 80  # the whole row, wider than a terminal's 80 columns
