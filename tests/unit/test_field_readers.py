"""A field reader gives what the field rule gives, value for value, however often a text repeats:
unreadable texts fail every time, and its memory of texts stays bounded."""

from __future__ import annotations

import pytest

from dealsync import field_readers
from dealsync.field_readers import FieldReader
from dealsync.model import BadValue, Direction, FieldRule, FieldType

AMOUNT = FieldRule("amount", FieldType.NUMBER, "amount", "amount", Direction.BOTH)
STAGE = FieldRule(
    "stage",
    FieldType.STRING,
    "stage_label",
    "dealstage",
    Direction.VENDOR_TO_PARTNER,
    value_map={"closedwon": "Won", "qualifiedtobuy": "Qualified"},
)
TEXTS = ["100", "100.0", " 100 ", "1e2", "abc", "", None, "abc", "100", "NaN", "-0.50"]


def _outcome(read, raw):
    try:
        return read(raw)
    except BadValue as exc:
        return ("bad", str(exc))


@pytest.mark.parametrize("rule", [AMOUNT, STAGE])
@pytest.mark.parametrize("side", ["partner", "vendor"])
def test_a_reader_agrees_with_its_rule_on_every_text_every_time(rule, side):
    reader = FieldReader(rule, side)
    texts = [*TEXTS, "Won", "closedwon", "Qualified", "Won"]
    for text in texts * 2:
        raw = {rule.prop(side): text}
        assert _outcome(reader.read, raw) == _outcome(lambda r: rule.read(side, r), raw), text


def test_an_unreadable_text_fails_again_when_it_repeats():
    reader = FieldReader(AMOUNT, "vendor")
    for _ in range(3):
        with pytest.raises(BadValue, match="'abc' is not a number"):
            reader.read({"amount": "abc"})


def test_the_memory_of_texts_stays_bounded(monkeypatch):
    monkeypatch.setattr(field_readers, "MEMO_LIMIT", 10)
    reader = FieldReader(AMOUNT, "vendor")
    for n in range(1_000):
        assert reader.read({"amount": str(n)}) == str(n)
    assert len(reader._memo) <= 10
