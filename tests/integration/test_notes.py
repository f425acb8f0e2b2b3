"""Shared notes, comments and files between two sandbox CRMs; private notes stay home."""

from __future__ import annotations

import hashlib
import json

import requests

from tests.integration.test_run_cost import _no_lookback
from tests.integration.test_sync import SHARED, _twin

NOTE_PROPS = (
    "hs_note_body",
    "hs_timestamp",
    "dealsync_shared",
    "dealsync_reply_to",
    "dealsync_key",
    "hs_attachment_ids",
    "hubspot_owner_id",
)
ON_DEAL = 214


def _note(pair, side: str, deal_id: str, body: str, owner: str | None = None, **props) -> str:
    properties = {"hs_note_body": body, "hs_timestamp": "2026-11-20T10:00:00Z", **props}
    if owner:
        properties["hubspot_owner_id"] = owner
    body_json = {
        "properties": properties,
        "associations": [
            {
                "to": {"id": deal_id},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": ON_DEAL}],
            }
        ],
    }
    return pair.api(side, "POST", "/crm/v3/objects/notes", json=body_json).json()["id"]


def _notes_on(pair, side: str, deal_id: str) -> list[dict]:
    listed = pair.api(side, "GET", f"/crm/v4/objects/deals/{deal_id}/associations/notes").json()[
        "results"
    ]
    ids = [str(r["toObjectId"]) for r in listed]
    if not ids:
        return []
    read = pair.api(
        side,
        "POST",
        "/crm/v3/objects/notes/batch/read",
        json={"inputs": [{"id": i} for i in ids], "properties": list(NOTE_PROPS)},
    )
    return [{"id": r["id"], **r["properties"]} for r in read.json()["results"]]


def _owner(pair, side: str, email: str) -> str:
    return pair.api(side, "GET", "/crm/v3/owners", params={"email": email}).json()["results"][0][
        "id"
    ]


def _upload(pair, side: str, name: str, content: bytes) -> str:
    server = pair.servers[side]
    response = requests.post(
        f"{server.base_url}/files/v3/files",
        headers={"Authorization": f"Bearer {server.token}"},
        files={"file": (name, content)},
        data={"fileName": name, "folderPath": "/uploads", "options": '{"access": "PRIVATE"}'},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _download(pair, side: str, file_id: str) -> bytes | None:
    server = pair.servers[side]
    response = requests.get(
        f"{server.base_url}/files/v3/files/{file_id}/download",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )
    return response.content if response.status_code == 200 else None


def _shared_deal(pair) -> tuple[str, str]:
    reg = pair.create("partner", dealname="Noted deal", **SHARED)
    pair.cli("run")
    return reg, _twin(pair, "vendor", f"acme:partner:{reg}")["id"]


def test_shared_notes_cross_both_ways_private_ones_never(pair):
    reg, vid = _shared_deal(pair)
    ann = _owner(pair, "partner", "ann@acme.test")
    _note(pair, "partner", reg, "<p>Call went well</p>", ann, dealsync_shared="true")
    _note(pair, "partner", reg, "<p>Our margin is thin</p>", dealsync_shared="false")
    _note(pair, "partner", reg, "<p>Internal scribble</p>")
    rep = _owner(pair, "vendor", "rep1@vendor.test")
    _note(pair, "vendor", vid, "<p>Pricing approved</p>", rep, dealsync_shared="true")
    _note(pair, "vendor", vid, "<p>Vendor-internal</p>")
    pair.cli("run")

    vendor_notes = {n["hs_note_body"]: n for n in _notes_on(pair, "vendor", vid)}
    partner_notes = {n["hs_note_body"]: n for n in _notes_on(pair, "partner", reg)}
    copied = next(b for b in vendor_notes if "Call went well" in b)
    # Ann has no account on the vendor side: the body names her.
    assert copied.startswith('<p class="dealsync-author">ann Test (ann@acme.test) wrote:</p>')
    assert vendor_notes[copied]["dealsync_shared"] == "true"
    assert not any("margin" in b or "scribble" in b for b in vendor_notes)
    assert "<p>Pricing approved</p>" in "".join(partner_notes)
    assert not any("Vendor-internal" in b for b in partner_notes)

    pair.reset_counts()
    pair.cli("run")
    assert pair.writes("vendor") == pair.writes("partner") == 0


def test_edits_comments_and_archiving_follow_the_note(pair):
    reg, vid = _shared_deal(pair)
    note = _note(pair, "partner", reg, "<p>v1</p>", dealsync_shared="true")
    pair.cli("run")
    twin = next(
        n for n in _notes_on(pair, "vendor", vid) if n["dealsync_key"] == f"acme:partner:{note}"
    )

    pair.api(
        "partner",
        "PATCH",
        f"/crm/v3/objects/notes/{note}",
        json={"properties": {"hs_note_body": "<p>v2</p>"}},
    )
    comment = _note(pair, "vendor", vid, "<p>Looks good</p>", dealsync_reply_to=twin["id"])
    pair.cli("run")
    assert (
        pair.api(
            "vendor",
            "GET",
            f"/crm/v3/objects/notes/{twin['id']}",
            params={"properties": "hs_note_body"},
        ).json()["properties"]["hs_note_body"]
        == "<p>v2</p>"
    )
    partner_comment = next(
        n for n in _notes_on(pair, "partner", reg) if n["dealsync_key"] == f"acme:vendor:{comment}"
    )
    assert (
        partner_comment["dealsync_reply_to"] == note
    )  # points at the right note on the partner side

    pair.api("partner", "DELETE", f"/crm/v3/objects/notes/{note}")
    pair.cli("run")
    assert pair.deal("vendor", vid) is not None
    gone = requests.get(
        f"{pair.servers['vendor'].base_url}/crm/v3/objects/notes/{twin['id']}",
        headers={"Authorization": f"Bearer {pair.servers['vendor'].token}"},
        timeout=30,
    )
    assert gone.status_code == 404


def test_files_are_copied_with_the_same_bytes_and_deleted_both_ways(pair):
    reg, vid = _shared_deal(pair)
    content = bytes(range(256)) * 4096  # 1 MiB
    first = _upload(pair, "partner", "proposal.pdf", content)
    second = _upload(pair, "partner", "terms.txt", b"terms\n" * 100)
    note = _note(
        pair,
        "partner",
        reg,
        "<p>Files attached</p>",
        dealsync_shared="true",
        hs_attachment_ids=f"{first};{second}",
    )
    pair.cli("run")
    twin = next(
        n for n in _notes_on(pair, "vendor", vid) if n["dealsync_key"] == f"acme:partner:{note}"
    )
    copies = twin["hs_attachment_ids"].split(";")
    assert len(copies) == 2 and not set(copies) & {first, second}
    digests = {hashlib.sha256(_download(pair, "vendor", c)).hexdigest() for c in copies}
    assert digests == {
        hashlib.sha256(content).hexdigest(),
        hashlib.sha256(b"terms\n" * 100).hexdigest(),
    }

    pair.reset_counts()
    pair.cli("run")
    uploads = (
        pair.servers["vendor"]
        .admin("GET", "requests")
        .json()["by_route"]
        .get("POST /files/v3/files", 0)
    )
    assert uploads == 0  # an unchanged file is never uploaded twice

    # The vendor removes one file from its note: the partner's note loses it and its file is deleted.
    keep = next(
        c
        for c in copies
        if hashlib.sha256(_download(pair, "vendor", c)).hexdigest()
        == hashlib.sha256(content).hexdigest()
    )
    pair.api(
        "vendor",
        "PATCH",
        f"/crm/v3/objects/notes/{twin['id']}",
        json={"properties": {"hs_attachment_ids": keep}},
    )
    pair.cli("run")
    partner_note = pair.api(
        "partner",
        "GET",
        f"/crm/v3/objects/notes/{note}",
        params={"properties": "hs_attachment_ids"},
    ).json()
    assert partner_note["properties"]["hs_attachment_ids"] == first
    assert _download(pair, "partner", second) is None


def test_an_oversized_file_is_quarantined_and_the_note_still_syncs(pair, tmp_path):
    pair.config.write_text(pair.config.read_text() + "files: {max_bytes: 1000}\n")
    reg, vid = _shared_deal(pair)
    big = _upload(pair, "partner", "huge.bin", b"x" * 5000)
    note = _note(
        pair,
        "partner",
        reg,
        "<p>With a big file</p>",
        dealsync_shared="true",
        hs_attachment_ids=big,
    )
    result = pair.cli("run")
    assert "over the 1,000-byte limit" in pair.cli("quarantine", "list").output, result.output
    twin = next(
        n for n in _notes_on(pair, "vendor", vid) if n["dealsync_key"] == f"acme:partner:{note}"
    )
    assert twin["hs_attachment_ids"] in (None, "")


def test_a_note_too_long_for_the_vendor_waits_for_its_author_to_shorten_it(pair):
    _no_lookback(pair)
    reg, vid = _shared_deal(pair)
    ann = _owner(pair, "partner", "ann@acme.test")
    body = "<p>" + "x" * (65_536 - 7) + "</p>"  # the partner's limit exactly: the author line
    note = _note(pair, "partner", reg, body, ann, dealsync_shared="true")  # makes it too long
    pair.cli("run")
    pair.cli("run")
    listed = json.loads(pair.cli("quarantine", "list", "--json").output)["quarantine"]
    assert [(q["record_id"], q["waits_for"]) for q in listed] == [(note, "change")]
    pair.reset_counts()
    pair.cli("run")
    assert pair.writes("vendor") == 0  # the same body is not sent again to be refused again

    pair.api(
        "partner",
        "PATCH",
        f"/crm/v3/objects/notes/{note}",
        json={"properties": {"hs_note_body": "<p>Shortened</p>"}},
    )
    pair.cli("run")
    assert any("Shortened" in n["hs_note_body"] for n in _notes_on(pair, "vendor", vid))
    assert "0 open" in pair.cli("quarantine", "list").output


def test_the_welcome_note_is_the_first_shared_note_of_a_conversion(pair):
    conv = pair.create(
        "vendor",
        dealname="Converted",
        dealsync_partner="acme",
        dealsync_partner_owner_email="ann@acme.test",
        dealsync_welcome_note="Welcome aboard, Ann: here is the context.",
    )
    pair.cli("run")
    partner_deal = _twin(pair, "partner", f"acme:vendor:{conv}")["id"]
    notes = _notes_on(pair, "partner", partner_deal)
    assert [n["hs_note_body"] for n in notes] == ["Welcome aboard, Ann: here is the context."]
    assert notes[0]["dealsync_shared"] == "true"
    pair.reset_counts()
    pair.cli("run")
    assert pair.writes("partner") == 0


def test_a_dry_run_shows_the_notes_it_would_write_and_writes_none(pair):
    reg, vid = _shared_deal(pair)
    _note(pair, "partner", reg, "<p>Would cross</p>", dealsync_shared="true")
    _note(pair, "partner", reg, "<p>Private</p>")
    pair.reset_counts()
    output = pair.cli("run", "--dry-run").output
    assert "Notes plan (nothing was written)" in output and f"on deal {vid}" in output
    assert output.count(f"on deal {vid}") == 1  # the shared note, not the private one
    assert pair.writes("vendor") == pair.writes("partner") == 0
    assert _notes_on(pair, "vendor", vid) == []


def test_notes_of_a_deal_shared_later_cross_only_if_shared_and_edits_keep_private_notes_home(pair):
    deal = pair.create("partner", dealname="Shared later")
    _note(pair, "partner", deal, "<p>Old private note</p>")
    _note(pair, "partner", deal, "<p>Old shared note</p>", dealsync_shared="true")
    pair.cli("run")
    pair.edit("partner", deal, dealsync_shared="true")
    pair.cli("run")
    vid = _twin(pair, "vendor", f"acme:partner:{deal}")["id"]
    assert [n["hs_note_body"] for n in _notes_on(pair, "vendor", vid)] == ["<p>Old shared note</p>"]
    private = _note(pair, "partner", deal, "<p>New private note</p>")
    pair.cli("run")
    pair.api(
        "partner",
        "PATCH",
        f"/crm/v3/objects/notes/{private}",
        json={"properties": {"hs_note_body": "<p>edited, still private</p>"}},
    )
    pair.cli("run")
    assert [n["hs_note_body"] for n in _notes_on(pair, "vendor", vid)] == ["<p>Old shared note</p>"]


def test_a_deleted_file_disappears_from_the_twin_note_and_its_copy_is_deleted(pair):
    reg, vid = _shared_deal(pair)
    file_id = _upload(pair, "vendor", "spec.txt", b"spec\n" * 50)
    note = _note(
        pair,
        "vendor",
        vid,
        "<p>Spec attached</p>",
        dealsync_shared="true",
        hs_attachment_ids=file_id,
    )
    pair.cli("run")
    twin = next(
        n for n in _notes_on(pair, "partner", reg) if n["dealsync_key"] == f"acme:vendor:{note}"
    )
    copy = twin["hs_attachment_ids"]
    assert _download(pair, "partner", copy) == b"spec\n" * 50
    pair.api("vendor", "DELETE", f"/files/v3/files/{file_id}")
    # Deleting a file does not touch its note: a full run (or the nightly audit) finds it.
    pair.cli("run", "--full")
    after = pair.api(
        "partner",
        "GET",
        f"/crm/v3/objects/notes/{twin['id']}",
        params={"properties": "hs_attachment_ids"},
    ).json()
    assert after["properties"]["hs_attachment_ids"] in (None, "")
    assert _download(pair, "partner", copy) is None


def test_a_shared_note_made_private_leaves_the_other_crm_and_later_edits_stay_home(pair):
    reg, vid = _shared_deal(pair)
    note = _note(pair, "partner", reg, "<p>Visit planned</p>", dealsync_shared="true")
    pair.cli("run")
    assert any("Visit" in n["hs_note_body"] for n in _notes_on(pair, "vendor", vid))
    pair.api(
        "partner",
        "PATCH",
        f"/crm/v3/objects/notes/{note}",
        json={"properties": {"dealsync_shared": "false", "hs_note_body": "<p>Our cost: 12k</p>"}},
    )
    pair.cli("run")
    assert not any(
        "Visit" in n["hs_note_body"] or "12k" in n["hs_note_body"]
        for n in _notes_on(pair, "vendor", vid)
    )
    assert pair.cli("run", "--full").exit_code == 0
    assert _notes_on(pair, "vendor", vid) == []
    assert _notes_on(pair, "partner", reg)[0]["hs_note_body"] == "<p>Our cost: 12k</p>"
