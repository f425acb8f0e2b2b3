"""Split a frame into good rows and bad rows with reasons; a schema-level failure stops the run."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
import pandera.pandas as pa


class SchemaLevelError(Exception):
    """The data does not fit the schema as a whole (e.g. a column is missing): the run stops."""


def split_valid(
    frame: pd.DataFrame, schema: pa.DataFrameSchema, id_column: str
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(good rows, {record id: reasons}) from lazy validation; raise SchemaLevelError for whole-frame failures."""
    if frame.empty:
        return frame, {}
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        schema_level = cases[cases["index"].isna()]
        if not schema_level.empty:
            problems = "; ".join(
                f"missing column {row.failure_case}"
                if row.check == "column_in_dataframe"
                else f"{row.column}: {row.check}"
                for row in schema_level.itertuples()
            )
            raise SchemaLevelError(f"{schema.name}: {problems}") from exc
        reasons: dict[str, list[str]] = defaultdict(list)
        for row in cases.itertuples():
            record_id = str(frame.loc[row.index, id_column])
            if row.schema_context == "DataFrameSchema":
                reasons[record_id].append(str(row.check))
            else:
                reasons[record_id].append(f"{row.column}: {row.check} (got {row.failure_case!r})")
        bad = frame[id_column].astype(str).isin(reasons)
        return frame[~bad], {k: sorted(set(v)) for k, v in reasons.items()}
    return frame, {}
