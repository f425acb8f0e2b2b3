"""The look before a scheduled run: a pair with nothing new needs no run, for at most what a quiet
run reads; any kind of work (a change on either side, a deletion, quarantine, a mapping change)
needs one."""

from __future__ import annotations

from pathlib import Path

from dealsync.config import load_config
from dealsync.ledger import Ledger
from dealsync.pipeline.hub_read import read_for_cycle
from dealsync.probe import look_at
from tests.integration.conftest import Pair
from tests.integration.test_run_cost import _no_lookback
from tests.integration.test_sync import SHARED, _fail_next, _twin


def _look(pair: Pair) -> tuple[str | None, int]:
    """What a cycle's look says of acme, after the cycle's one read of the vendor; the API calls
    of both."""
    config = load_config(pair.config)
    ledger = Ledger.open(config.ledger_url)
    try:
        pair.reset_counts()
        read_for_cycle(config, ledger)
        reason = look_at(config, "acme", ledger).reason
        return reason, sum(
            sum(server.admin("GET", "requests").json()["by_route"].values())
            for server in pair.servers.values()
        )
    finally:
        ledger.close()


def _settle(pair: Pair) -> None:
    pair.cli("run")
    pair.cli("run")  # reads back the first run's own writes


def test_nothing_new_needs_no_run_and_every_kind_of_change_does(pair: Pair):
    _no_lookback(pair)
    assert _look(pair)[0] == "deals: the partner side was never synced"
    reg = pair.create("partner", dealname="Looked at", **SHARED)
    _settle(pair)
    reason, calls = _look(pair)
    assert (
        reason is None and calls <= 8
    )  # what a quiet run reads: at most 2 calls a side and object
    pair.reset_counts()
    _look(pair)
    assert pair.writes("partner") == pair.writes("vendor") == 0

    pair.edit("partner", reg, dealsync_pain="A new pain")
    assert _look(pair)[0] == "deals: partner records changed"
    _settle(pair)
    twin = _twin(pair, "vendor", f"acme:partner:{reg}")
    pair.edit("vendor", twin["id"], closedate="2027-04-01")
    assert _look(pair)[0] == "deals: vendor records the hub routed to it"
    _settle(pair)
    assert _look(pair)[0] is None

    pair.archive("vendor", twin["id"])  # archiving changes no modification time
    assert _look(pair)[0] == "deals: vendor records the hub routed to it"  # found by its count
    _settle(pair)
    assert _look(pair)[0] is None


def test_quarantine_and_a_mapping_change_need_a_run(pair: Pair, tmp_path):
    _no_lookback(pair)
    pair.create("partner", dealname="Q", **SHARED)
    _settle(pair)
    assert _look(pair)[0] is None
    _fail_next(pair, "vendor", "deals/batch/create", 477, count=6)  # busy past every retry
    pair.create("partner", dealname="Refused for now", **SHARED)
    pair.cli("run")
    assert _look(pair)[0] == "records in quarantine to retry"
    _settle(pair)
    assert _look(pair)[0] is None

    _fail_next(pair, "vendor", "deals/batch/create", 400, count=None)  # refused until fixed
    refused = pair.create("partner", dealname="Refused", **SHARED)
    _settle(pair)
    assert "a change" in pair.cli("quarantine", "list").output
    assert _look(pair)[0] is None  # waiting costs no run
    pair.servers["vendor"].admin("DELETE", "faults")
    pair.edit("partner", refused, dealsync_pain="Fixed")
    assert _look(pair)[0] == "deals: partner records changed"
    _settle(pair)
    assert "0 open" in pair.cli("quarantine", "list").output

    mapping = tmp_path / "more.yaml"
    original = Path("mappings/shared_deal.yaml").read_text()
    mapping.write_text(
        original.replace(
            "  - {name: pain, partner: dealsync_pain,",
            "  - {name: description, partner: description, vendor: description, type: string, "
            "direction: partner_to_vendor}\n  - {name: pain, partner: dealsync_pain,",
        )
    )
    pair.config.write_text(
        pair.config.read_text().replace("  - id: acme\n", f"  - id: acme\n    mapping: {mapping}\n")
    )
    assert _look(pair)[0] == "deals: the mapping's synced fields changed"


def test_a_syncs_own_writes_read_back_need_no_run_and_are_read_once(pair: Pair):
    _no_lookback(pair)
    reg = pair.create("partner", dealname="Read back", **SHARED)
    private = pair.create("partner", dealname="Private")
    pair.cli("run")  # writes the vendor's stage and amount into the registration
    assert pair.deal("partner", reg, "dealsync_vendor_stage")["dealsync_vendor_stage"]
    pair.edit("partner", private, dealname="Still private")  # a change no run acts on either
    before = _cursor(pair)
    assert _look(pair)[0] is None  # the registration as the ledger agreed it
    assert _cursor(pair) > before  # moved past what it judged, as a run finding nothing would
    pair.edit("partner", reg, dealsync_next_steps="A real change")
    assert _look(pair)[0] == "deals: partner records changed"


def _cursor(pair: Pair) -> int:
    ledger = Ledger.open(load_config(pair.config).ledger_url)
    try:
        value = ledger.cursor("acme", "partner", "deals")
        assert value is not None
        return value
    finally:
        ledger.close()
