"""The fingerprints of the mapping fields a pair's links were last synced with."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dealsync.ledger.models import MappingFieldRow
from dealsync.ledger.store import LedgerBase


class MappingFieldsMixin(LedgerBase):
    """What a run compares the mapping with, to backfill fields added or changed."""

    def mapping_fields(self, pair: str, object_type: str) -> dict[str, str] | None:
        """Field name -> fingerprint as last committed (None: never committed for this pair)."""
        with self.sessions() as s:
            rows = s.execute(
                sa.select(MappingFieldRow.field, MappingFieldRow.fingerprint).where(
                    MappingFieldRow.pair == pair, MappingFieldRow.object_type == object_type
                )
            ).all()
        return {name: print_ for name, print_ in rows} or None


def save_mapping_fields(s: Session, pair: str, object_type: str, current: dict[str, str]) -> None:
    """Replace the pair's fingerprints in the commit's transaction."""
    s.execute(
        sa.delete(MappingFieldRow).where(
            MappingFieldRow.pair == pair, MappingFieldRow.object_type == object_type
        )
    )
    s.add_all(
        MappingFieldRow(pair=pair, object_type=object_type, field=name, fingerprint=fingerprint)
        for name, fingerprint in current.items()
    )
