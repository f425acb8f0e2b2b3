"""Mapping files: the default encodes PRODUCT.md's rules, and mistakes are reported by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dealsync.mapping import load_mapping
from dealsync.mapping_check import MappingError, check_mapping
from dealsync.model import Direction, FieldType

DEFAULT = Path("mappings/shared_deal.yaml")


def test_the_default_mapping_encodes_the_shared_deal_rules():
    mapping = load_mapping(DEFAULT)
    rules = {f.name: f for f in mapping.fields}
    assert (rules["deal_name"].direction, rules["deal_name"].when) == (
        Direction.BOTH,
        "create_only",
    )
    assert (rules["close_date"].direction, rules["close_date"].conflict) == (
        Direction.BOTH,
        "vendor",
    )
    assert rules["product_interest"].type is FieldType.MULTISELECT
    assert rules["product_interest"].conflict == "newest"
    for name in ("intro_note", "pain", "next_steps"):
        assert rules[name].direction is Direction.PARTNER_TO_VENDOR
    assert (rules["vendor_stage"].vendor, rules["vendor_stage"].partner) == (
        "dealstage",
        "dealsync_vendor_stage",
    )
    assert rules["vendor_amount"].direction is Direction.VENDOR_TO_PARTNER
    for name in ("pipeline", "deal_stage", "owner"):
        assert rules[name].direction is Direction.NONE
    assert mapping.key("partner") == mapping.key("vendor") == "dealsync_key"
    assert mapping.policy("partner").action == mapping.policy("vendor").action == "archive"
    assert (mapping.max_deletions, mapping.max_deletion_fraction) == (20, 0.10)
    assert any(p.unique and p.name == "dealsync_key" for p in mapping.custom_properties["vendor"])


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT.read_text()
    assert old in text
    path = tmp_path / "broken.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_a_bad_direction_is_reported_at_its_line(tmp_path):
    path = _broken(
        tmp_path,
        "direction: vendor_to_partner\n    value_map",
        "direction: sideways\n    value_map",
    )
    _, problems = check_mapping(path)
    assert len(problems) == 1
    assert problems[0].line == _line_of(path, "direction: sideways")
    assert "'sideways' is not one of both, partner_to_vendor" in problems[0].message


def test_a_misspelled_key_is_reported_at_its_line(tmp_path):
    path = _broken(tmp_path, "    conflict: newest", "    conflikt: newest")
    _, problems = check_mapping(path)
    assert problems[0].line == _line_of(path, "conflikt")
    assert "conflikt" in problems[0].message and "spelling" in problems[0].message


def test_unknown_transforms_and_double_writers_are_refused(tmp_path):
    path = _broken(tmp_path, "transforms: [strip]", "transforms: [strip, eval]")
    _, problems = check_mapping(path)
    assert "unknown transform 'eval'" in problems[0].message
    assert problems[0].line == _line_of(path, "transforms: [strip, eval]")
    path = _broken(tmp_path, "vendor: dealsync_pain,", "vendor: dealsync_intro_note,")
    with pytest.raises(MappingError, match="written by both 'intro_note' and 'pain'"):
        load_mapping(path)


def test_unreadable_yaml_says_where(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nfields: [\n")
    _, problems = check_mapping(path)
    assert "not valid YAML" in problems[0].message and problems[0].line >= 2
