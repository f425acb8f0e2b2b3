"""The contract every connector passes, whatever its CRM; where CRMs differ, a declared capability says how."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from connectors.base import PropertySpec, WriteInput
from connectors.errors import ConnectorError
from tests.contract.conftest import bottlecrm_kit


def _create_deals(kit, names: list[str]) -> list[str]:
    inputs = [kit.deal(f"r{i}", name) for i, name in enumerate(names)]
    outcomes = kit.connector.create("deals", inputs)
    assert [o.ref for o in outcomes] == [i.ref for i in inputs]
    assert all(o.ok and o.created for o in outcomes), [o.error for o in outcomes]
    return [o.record.id for o in outcomes]


def _pull(kit, since):
    pages = list(kit.connector.pull_changes("deals", since, [kit.name_property]))
    records = [r for p in pages for r in p.records]
    return records, (pages[-1].cursor if pages else since)


def test_full_pull_returns_every_active_record(kit):
    names = [f"Deal {i}" for i in range(120)]
    ids = _create_deals(kit, names)
    kit.archive_deal(ids[0])
    records, cursor = _pull(kit, None)
    assert sorted(r.id for r in records) == sorted(ids[1:])
    assert {r.properties[kit.name_property] for r in records} == set(names[1:])
    if kit.connector.capabilities.change_detection == "cursor":
        assert cursor is not None and cursor > 0
    else:
        assert cursor is None  # snapshot: no cursor; every pull is a complete scan


def _next_stamp(kit) -> None:
    """Wait until the CRM's clock can stamp a later time than the records written so far (the next
    millisecond; the next second on Salesforce)."""
    step = kit.connector.capabilities.cursor_step_ms
    start = time.time_ns() // 1_000_000 // step
    while time.time_ns() // 1_000_000 // step == start:
        time.sleep(0.005)


def test_changes_are_found_by_cursor_or_by_complete_scan(kit):
    (old,) = _create_deals(kit, ["old"])
    _next_stamp(kit)
    ids = _create_deals(kit, ["a", "b", "c"])
    _, cursor = _pull(kit, None)
    _next_stamp(kit)
    kit.edit_deal(ids[1], {kit.name_property: "b, renamed"})
    changed, new_cursor = _pull(kit, cursor)
    by_id = {r.id: r for r in changed}
    assert by_id[ids[1]].properties[kit.name_property] == "b, renamed"
    if kit.connector.capabilities.change_detection == "cursor":
        # Records stamped exactly at the cursor may be read again; older ones never are.
        assert old not in by_id and new_cursor > cursor
        nothing, same_cursor = _pull(kit, new_cursor + 1)
        assert nothing == [] and same_cursor == new_cursor + 1
    else:
        assert set(by_id) == {old, *ids}  # the engine compares the scan with its snapshot


def test_deleted_records_are_listed_or_vanish_from_the_scan(kit):
    ids = _create_deals(kit, ["keep", "drop"])
    outcomes = kit.connector.archive("deals", [ids[1]])
    assert [o.ok for o in outcomes] == [True]
    assert set(kit.connector.read("deals", ids, [kit.name_property])) == {ids[0]}
    archived = [
        r for page in kit.connector.list_archived("deals", [kit.name_property]) for r in page
    ]
    if kit.connector.capabilities.change_detection == "cursor":
        assert [r.id for r in archived] == [ids[1]] and archived[0].archived
    else:
        assert archived == []  # hard deletes: gone from a complete scan
        assert ids[1] not in {r.id for r in _pull(kit, None)[0]}
    assert kit.connector.archive("deals", [ids[1]])[0].ok  # deleting twice is fine


def test_upsert_on_the_key_never_duplicates(kit):
    first = kit.connector.upsert("deals", kit.key_property, [kit.deal("acme:p:1", "One")])
    again = kit.connector.upsert(
        "deals", kit.key_property, [WriteInput("acme:p:1", {kit.name_property: "One again"})]
    )
    assert first[0].created and not again[0].created
    assert first[0].record.id == again[0].record.id
    by_key = kit.connector.read(
        "deals", ["acme:p:1"], [kit.name_property], id_property=kit.key_property
    )
    assert by_key["acme:p:1"].properties[kit.name_property] == "One again"
    assert len(_pull(kit, None)[0]) == 1


def test_update_reports_each_record(kit):
    ids = _create_deals(kit, ["x", "y"])
    ghost = kit.missing_id or str(uuid.uuid4())
    outcomes = kit.connector.update(
        "deals",
        [
            WriteInput("first", {kit.name_property: "x2"}, id=ids[0]),
            WriteInput("ghost", {kit.name_property: "nobody"}, id=ghost),
            WriteInput("second", {kit.name_property: "y2"}, id=ids[1]),
        ],
    )
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[0].record.properties[kit.name_property] == "x2"
    assert outcomes[1].error.retriable is False


def test_one_bad_record_does_not_block_the_others(kit):
    inputs = [kit.deal(f"r{i}", f"ok {i}", **{kit.amount_property: str(i)}) for i in range(6)]
    inputs[3] = kit.deal("r3", "bad", **{kit.amount_property: "a lot"})
    outcomes = kit.connector.create("deals", inputs)
    assert [o.ref for o in outcomes if not o.ok] == ["r3"]
    assert len({o.record.id for o in outcomes if o.ok}) == 5


def test_a_duplicate_key_is_refused_by_crms_that_enforce_uniqueness(kit):
    if kit.connector.capabilities.idempotent_create != "upsert":
        assert kit.connector.capabilities.idempotent_create == "lookup"
        return  # the CRM enforces nothing: upsert looks the key up first (tested above)
    kit.connector.upsert("deals", kit.key_property, [kit.deal("k-taken", "holder")])
    outcomes = kit.connector.create(
        "deals",
        [
            kit.deal("fresh", "fresh", **{kit.key_property: "k-new"}),
            kit.deal("clash", "clash", **{kit.key_property: "k-taken"}),
        ],
    )
    assert [o.ok for o in outcomes] == [True, False]


def test_notes_hang_on_deals_and_are_edited_and_deleted(kit):
    (deal_id,) = _create_deals(kit, ["with notes"])
    connector, text = kit.connector, kit.note_text_property
    created = connector.create(
        "notes",
        [
            WriteInput(
                n, {**kit.note_base_properties, text: words}, associations=[("deals", deal_id, 214)]
            )
            for n, words in (("n1", "shared words"), ("n2", "more words"))
        ],
    )
    assert all(o.ok and o.created for o in created), created
    first, second = (o.record.id for o in created)
    assert set(connector.associations("deals", "notes", [deal_id])[deal_id]) == {first, second}
    assert connector.associations("notes", "deals", [first]) == {first: (deal_id,)}
    edited = connector.update("notes", [WriteInput(first, {text: "shared, edited"}, id=first)])
    assert edited[0].ok and edited[0].record.properties[text] == "shared, edited"
    assert connector.archive("notes", [second])[0].ok
    connector.associations("deals", "notes", [deal_id])  # a snapshot CRM lists notes deal by deal
    found = connector.read("notes", [first, second], [text])
    assert {i: r.properties[text] for i, r in found.items()} == {first: "shared, edited"}
    if not connector.capabilities.note_authors:
        # The declared difference: such a CRM's notes are always the connection user's.
        author, connection_user = kit.note_author
        assert found[first].properties[author] in connection_user


def test_bottlecrm_internal_comments_are_flagged(bottlecrm_server):
    connector = bottlecrm_kit(bottlecrm_server).connector
    (deal_id,) = [
        o.record.id
        for o in connector.create("deals", [WriteInput("d", {"name": "x", "stage": "PROSPECTING"})])
    ]
    shared = connector.add_comment(deal_id, "shared words")
    private = connector.add_comment(deal_id, "private words", internal=True)
    comments = {c["id"]: c for c in connector.comments(deal_id)}
    assert not comments[shared]["is_internal"] and comments[private]["is_internal"]


def test_owners_are_the_active_users(kit):
    assert {o.email for o in kit.connector.owners()} == kit.owner_emails


def test_files_round_trip_with_the_same_bytes(kit):
    content = bytes(range(256)) * 2000
    connector = kit.connector
    if connector.capabilities.files_on == "notes":
        info = connector.upload_file("quote.bin", content, "/dealsync-test")
        assert info.size == len(content)
    else:
        (deal_id,) = _create_deals(kit, ["with a file"])
        info = connector.attach(deal_id, "quote.bin", content)
    downloaded = b"".join(connector.download_file(info.id, chunk_size=65536))
    assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(content).hexdigest()
    connector.delete_file(info.id)
    if connector.capabilities.files_on == "notes":
        assert connector.file_info(info.id) is None
    else:
        assert not connector.deal_attachments([deal_id]).get(deal_id)
    connector.delete_file(info.id)  # deleting twice is fine


CUSTOM_NAMES = {
    "hubspot": "dealsync_{}",
    "bottlecrm": "cf_dealsync_{}",
    "salesforce": "dealsync_{}__c",
}


def test_ensure_properties_is_idempotent(kit):
    name = CUSTOM_NAMES[kit.connector.kind].format("pain")
    spec = PropertySpec(name, "Pain", type="string", field_type="textarea")
    assert kit.connector.ensure_properties("deals", [spec]) == [name]
    assert kit.connector.ensure_properties("deals", [spec]) == []
    if kit.connector.kind != "bottlecrm":  # BottleCRM's custom fields are all text
        with pytest.raises(ConnectorError, match="dealsync_pain"):
            kit.connector.ensure_properties("deals", [PropertySpec(name, "Pain", type="number")])


def test_property_problems_name_what_init_would_create_and_nothing_after(kit):
    name = CUSTOM_NAMES[kit.connector.kind].format("next")
    spec = PropertySpec(name, "Next steps", type="string", field_type="textarea")
    [problem] = kit.connector.property_problems("deals", [spec], [])
    assert name in problem and "dealsync init" in problem
    kit.connector.ensure_properties("deals", [spec])
    assert kit.connector.property_problems("deals", [spec], []) == []
    if kit.connector.kind != "bottlecrm":
        [wrong_type] = kit.connector.property_problems(
            "deals", [PropertySpec(name, "Next", type="number")], []
        )
        assert "number" in wrong_type
        [unknown] = kit.connector.property_problems(
            "deals", [], [kit.name_property, "no_such_field"]
        )
        assert "no_such_field" in unknown and "mapping" in unknown
