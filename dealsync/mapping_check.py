"""Checking a mapping file: against mappings/schema.json, then the rules; every problem with its line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dealsync.model import SIDES, TRANSFORMS, Direction, Side
from dealsync.yaml_errors import YAML_LOADER, python_parse_error
from dealsync.yaml_errors import describe as describe_yaml_error

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "mappings" / "schema.json"


@dataclass(frozen=True)
class MappingProblem:
    """One thing wrong with a mapping file, with where it is."""

    path: str
    line: int
    message: str
    column: int = 0

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: {self.message}"


class MappingError(Exception):
    """A mapping file that cannot be used; carries every problem found."""

    def __init__(self, problems: list[MappingProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def line_of(node: yaml.Node, path: list[Any]) -> int:
    """The 1-based line of the YAML node at a JSON path (the nearest existing ancestor)."""
    current = node
    for key in path:
        if isinstance(current, yaml.MappingNode):
            match = next((v for k, v in current.value if k.value == key), None)
            if match is None:
                key_node = next((k for k, _v in current.value if k.value == key), None)
                return int((key_node or current).start_mark.line) + 1
            current = match
        elif (
            isinstance(current, yaml.SequenceNode)
            and isinstance(key, int)
            and key < len(current.value)
        ):
            current = current.value[key]
        else:
            break
    return int(current.start_mark.line) + 1


def _error_path(error: jsonschema.ValidationError) -> list[Any]:
    """The path of the node at fault: for an unexpected key, the key itself."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        extras = [key for key in error.instance if key not in allowed]
        if extras:
            path.append(extras[0])
    return path


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "the top level"
    if error.validator == "additionalProperties":
        return f"{where}: {error.message} (check the spelling against mappings/schema.json)"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def check_mapping(path: str | Path) -> tuple[dict[str, Any], list[MappingProblem]]:
    """Parse a mapping file and list every problem in it, each with its line."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        return {}, [MappingProblem(name, 0, f"cannot read the file: {exc.strerror}")]
    try:
        root = yaml.compose(text, Loader=YAML_LOADER)
        data = yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError:
        syntax = describe_yaml_error(text, python_parse_error(text))
        return {}, [MappingProblem(name, syntax.line, syntax.message, syntax.column)]
    if root is None or not isinstance(data, dict):
        return {}, [MappingProblem(name, 1, "the file is empty or not a mapping of keys to values")]
    validator = jsonschema.Draft202012Validator(_schema())
    problems = [
        MappingProblem(name, line_of(root, _error_path(e)), _describe(e))
        for e in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if not problems:
        problems = [MappingProblem(name, line_of(root, p), m) for p, m in _semantic_problems(data)]
    return data, problems


def _semantic_problems(data: dict[str, Any]) -> list[tuple[list[Any], str]]:
    """What JSON Schema cannot say: unique names, one writer per property, known transforms."""
    found: list[tuple[list[Any], str]] = []
    names: set[str] = set()
    writers: dict[tuple[str, str], str] = {}
    defaults = data.get("defaults", {})
    for i, spec in enumerate(data["fields"]):
        where = ["fields", i]
        if spec["name"] in names:
            found.append(([*where, "name"], f"field name {spec['name']!r} is used twice"))
        names.add(spec["name"])
        direction = Direction(spec.get("direction", defaults.get("direction", "both")))
        for side in SIDES:
            if direction.flows_to(side) and side not in spec:
                found.append(
                    (
                        where,
                        f"field {spec['name']!r} flows to the {side} but names no {side} property",
                    )
                )
            if direction.flows_to(side) and side in spec:
                key = (side, spec[side])
                if key in writers:
                    found.append(
                        (
                            [*where, side],
                            f"{side} property {spec[side]!r} is written by both {writers[key]!r} and {spec['name']!r}",
                        )
                    )
                writers[key] = spec["name"]
        for t, transform in enumerate(spec.get("transforms", [])):
            if transform not in TRANSFORMS:
                found.append(
                    (
                        [*where, "transforms", t],
                        f"unknown transform {transform!r}; use one of {', '.join(TRANSFORMS)}",
                    )
                )
        if "value_map" in spec and spec["type"] not in ("string", "enum"):
            found.append(
                ([*where, "value_map"], "value_map applies to string and enum fields only")
            )
    for side in SIDES:
        key = per_side(data["key_property"])[side]
        if (side, key) in writers:
            found.append(
                (
                    ["key_property"],
                    f"key property {key!r} is also written by field {writers[(side, key)]!r}",
                )
            )
    return found


def per_side(value: Any) -> dict[Side, Any]:
    """A setting given once for both sides, or per side (`{partner: .., vendor: ..}`)."""
    if isinstance(value, Mapping) and set(value) == {"partner", "vendor"}:
        return {"partner": value["partner"], "vendor": value["vendor"]}
    return {"partner": value, "vendor": value}
