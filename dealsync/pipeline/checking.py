"""Steps 2 and 3, validate and map: raw records against their pandera schema, then into canonical
values with the mapping. Bad rows go to quarantine with their reasons; a missing column stops the run."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dealsync.mapping import FieldErrors
from dealsync.model import SIDES, Side, SideRecord
from dealsync.outcomes import Quarantined
from dealsync.pipeline.phase import Phase
from dealsync.pipeline.reading import Pulled
from dealsync.record_schemas import raw_schema
from validation.quarantine import SchemaLevelError, split_valid


@dataclass
class Checked:
    """Canonical records that passed validation, and the ones quarantined."""

    records: dict[Side, dict[str, SideRecord]]
    quarantined: list[Quarantined]


def check(phase: Phase, pulled: Pulled) -> Checked:
    """Raw schema, then the mapping's canonical values; every bad row quarantined with its reasons."""
    ctx, mapping, kind = phase.ctx, phase.mapping, phase.object_type
    quarantined: list[Quarantined] = []
    result: dict[Side, dict[str, SideRecord]] = {"partner": {}, "vendor": {}}
    for side in SIDES:
        raw = pulled.records[side]
        if not raw:
            continue
        # Columns come from what the CRM returned: a property it does not have is a missing column.
        frame = pd.DataFrame([{"id": r.id, **r.properties} for r in raw.values()])
        try:
            schema = raw_schema(ctx.connectors[side].kind, mapping, side, kind)
            good, bad = split_valid(frame, schema, "id")
        except SchemaLevelError as exc:
            raise SchemaLevelError(
                f"the {side} CRM's {kind} do not fit the mapping {mapping.path}: {exc}. A missing "
                "column is a property that does not exist on that portal: run `dealsync init`, or "
                "fix the mapping."
            ) from exc
        quarantined += [
            Quarantined(side, rid, "validate", reasons, dict(raw[rid].properties), False, kind)
            for rid, reasons in bad.items()
        ]
        for record_id in good["id"].tolist():
            record = raw[str(record_id)]
            try:
                result[side][record.id] = mapping.side_record(
                    side, record.id, record.properties, record.modified_ms
                )
            except FieldErrors as exc:
                quarantined.append(
                    Quarantined(
                        side,
                        record.id,
                        "validate",
                        exc.errors,
                        dict(record.properties),
                        False,
                        kind,
                    )
                )
    return Checked(result, quarantined)
