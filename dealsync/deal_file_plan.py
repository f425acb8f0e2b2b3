"""The plan of the files of shared deals, where the partner CRM keeps files on the deal. Pure.

A partner attachment crosses as a shared vendor note carrying the same bytes; a file on a vendor
shared note crosses as an attachment; deleting either deletes the other (the deletion policy and the
brake of the notes mapping apply). The ledger's `deal_files` rows are the base.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from connectors.base import FileInfo
from dealsync.ledger.models import DealFileRow
from dealsync.mapping import NotesMapping
from dealsync.model import Side
from dealsync.rules import brake_engaged


def file_note_key(pair: str, attachment_id: str) -> str:
    """The key of the vendor note carrying a partner attachment (not a note key: the notes phase
    ignores these notes, this phase owns them)."""
    return f"{pair}:file:{attachment_id}"


def attachment_key(pair: str, note_id: str, file_id: str) -> str:
    """The intent key of the attachment made from a file on a vendor note."""
    return f"{pair}:vendor:file-{note_id}-{file_id}"


@dataclass(frozen=True)
class PartnerFile:
    """An attachment of a linked partner deal that the vendor does not have yet."""

    link_id: int
    partner_deal: str
    vendor_deal: str
    file: FileInfo


@dataclass(frozen=True)
class VendorFile:
    """A file on a vendor shared note of a linked deal that the partner does not have yet."""

    link_id: int
    partner_deal: str
    note_id: str
    file_id: str


@dataclass
class DealFilePlan:
    """The file writes of one run."""

    to_vendor: list[PartnerFile] = field(default_factory=list)
    to_partner: list[VendorFile] = field(default_factory=list)
    remove_on_vendor: list[DealFileRow] = field(default_factory=list)
    remove_on_partner: list[DealFileRow] = field(default_factory=list)
    archive_notes: set[str] = field(default_factory=set)  # vendor file notes left with no file
    ended: dict[int, str] = field(default_factory=dict)  # row id -> deleted | unlinked
    brake: str = ""


def plan_deal_files(
    tracked: list[DealFileRow],
    links: Mapping[int, tuple[str, str]],
    partner_now: Mapping[str, tuple[FileInfo, ...]],
    vendor_notes: Mapping[str, tuple[str, ...]],
    vendor_candidates: Iterable[tuple[str, str]],
    mapping: NotesMapping,
    allow_mass_deletion: bool = False,
) -> DealFilePlan:
    """Decide the file writes. Pure.

    `links`: deal link id -> (partner deal, vendor deal); `partner_now`: attachments of the partner
    deals that exist; `vendor_notes`: file ids of vendor notes that exist (tracked ones and
    candidates); `vendor_candidates`: (vendor note id, vendor deal) of shared notes seen this run.
    """
    plan = DealFilePlan()
    by_vendor_deal = {vendor: (lid, partner) for lid, (partner, vendor) in links.items()}
    for row in tracked:
        if row.deal_link_id not in links:
            plan.ended[row.id] = "unlinked"  # the deal is no longer shared: leave both copies
            continue
        partner_deal = links[row.deal_link_id][0]
        on_partner = row.partner_file_id in {f.id for f in partner_now.get(partner_deal, ())}
        on_vendor = row.vendor_file_id in vendor_notes.get(row.vendor_note_id, ())
        if on_partner and on_vendor:
            continue
        if not on_partner and not on_vendor:
            plan.ended[row.id] = "deleted"
            continue
        source: Side = "vendor" if on_partner else "partner"
        if mapping.policy(source).action != "archive":
            plan.ended[row.id] = "unlinked"
        elif on_vendor:
            plan.remove_on_vendor.append(row)
        else:
            plan.remove_on_partner.append(row)
    removed: dict[str, set[str]] = defaultdict(set)
    for row in plan.remove_on_vendor:
        removed[row.vendor_note_id].add(row.vendor_file_id)
    plan.archive_notes = {
        row.vendor_note_id
        for row in plan.remove_on_vendor
        if row.origin == "partner"
        and not set(vendor_notes.get(row.vendor_note_id, ())) - removed[row.vendor_note_id]
    }
    known_partner = {row.partner_file_id for row in tracked}
    for link_id, (partner_deal, vendor_deal) in links.items():
        for info in partner_now.get(partner_deal, ()):
            if info.id not in known_partner:
                plan.to_vendor.append(PartnerFile(link_id, partner_deal, vendor_deal, info))
    known_vendor = {(row.vendor_note_id, row.vendor_file_id) for row in tracked}
    for note_id, vendor_deal in dict(vendor_candidates).items():
        if vendor_deal not in by_vendor_deal:
            continue
        link_id, partner_deal = by_vendor_deal[vendor_deal]
        for file_id in vendor_notes.get(note_id, ()):
            if (note_id, file_id) not in known_vendor:
                plan.to_partner.append(VendorFile(link_id, partner_deal, note_id, file_id))
    deletions = len(plan.remove_on_vendor) + len(plan.remove_on_partner)
    if not allow_mass_deletion and brake_engaged(
        deletions, len(tracked), mapping.max_deletions, mapping.max_deletion_fraction
    ):
        plan.brake = (
            f"deletion brake: this run would delete {deletions} files of shared deals; none were "
            "deleted. Check the CRMs, then run again with --allow-mass-deletion if it is right."
        )
        plan.remove_on_vendor, plan.remove_on_partner, plan.archive_notes = [], [], set()
    return plan
