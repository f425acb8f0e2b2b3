"""The contract every connector passes, whatever its CRM."""

from __future__ import annotations

import hashlib
import time

import pytest

from connectors.base import PropertySpec, WriteInput
from connectors.errors import ConnectorError


def _create_deals(kit, names: list[str]) -> list[str]:
    inputs = [
        WriteInput(ref=f"r{i}", properties={kit.deal_name_property: name})
        for i, name in enumerate(names)
    ]
    outcomes = kit.connector.create("deals", inputs)
    assert [o.ref for o in outcomes] == [i.ref for i in inputs]
    assert all(o.ok and o.created for o in outcomes), [o.error for o in outcomes]
    return [o.record.id for o in outcomes]


def _pull(kit, since, props=("dealname",)):
    pages = list(kit.connector.pull_changes("deals", since, list(props)))
    records = [r for p in pages for r in p.records]
    return records, (pages[-1].cursor if pages else since)


def test_full_pull_returns_every_active_record_with_a_cursor(kit):
    names = [f"Deal {i}" for i in range(230)]
    ids = _create_deals(kit, names)
    kit.archive_deal(ids[0])
    records, cursor = _pull(kit, None)
    assert sorted(r.id for r in records) == sorted(ids[1:])
    assert {r.properties["dealname"] for r in records} == set(names[1:])
    assert cursor is not None and cursor > 0


def test_incremental_pull_returns_what_changed_since_the_cursor(kit):
    (old,) = _create_deals(kit, ["old"])
    time.sleep(0.01)
    ids = _create_deals(kit, ["a", "b", "c"])
    _, cursor = _pull(kit, None)
    time.sleep(0.01)
    kit.edit_deal(ids[1], {"dealname": "b, renamed"})
    changed, new_cursor = _pull(kit, cursor)
    by_id = {r.id: r for r in changed}
    # Records stamped exactly at the cursor may be read again; older ones never are.
    assert ids[1] in by_id and old not in by_id
    assert by_id[ids[1]].properties["dealname"] == "b, renamed"
    assert new_cursor > cursor
    nothing, same_cursor = _pull(kit, new_cursor + 1)
    assert nothing == [] and same_cursor == new_cursor + 1


def test_archived_records_are_listed_and_no_longer_read(kit):
    ids = _create_deals(kit, ["keep", "drop"])
    outcomes = kit.connector.archive("deals", [ids[1]])
    assert [o.ok for o in outcomes] == [True]
    archived = [r for page in kit.connector.list_archived("deals", ["dealname"]) for r in page]
    assert [r.id for r in archived] == [ids[1]] and archived[0].archived
    assert set(kit.connector.read("deals", ids, ["dealname"])) == {ids[0]}


def test_upsert_on_the_key_never_duplicates(kit):
    first = kit.connector.upsert(
        "deals", kit.key_property, [WriteInput("acme:p:1", {"dealname": "One"})]
    )
    again = kit.connector.upsert(
        "deals", kit.key_property, [WriteInput("acme:p:1", {"dealname": "One again"})]
    )
    assert first[0].created and not again[0].created
    assert first[0].record.id == again[0].record.id
    by_key = kit.connector.read("deals", ["acme:p:1"], ["dealname"], id_property=kit.key_property)
    assert by_key["acme:p:1"].properties["dealname"] == "One again"


def test_update_reports_each_record(kit):
    ids = _create_deals(kit, ["x", "y"])
    outcomes = kit.connector.update(
        "deals",
        [
            WriteInput("first", {"dealname": "x2"}, id=ids[0]),
            WriteInput("ghost", {"dealname": "nobody"}, id="1"),
            WriteInput("second", {"dealname": "y2"}, id=ids[1]),
        ],
    )
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[0].record.properties["dealname"] == "x2"
    assert "not found" in str(outcomes[1].error).lower()
    assert outcomes[1].error.retriable is False


def test_one_bad_record_does_not_block_the_batch(kit):
    inputs = [WriteInput(f"r{i}", {"dealname": f"ok {i}", "amount": str(i)}) for i in range(10)]
    inputs[6] = WriteInput("r6", {"dealname": "bad", "amount": "a lot"})
    outcomes = kit.connector.create("deals", inputs)
    assert [o.ref for o in outcomes if not o.ok] == ["r6"]
    assert "amount" in str(outcomes[6].error)
    assert len({o.record.id for o in outcomes if o.ok}) == 9


def test_a_duplicate_key_fails_only_its_own_record(kit):
    kit.connector.upsert("deals", kit.key_property, [WriteInput("k-taken", {"dealname": "holder"})])
    outcomes = kit.connector.create(
        "deals",
        [
            WriteInput("fresh", {"dealname": "fresh", "dealsync_key": "k-new"}),
            WriteInput("clash", {"dealname": "clash", "dealsync_key": "k-taken"}),
        ],
    )
    assert [o.ok for o in outcomes] == [True, False]
    assert outcomes[0].record.properties["dealsync_key"] == "k-new"


def test_notes_associate_to_deals(kit):
    (deal_id,) = _create_deals(kit, ["with note"])
    outcomes = kit.connector.create(
        "notes",
        [
            WriteInput(
                "n1",
                {"hs_timestamp": "2026-11-01T00:00:00Z", "hs_note_body": "hi"},
                associations=[("deals", deal_id, 214)],
            )
        ],
    )
    note_id = outcomes[0].record.id
    assert kit.connector.associations("notes", "deals", [note_id]) == {note_id: (deal_id,)}
    assert kit.connector.associations("deals", "notes", [deal_id]) == {deal_id: (note_id,)}


def test_owners_are_listed_without_archived_ones(kit, sandbox):
    sandbox.admin(
        "POST", "owners", json={"email": "rep1@vendor.test", "firstName": "R", "lastName": "One"}
    )
    sandbox.admin("POST", "owners", json={"email": "old@vendor.test", "archived": True})
    assert [o.email for o in kit.connector.owners()] == ["rep1@vendor.test"]


def test_files_round_trip_with_the_same_bytes(kit):
    content = bytes(range(256)) * 5000
    info = kit.connector.upload_file("quote.bin", content, "/dealsync-test")
    assert info.size == len(content)
    downloaded = b"".join(kit.connector.download_file(info.id, chunk_size=65536))
    assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(content).hexdigest()
    kit.connector.delete_file(info.id)
    assert kit.connector.file_info(info.id) is None
    kit.connector.delete_file(info.id)  # deleting twice is fine


def test_ensure_properties_is_idempotent_and_refuses_a_mismatch(kit):
    spec = PropertySpec("dealsync_pain", "Pain", type="string", field_type="textarea")
    assert kit.connector.ensure_properties("deals", [spec]) == ["dealsync_pain"]
    assert kit.connector.ensure_properties("deals", [spec]) == []
    with pytest.raises(ConnectorError, match="dealsync_pain"):
        kit.connector.ensure_properties(
            "deals", [PropertySpec("dealsync_pain", "Pain", type="number")]
        )
