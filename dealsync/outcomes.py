"""What a run reports: records kept out of it and why, audit and conflict rows, the run report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dealsync.model import Conflict, Link, Plan, Side, Skip, other, to_json

if TYPE_CHECKING:
    from dealsync.context import RunContext

DEALS = "deals"


@dataclass
class Quarantined:
    """A record kept out of this run, and why."""

    side: Side
    record_id: str
    stage: str
    reasons: list[str]
    payload: dict[str, Any]
    retriable: bool = True
    object_type: str = DEALS
    security: bool = False  # a trust boundary held: shown as a security event in the run report

    def row(self) -> dict[str, Any]:
        """How run reports show it."""
        return {
            "side": self.side,
            "record_id": self.record_id,
            "stage": self.stage,
            "reasons": self.reasons,
            "object": self.object_type,
            "security": self.security,
            "waits_for": "next run" if self.retriable else "change",
        }


def skipped(skips: list[Skip], object_type: str = DEALS) -> list[Quarantined]:
    """The records a plan could not act on, as quarantine entries."""
    return [
        Quarantined(
            s.side,
            s.record_id,
            "trust" if s.security else "plan",
            [s.reason],
            {},
            False,
            object_type,
            s.security,
        )
        for s in skips
    ]


@dataclass
class NotesSummary:
    """What the notes phase, and the files of deals with it, did in one run."""

    created: dict[Side, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    updated: dict[Side, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    deleted: dict[Side, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    files_copied: int = 0
    files_deleted: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    resolved: int = 0
    conflicts: int = 0
    preview: Any = None  # a dry run's note plan
    files_to_copy: int | None = None  # a dry run of the files of deals
    files_to_delete: int | None = None

    @property
    def writes(self) -> int:
        """Every write the phase made."""
        return sum(
            sum(per_side.values()) for per_side in (self.created, self.updated, self.deleted)
        ) + (self.files_copied + self.files_deleted)

    def figures(self) -> dict[str, int]:
        """The figures as run reports show them and the ledger keeps them, by name."""
        if self.preview is not None:
            shown = {
                "partner notes created": self.created["partner"],
                "vendor notes created": self.created["vendor"],
                "notes updated": sum(self.updated.values()),
                "notes deleted": sum(self.deleted.values()),
                "quarantined": len(self.quarantined),
            }
        else:
            shown = {
                f"{side} notes {what}": count
                for what, per_side in (
                    ("created", self.created),
                    ("updated", self.updated),
                    ("deleted", self.deleted),
                )
                for side, count in per_side.items()
                if count
            }
            shown |= {
                "files copied": self.files_copied,
                "files deleted": self.files_deleted,
                "quarantined": len(self.quarantined),
                "resolved": self.resolved,
                "conflicts": self.conflicts,
            }
        if self.files_to_copy is not None:
            shown |= {
                "files to copy": self.files_to_copy,
                "files to delete": self.files_to_delete or 0,
            }
        return shown


@dataclass
class RunReport:
    """The summary of one run, for the CLI, the ledger and Prefect artifacts."""

    pair: str
    run_id: int | None
    dry_run: bool
    pulled: dict[str, int] = field(default_factory=dict)
    created: dict[Side, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    updated: dict[Side, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    deleted: dict[Side, int] = field(default_factory=lambda: {"partner": 0, "vendor": 0})
    adopted: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    resolved: int = 0
    messages: list[str] = field(default_factory=list)
    brake: str = ""
    api_calls: int = 0
    seconds: float = 0.0
    plan: Plan | None = None
    notes_summary: NotesSummary | None = None
    events: list[str] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    active_registrations: int | None = None

    @property
    def notes(self) -> dict[str, Any]:
        """The notes phase's figures by name (and a dry run's note plan under "plan")."""
        if self.notes_summary is None:
            return {}
        shown: dict[str, Any] = dict(self.notes_summary.figures())
        if self.notes_summary.preview is not None:
            shown["plan"] = self.notes_summary.preview
        return shown

    @property
    def writes(self) -> int:
        """Every write the run made to either CRM (what the nightly audit calls drift)."""
        deals = sum(sum(d.values()) for d in (self.created, self.updated, self.deleted))
        return deals + (self.notes_summary.writes if self.notes_summary else 0)

    @property
    def security(self) -> list[str]:
        """Trust boundaries this run held (forged keys, records of another partner), one line each."""
        notes = [q.row() for q in self.notes_summary.quarantined] if self.notes_summary else []
        return [
            f"{q['side']} {q.get('object', DEALS)[:-1]} {q['record_id']}: {'; '.join(q['reasons'])}"
            for q in [*self.quarantined, *notes]
            if q.get("security")
        ]

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (what the ledger keeps per run)."""
        return {
            "pulled": self.pulled,
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "adopted": self.adopted,
            "conflicts": len(self.conflicts),
            "quarantined": len(self.quarantined),
            "resolved": self.resolved,
            "brake": self.brake,
            "messages": self.messages,
            "notes": self.notes_summary.figures() if self.notes_summary else {},
            "writes": self.writes,
            "active_registrations": self.active_registrations,
            "security": self.security,
            "api_calls": self.api_calls,
            "seconds": round(self.seconds, 3),
        }


def refused_links(links: list[Link], noun: str, object_type: str = DEALS) -> list[Quarantined]:
    """Links the ledger refused (one of their records is linked already): the claimant is quarantined."""
    entries = []
    for link in links:
        side = other(link.origin)
        record_id = link.vendor_id if side == "vendor" else link.partner_id
        reason = (
            f"{side} {noun} {record_id} was to be linked with {link.origin} {noun} "
            f"{link.partner_id if side == 'vendor' else link.vendor_id}, but one of them is linked "
            "already: nothing was linked (a link is never moved)"
        )
        entries.append(
            Quarantined(side, record_id, "trust", [reason], {}, False, object_type, True)
        )
    return entries


def record_quarantine(ctx: RunContext, items: list[Quarantined]) -> None:
    """Put each item in the ledger's quarantine (or refresh its reasons and attempts); one that only
    a change can fix remembers the mapping that judged it."""
    if not items:
        return
    ctx.hold_lease()  # a run that lost its pair quarantines nothing
    versions = ctx.mapping_versions()
    for item in items:
        ctx.ledger.quarantine(
            ctx.run_id,
            ctx.pair,
            item.side,
            item.record_id,
            item.stage,
            item.reasons,
            item.payload,
            item.retriable,
            item.object_type,
            None if item.retriable else versions.get(item.object_type),
        )


def conflict_rows(conflicts: list[Conflict], prefix: str = "") -> list[dict[str, Any]]:
    """Conflicts as ledger rows (all three values, the rule and the winner)."""
    return [
        {
            "link_id": c.link_id,
            "field": f"{prefix}{c.field}",
            "base": to_json(c.base),
            "partner": to_json(c.partner),
            "vendor": to_json(c.vendor),
            "rule": c.rule,
            "winner": c.winner,
        }
        for c in conflicts
    ]


def audit_row(
    link_id: int | None,
    side: Side,
    record_id: str,
    action: str,
    field_name: str,
    old: Any,
    new: Any,
) -> dict[str, Any]:
    return {
        "link_id": link_id,
        "side": side,
        "record_id": record_id,
        "action": action,
        "field": field_name,
        "old": old,
        "new": new,
    }
