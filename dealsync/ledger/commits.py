"""The commit of a run: what the CRMs confirmed, written in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dealsync.ledger.census import CensusChange, save_census
from dealsync.ledger.fencing import Fence, hold
from dealsync.ledger.inbox import consume_inbox
from dealsync.ledger.mapping_fields import save_mapping_fields
from dealsync.ledger.models import (
    ChangeRow,
    ConflictRow,
    CreateIntent,
    Cursor,
    LinkRow,
    PairState,
)
from dealsync.ledger.statistics import BULK_ROWS, refresh_statistics
from dealsync.ledger.store import LedgerBase, json_base
from dealsync.model import Link, Value


@dataclass
class RunCommit:
    """What one run writes to the ledger once the CRMs confirmed its writes."""

    new_links: list[Link]
    bases: dict[int, dict[str, Value]]
    link_states: dict[int, str]
    changes: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    cursors: dict[tuple[str, str], int]
    intents_done: dict[str, str]
    owner_turn: int | None = None
    object_type: str = "deals"
    intents_failed: list[str] = field(default_factory=list)  # creates the CRM refused for good
    # Links of records a user merged: follow the survivor (link id -> side, new id), or end.
    relinks: dict[int, tuple[str, str]] = field(default_factory=dict)
    merged_away: list[int] = field(default_factory=list)
    census: dict[str, CensusChange] = field(default_factory=dict)  # by side
    mapping_fields: dict[str, str] | None = None  # the synced fields' fingerprints, now agreed
    inbox: list[tuple[str, int]] = field(default_factory=list)  # hub entries read: (id, seq)
    fence: Fence | None = None  # the run's lease, proven held in the commit's own transaction


class CommitsMixin(LedgerBase):
    """The commit of a run."""

    def commit_run(self, run_id: int, pair: str, outcome: RunCommit) -> list[Link]:
        """Write what the CRMs confirmed, in one transaction: links, bases, audit, cursors.

        A link is written once: a new link for a record this pair already linked (in any state),
        or for a vendor record another pair links now, is refused and returned, never overwritten.
        The schema enforces the same (unique constraints), so a race ends in an error, not a takeover.
        """
        refused: list[Link] = []
        with self.sessions.begin() as s:
            if outcome.fence is not None:
                hold(s, outcome.fence)  # a run that lost its pair commits nothing
            taken = _Taken.of(s, pair, outcome.object_type, outcome.new_links)
            rows = []
            for link in outcome.new_links:
                if not taken.claim(link):
                    refused.append(link)
                    continue
                rows.append(
                    {
                        "pair": pair,
                        "object_type": outcome.object_type,
                        "partner_id": link.partner_id,
                        "vendor_id": link.vendor_id,
                        "origin": link.origin,
                        "base": json_base(dict(link.base)),
                        "created_run_id": run_id,
                    }
                )
            if rows:
                s.execute(sa.insert(LinkRow), rows)
            for link_id, (side, new_id) in outcome.relinks.items():
                row = _row(s, link_id)
                column = LinkRow.partner_id if side == "partner" else LinkRow.vendor_id
                clash = s.scalars(
                    sa.select(LinkRow.id).where(
                        LinkRow.object_type == outcome.object_type,
                        LinkRow.id != link_id,
                        column == new_id,
                        sa.or_(LinkRow.pair == pair, LinkRow.state == "active")
                        if side == "vendor"
                        else LinkRow.pair == pair,
                    )
                ).first()
                if clash is not None:
                    row.state = "merged"
                    continue
                setattr(row, "partner_id" if side == "partner" else "vendor_id", new_id)
            for link_id in outcome.merged_away:
                _row(s, link_id).state = "merged"
            if outcome.bases:
                s.execute(
                    sa.update(LinkRow),
                    [{"id": i, "base": json_base(base)} for i, base in outcome.bases.items()],
                )
            for link_id, state in outcome.link_states.items():
                _row(s, link_id).state = state
            if outcome.intents_done:
                s.connection().execute(
                    sa.update(CreateIntent)
                    .where(
                        CreateIntent.pair == pair,
                        CreateIntent.object_type == outcome.object_type,
                        CreateIntent.key == sa.bindparam("done_key"),
                    )
                    .values(state="done", target_id=sa.bindparam("done_target")),
                    [
                        {"done_key": key, "done_target": target_id}
                        for key, target_id in outcome.intents_done.items()
                    ],
                )
            if outcome.intents_failed:
                s.execute(
                    sa.update(CreateIntent)
                    .where(
                        CreateIntent.pair == pair,
                        CreateIntent.object_type == outcome.object_type,
                        CreateIntent.key.in_(outcome.intents_failed),
                    )
                    .values(state="failed")
                )
            s.add_all(
                ChangeRow(
                    run_id=run_id,
                    pair=pair,
                    link_id=c["link_id"],
                    side=c["side"],
                    record_id=c["record_id"],
                    action=c["action"],
                    field=c["field"],
                    old_value=c["old"],
                    new_value=c["new"],
                )
                for c in outcome.changes
            )
            s.add_all(
                ConflictRow(
                    run_id=run_id,
                    pair=pair,
                    link_id=c["link_id"],
                    field=c["field"],
                    base_value=c["base"],
                    partner_value=c["partner"],
                    vendor_value=c["vendor"],
                    rule=c["rule"],
                    winner=c["winner"],
                )
                for c in outcome.conflicts
            )
            for (side, object_type), value in outcome.cursors.items():
                cursor = s.get(Cursor, (pair, side, object_type))
                if cursor is None:
                    s.add(Cursor(pair=pair, side=side, object_type=object_type, value=value))
                elif value > cursor.value:
                    cursor.value = value
            s.flush()
            for side, change in outcome.census.items():
                save_census(s, change.owner or pair, side, outcome.object_type, change)
            consume_inbox(s, pair, outcome.object_type, outcome.inbox)
            if outcome.mapping_fields is not None:
                save_mapping_fields(s, pair, outcome.object_type, outcome.mapping_fields)
            if outcome.owner_turn is not None:
                pair_state = s.get(PairState, pair)
                if pair_state is None:
                    s.add(PairState(pair=pair, owner_turn=outcome.owner_turn))
                else:
                    pair_state.owner_turn = outcome.owner_turn
        if _rows_written(outcome) > BULK_ROWS:
            refresh_statistics(self.sessions, ("links", "census", "create_intents", "changes"))
        return refused


_CHUNK = 500  # ids per IN (...) query


def _rows_written(outcome: RunCommit) -> int:
    """About how many rows a commit writes."""
    census = sum(len(c.added) + len(c.removed) for c in outcome.census.values())
    return len(outcome.new_links) + len(outcome.changes) + len(outcome.intents_done) + census


@dataclass
class _Taken:
    """The record ids new links may not use: linked by this pair already (in any state), a vendor
    record another pair links now, or claimed by an earlier new link of this commit."""

    partner: set[str]
    vendor: set[str]

    @classmethod
    def of(cls, s: Session, pair: str, object_type: str, links: list[Link]) -> _Taken:
        """What the ledger already holds of the ids these links would use."""
        partner_ids = sorted({link.partner_id for link in links})
        vendor_ids = sorted({link.vendor_id for link in links})
        partner: set[str] = set()
        vendor: set[str] = set()
        for start in range(0, len(partner_ids), _CHUNK):
            partner.update(
                s.scalars(
                    sa.select(LinkRow.partner_id).where(
                        LinkRow.object_type == object_type,
                        LinkRow.pair == pair,
                        LinkRow.partner_id.in_(partner_ids[start : start + _CHUNK]),
                    )
                )
            )
        for start in range(0, len(vendor_ids), _CHUNK):
            vendor.update(
                s.scalars(
                    sa.select(LinkRow.vendor_id).where(
                        LinkRow.object_type == object_type,
                        LinkRow.vendor_id.in_(vendor_ids[start : start + _CHUNK]),
                        sa.or_(LinkRow.pair == pair, LinkRow.state == "active"),
                    )
                )
            )
        return cls(partner, vendor)

    def claim(self, link: Link) -> bool:
        """Take the link's ids, unless one of them is taken."""
        if link.partner_id in self.partner or link.vendor_id in self.vendor:
            return False
        self.partner.add(link.partner_id)
        self.vendor.add(link.vendor_id)
        return True


def _row(s: Session, link_id: int) -> LinkRow:
    """A link row this commit refers to (it must exist: the run read it)."""
    row = s.get(LinkRow, link_id)
    if row is None:
        raise LookupError(f"the ledger has no link {link_id}")
    return row
