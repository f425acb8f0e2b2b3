"""A field added to a pair's mapping reaches the deals shared before it, on the next run, under the
same rules; `--dry-run` shows it first; a field removed stops syncing and leaves values alone."""

from __future__ import annotations

from pathlib import Path

import yaml

from dealsync.cli import app
from tests.integration.conftest import Pair
from tests.integration.test_sync import SHARED, _twin

DEFAULT = Path(__file__).resolve().parents[2] / "mappings" / "shared_deal.yaml"
DESCRIPTION = {
    "name": "description",
    "partner": "description",
    "vendor": "description",
    "type": "string",
    "direction": "partner_to_vendor",
}


def _use_mapping(pair: Pair, folder: Path, extra_fields: list[dict]) -> Path:
    data = yaml.safe_load(DEFAULT.read_text())
    data["fields"] += extra_fields
    path = folder / f"mapping-{len(extra_fields)}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    text = pair.config.read_text()
    lines = [line for line in text.splitlines() if not line.startswith("    mapping: ")]
    at = next(n for n, line in enumerate(lines) if line.startswith("  - id: acme")) + 1
    lines.insert(at, f"    mapping: {path}")
    pair.config.write_text("\n".join(lines) + "\n")
    return path


def _descriptions(pair: Pair, twins: list[str]) -> list[str | None]:
    return [pair.deal("vendor", twin, "description").get("description") for twin in twins]


def test_a_field_added_to_the_mapping_reaches_every_shared_deal(pair: Pair, tmp_path):
    text = pair.config.read_text().replace("kind: hubspot,", "kind: hubspot, lookback_seconds: 0,")
    pair.config.write_text(text)  # search shows writes at once here: old deals are not re-read
    deals = [
        pair.create("partner", dealname=f"D{n}", description=f"About {n}", **SHARED)
        for n in range(3)
    ]
    pair.cli("run")
    pair.cli("run")  # reads back the first sync's own writes
    twins = [_twin(pair, "vendor", f"acme:partner:{d}")["id"] for d in deals]
    assert _descriptions(pair, twins) == [None, None, None]
    other = pair.create("partner", dealname="Later", **SHARED)  # other work goes on meanwhile

    mapping = _use_mapping(pair, tmp_path, [DESCRIPTION])
    checked = pair.runner.invoke(app, ["mapping", "check", str(mapping)])
    assert checked.exit_code == 0, checked.output
    preview = pair.cli("run", "--dry-run").output
    assert "mapping changed: description added" in preview and "would be" in preview
    assert _descriptions(pair, twins) == [None, None, None]

    pair.reset_counts()
    result = pair.cli("run")
    assert "description added; 3 linked records were read and planned again" in result.output
    assert _descriptions(pair, twins) == ["About 0", "About 1", "About 2"]
    assert _twin(pair, "vendor", f"acme:partner:{other}")["dealname"] == "Later"

    pair.cli("run")  # the agreed mapping was recorded: the next run backfills nothing
    pair.reset_counts()
    quiet = pair.cli("run")
    assert "mapping changed" not in quiet.output
    assert pair.writes("vendor") == pair.writes("partner") == 0

    _use_mapping(pair, tmp_path, [])  # the field is removed: it stops syncing, values stay
    pair.edit("partner", deals[0], description="Edited after removal")
    removed = pair.cli("run")
    assert "description removed" in removed.output
    assert _descriptions(pair, twins)[0] == "About 0"
