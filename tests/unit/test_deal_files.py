"""The plan for files of shared deals where the partner keeps files on the deal (BottleCRM)."""

from __future__ import annotations

from dataclasses import replace

from connectors.base import FileInfo
from dealsync.deal_file_plan import plan_deal_files
from dealsync.ledger.models import DealFileRow
from dealsync.mapping import DeletionPolicy, load_notes_mapping

MAPPING = load_notes_mapping("mappings/bottlecrm_shared_notes.yaml")
LINKS = {1: ("p-deal", "v-deal")}


def _row(row_id: int, origin: str, attachment: str, note: str, file_id: str) -> DealFileRow:
    return DealFileRow(
        id=row_id,
        pair="beta",
        deal_link_id=1,
        origin=origin,
        sha256="x",
        name=f"{attachment}.pdf",
        partner_file_id=attachment,
        vendor_note_id=note,
        vendor_file_id=file_id,
    )


def _plan(tracked, partner_files, vendor_notes, candidates=(), mapping=MAPPING, links=LINKS):
    partner_now = {"p-deal": tuple(FileInfo(a, f"{a}.pdf", 0) for a in partner_files)}
    return plan_deal_files(tracked, links, partner_now, vendor_notes, candidates, mapping)


def test_new_files_cross_each_way_once():
    tracked = [_row(1, "partner", "a1", "n1", "f1")]
    plan = _plan(tracked, ["a1", "a2"], {"n1": ("f1",), "n9": ("f9", "f1")}, [("n9", "v-deal")])
    assert [p.file.id for p in plan.to_vendor] == ["a2"]
    assert [(v.note_id, v.file_id) for v in plan.to_partner] == [("n9", "f9"), ("n9", "f1")]
    assert not plan.remove_on_vendor and not plan.remove_on_partner and not plan.ended


def test_a_file_on_a_note_of_an_unshared_deal_stays():
    plan = _plan([], [], {"n9": ("f9",)}, [("n9", "some-other-deal")])
    assert plan.to_partner == []


def test_deleting_an_attachment_archives_the_file_note_or_trims_the_vendor_note():
    tracked = [
        _row(1, "partner", "a1", "n1", "f1"),  # a file note dealsync made
        _row(2, "vendor", "a2", "n2", "f2"),  # a vendor note with two files
        _row(3, "vendor", "a3", "n2", "f3"),
    ]
    plan = _plan(tracked, ["a3"], {"n1": ("f1",), "n2": ("f2", "f3")})
    assert [r.id for r in plan.remove_on_vendor] == [1, 2]
    assert plan.archive_notes == {"n1"}  # n2 keeps f3, and it is the vendor's own note


def test_removing_a_file_on_the_vendor_deletes_the_attachment_and_both_gone_ends_the_row():
    tracked = [_row(1, "vendor", "a1", "n1", "f1"), _row(2, "partner", "a2", "n2", "f2")]
    plan = _plan(tracked, ["a1"], {"n1": ()})  # f1 taken off n1; n2 archived and a2 deleted
    assert [r.id for r in plan.remove_on_partner] == [1]
    assert plan.ended == {2: "deleted"}


def test_an_unshared_deal_leaves_its_files_alone():
    plan = _plan([_row(1, "vendor", "a1", "n1", "f1")], [], {}, links={})
    assert plan.ended == {1: "unlinked"} and not plan.remove_on_partner


def test_the_deletion_policy_and_the_brake_hold_deletions_back():
    keep = replace(MAPPING, deletion={"partner_to_vendor": DeletionPolicy("unlink")})
    plan = _plan([_row(1, "partner", "a1", "n1", "f1")], [], {"n1": ("f1",)}, mapping=keep)
    assert plan.ended == {1: "unlinked"} and not plan.remove_on_vendor
    many = [_row(i, "partner", f"a{i}", f"n{i}", f"f{i}") for i in range(1, 31)]
    notes = {f"n{i}": (f"f{i}",) for i in range(1, 31)}
    braked = _plan(many, [], notes)
    assert braked.brake and not braked.remove_on_vendor and not braked.archive_notes
    assert not _plan(many[:5], [], notes).brake
