"""Where a config's partners come from: its `partners:` list, and a partners file (a CSV with a
header, or a YAML list) for programmes with hundreds of them; every entry starts from
`partner_defaults`, whose strings may name the partner as `{id}` (its id) or `{ID}` (its id in
capitals, `-` as `_`: an environment variable's name), so a thousand partners need one line each."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from dealsync.config_errors import ConfigError
from dealsync.yaml_errors import YAML_LOADER, python_parse_error
from dealsync.yaml_errors import describe as describe_yaml_error

PLACEHOLDER = re.compile(r"\{([A-Za-z_]*)\}")
# A partners file's columns: the partner's own keys, and its CRM's.
ENTRY_COLUMNS = ("id", "mapping", "notes_mapping", "vendor_company_id")
CRM_COLUMNS = ("kind", "base_url", "token", "webhook_secret", "portal_id", "lookback_seconds")
NUMBERS = {"portal_id": int, "lookback_seconds": float}


def partner_entries(data: dict[str, Any], base: Path, where: str) -> Iterator[tuple[str, Any]]:
    """Every partner entry of a config, with where it was written, its defaults applied."""
    defaults = data.get("partner_defaults") or {}
    if not isinstance(defaults, dict) or not isinstance(defaults.get("crm", {}), dict):
        raise ConfigError(
            f"{where}: partner_defaults: expected a mapping like {{crm: {{kind: hubspot, base_url: "
            '..., token: "env:PARTNER_{ID}_TOKEN"}, mapping: ...}.'
        )
    listed = data.get("partners")
    if listed is not None and not isinstance(listed, list):
        raise ConfigError(
            f"{where}.partners: expected a list, got {type(listed).__name__}. "
            "List the partners: partners: [{id: acme, crm: {...}}]."
        )
    found = [(f"{where}: partners[{n}]", entry) for n, entry in enumerate(listed or [])]
    if (file := data.get("partners_file")) is not None:
        if not isinstance(file, str):
            raise ConfigError(f"{where}: partners_file: give a path, e.g. partners.csv.")
        found += list(_file_entries(base / file))
    if not found:
        what = "missing" if listed is None and file is None else "empty"
        raise ConfigError(
            f"{where}.partners: {what}. List at least one partner: partners: "
            "[{id: acme, crm: {...}}], or name a file of them: partners_file: partners.csv."
        )
    for at, entry in found:
        yield at, _with_defaults(defaults, entry, at)


def _with_defaults(defaults: dict[str, Any], entry: Any, at: str) -> Any:
    """An entry over the defaults (its CRM key by key), the defaults' `{id}` and `{ID}` filled in."""
    if not isinstance(entry, dict) or not defaults:
        return entry
    partner_id = str(entry.get("id", ""))
    merged = {
        k: _fill(v, partner_id, f"{at} (from partner_defaults.{k})") for k, v in defaults.items()
    }
    merged.update({k: v for k, v in entry.items() if k != "crm"})
    crm = entry.get("crm")
    if isinstance(crm, dict) and isinstance(merged.get("crm"), dict):
        merged["crm"] = {**merged["crm"], **crm}
    elif crm is not None:
        merged["crm"] = crm
    return merged


def _fill(value: Any, partner_id: str, where: str) -> Any:
    """A default with the partner's id in place of `{id}` and `{ID}`."""
    if isinstance(value, dict):
        return {k: _fill(v, partner_id, where) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    unknown = {m for m in PLACEHOLDER.findall(value) if m not in ("id", "ID")}
    if unknown:
        raise ConfigError(
            f"{where}: {{{sorted(unknown)[0]}}} is not a placeholder; use {{id}} (the partner's id) "
            "or {ID} (its id in capitals, - as _, for environment variable names)."
        )
    return value.replace("{id}", partner_id).replace("{ID}", partner_id.upper().replace("-", "_"))


def _file_entries(file: Path) -> Iterator[tuple[str, Any]]:
    """The entries of a partners file: CSV rows (by their header) or a YAML list."""
    if not file.exists():
        raise ConfigError(
            f"{file}: no such partners file (partners_file in the config). Create it, or fix the path "
            "(relative to the config's folder)."
        )
    if file.suffix.lower() == ".csv":
        yield from _csv_entries(file)
        return
    text = file.read_text()
    try:
        data = yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError:
        syntax = describe_yaml_error(text, python_parse_error(text))
        raise ConfigError(f"{file}:{syntax.line}:{syntax.column}: {syntax.message}") from None
    if not isinstance(data, list):
        raise ConfigError(
            f"{file}: a partners file is a YAML list of partners ([{{id: acme, crm: {{...}}}}, ...]) "
            "or a CSV file with a header (id,token,...)."
        )
    yield from ((f"{file}: [{n}]", entry) for n, entry in enumerate(data))


def _csv_entries(file: Path) -> Iterator[tuple[str, Any]]:
    """One entry per CSV row; empty cells leave the defaults."""
    with file.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        unknown = [c for c in columns if c not in ENTRY_COLUMNS + CRM_COLUMNS]
        if "id" not in columns or unknown:
            raise ConfigError(
                f"{file}:1: the header must name an id column"
                + (f" and only known columns (not {', '.join(unknown)})" if unknown else "")
                + f"; the columns are {', '.join(ENTRY_COLUMNS + CRM_COLUMNS)}."
            )
        for row in reader:
            cells = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            at = f"{file}:{reader.line_num}"
            entry: dict[str, Any] = {k: cells[k] for k in ENTRY_COLUMNS if cells.get(k)}
            crm: dict[str, Any] = {}
            for key in CRM_COLUMNS:
                if cells.get(key):
                    crm[key] = _number(cells[key], key, at) if key in NUMBERS else cells[key]
            if crm:
                entry["crm"] = crm
            yield at, entry


def _number(text: str, column: str, at: str) -> int | float:
    try:
        return int(text) if NUMBERS[column] is int else float(text)
    except ValueError:
        raise ConfigError(f"{at}: {column}: {text!r} is not a number.") from None
