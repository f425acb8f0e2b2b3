"""Raw records are checked value by value: every row holding an unreadable value is named, however
often the value repeats, and readable or empty values pass."""

from __future__ import annotations

from datetime import date

import pandas as pd

from validation.quarantine import split_valid
from validation.schemas import RawColumn, raw_hubspot_records

DATE = RawColumn("closedate", "date", lambda v: date.fromisoformat(str(v)[:10]))
MODIFIED = RawColumn("hs_lastmodifieddate", "timestamp", lambda v: date.fromisoformat(str(v)[:10]))


def test_every_row_with_an_unreadable_value_is_named_and_the_rest_pass():
    frame = pd.DataFrame(
        {
            "id": ["1", "2", "3", "4", "5"],
            "hs_lastmodifieddate": ["2026-11-01T10:00:00Z"] * 5,
            "closedate": ["2027-01-01", "soon", None, "soon", "2027-01-01"],
        }
    )
    good, bad = split_valid(frame, raw_hubspot_records([DATE], "deals", MODIFIED), "id")
    assert list(good["id"]) == ["1", "3", "5"]
    assert bad == {
        "2": ["closedate: not a valid date (got 'soon')"],
        "4": ["closedate: not a valid date (got 'soon')"],
    }


def test_unhashable_values_are_judged_row_by_row():
    frame = pd.DataFrame(
        {
            "id": ["1", "2"],
            "hs_lastmodifieddate": ["2026-11-01T10:00:00Z"] * 2,
            "closedate": [["2027-01-01"], "2027-01-01"],
        }
    )
    _good, bad = split_valid(frame, raw_hubspot_records([DATE], "deals", MODIFIED), "id")
    assert list(bad) == ["1"]
