"""What the CLI says when the ledger, the config or a mapping is wrong: one message, where and what to
do, exit code 2, no traceback, no password."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dealsync.cli import app

CONFIG = """\
ledger: {ledger}
vendor:
  crm: {{kind: hubspot, base_url: "http://127.0.0.1:8701", token: "env:VENDOR_TOKEN"}}
partners:
  - id: acme
    crm: {{kind: hubspot, base_url: "http://127.0.0.1:8702", token: "env:ACME_TOKEN"}}
"""


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("command", ["run", "init", "status"])
@pytest.mark.parametrize(
    ("ledger", "expected"),
    [
        ("postgresql+psycopg://sync:s3cret@127.0.0.1:1/ledger", "database server is running"),
        ("postgresql+psycopg://root@127.0.0.1:5432/no_such_ledger_db", "the database exists"),
        ("sqlite:///plain-file/ledger.db", "no plain file in its path"),
    ],
)
def test_a_ledger_that_cannot_be_opened_is_one_clear_message(tmp_path, command, ledger, expected):
    (tmp_path / "plain-file").write_text("not a folder")
    config = tmp_path / "dealsync.yaml"
    config.write_text(CONFIG.format(ledger=ledger))
    result = _cli(command, "--config", str(config))
    assert result.exit_code == 2 and result.exception is not None  # typer.Exit, not a crash
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and "s3cret" not in result.output
    assert "the ledger " in result.output and expected in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_yaml_mistake_in_a_mapping_shows_where_and_the_line(tmp_path, monkeypatch):
    monkeypatch.setenv("VENDOR_TOKEN", "v")
    monkeypatch.setenv("ACME_TOKEN", "a")
    mapping = tmp_path / "broken.yaml"
    mapping.write_text("version: 1\nobject: deals\nfields:\n  - {name: x, partner: [a, b}\n")
    config = tmp_path / "dealsync.yaml"
    config.write_text(
        CONFIG.format(ledger=f"sqlite:///{tmp_path}/ledger.db") + f"    mapping: {mapping}\n"
    )
    result = _cli("run", "--config", str(config))
    assert result.exit_code == 2
    assert f"{mapping}:4:29: not valid YAML: expected ',' or ']', but got '}}'" in result.output
    assert "  - {name: x, partner: [a, b}" in result.output  # the line, brackets and all

    checked = _cli("mapping", "check", str(mapping))
    assert checked.exit_code == 1 and f"{mapping}:4:29" in checked.output


def test_a_yaml_mistake_in_the_config_shows_where_and_the_line(tmp_path):
    config = tmp_path / "dealsync.yaml"
    config.write_text("ledger: [sqlite\nvendor: x\n")
    result = _cli("run", "--config", str(config))
    assert result.exit_code == 2
    assert f"{config}:2:7: not valid YAML" in result.output and "vendor: x" in result.output
    assert len(result.output.strip().splitlines()) == 3
