"""Canonical records: dates must be YYYY-MM-DD and required fields filled where a twin is created;
every other row passes."""

from __future__ import annotations

import pandas as pd

from validation.quarantine import split_valid
from validation.schemas import CanonicalColumn, canonical_records

COLUMNS = [
    CanonicalColumn("close_date", is_date=True),
    CanonicalColumn("deal_name", required_by="dealname"),
]


def test_bad_dates_and_missing_required_fields_are_named_row_by_row():
    frame = pd.DataFrame(
        {
            "record_id": ["1", "2", "3", "4", "5"],
            "creates_twin": [True, True, False, True, False],
            "close_date": ["2027-01-15", "2027-1-5", None, "2027-01-15\n", "15/01/2027"],
            "deal_name": ["A", "B", None, None, "E"],
        }
    )
    good, bad = split_valid(frame, canonical_records(COLUMNS, "deals", "deal"), "record_id")
    assert list(good["record_id"]) == ["1", "3"]
    assert sorted(bad) == ["2", "4", "5"]
    assert bad["2"] == ["close_date: date must be YYYY-MM-DD (got '2027-1-5')"]
    assert bad["4"] == [
        "close_date: date must be YYYY-MM-DD (got '2027-01-15\\n')",
        "deal_name is empty (dealname): it is required to create the twin deal",
    ]
