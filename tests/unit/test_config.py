"""Config loading: the minimal file works; every mistake names the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from dealsync.config import ConfigError, load_config

MINIMAL = """
vendor:
  crm: {kind: hubspot, base_url: "http://127.0.0.1:8701", token: "env:VENDOR_TOKEN"}
  owner_assignment: {strategy: round_robin, pool: [rep1@vendor.test, rep2@vendor.test], fallback: rep1@vendor.test}
partners:
  - id: acme
    crm: {kind: hubspot, base_url: "http://127.0.0.1:8702", token: "env:ACME_TOKEN"}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dealsync.yaml"
    path.write_text(text)
    return path


def test_the_minimal_file_works_with_defaults(tmp_path, monkeypatch):
    config = load_config(_write(tmp_path, MINIMAL))
    assert config.ledger_url == f"sqlite:///{tmp_path.resolve()}/.dealsync/ledger.db"
    assert (
        config.partners[0].mapping_path.name == "shared_deal.yaml"
        and config.partners[0].mapping_path.exists()
    )
    assert config.owner_assignment.pool == ("rep1@vendor.test", "rep2@vendor.test")
    monkeypatch.setenv("ACME_TOKEN", "t-123")
    assert config.partners[0].crm.token() == "t-123"


def test_dealsync_config_env_points_at_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DEALSYNC_CONFIG", str(_write(tmp_path, MINIMAL)))
    assert load_config().partners[0].id == "acme"


def test_by_field_and_fixed_owner_strategies(tmp_path):
    text = MINIMAL.replace(
        "{strategy: round_robin, pool: [rep1@vendor.test, rep2@vendor.test], fallback: rep1@vendor.test}",
        "{strategy: by_field, property: country, owners: {DE: de@vendor.test}, fallback: rep1@vendor.test}",
    )
    rules = load_config(_write(tmp_path, text)).owner_assignment
    assert (rules.strategy, rules.property, dict(rules.table)) == (
        "by_field",
        "country",
        {"DE": "de@vendor.test"},
    )
    fixed = MINIMAL.replace(
        "strategy: round_robin, pool: [rep1@vendor.test, rep2@vendor.test]",
        "strategy: fixed, owner: boss@vendor.test",
    )
    assert load_config(_write(tmp_path, fixed)).owner_assignment.owner == "boss@vendor.test"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            (
                'kind: hubspot, base_url: "http://127.0.0.1:8702"',
                'kind: pipedrive, base_url: "http://127.0.0.1:8702"',
            ),
            "partners[0].crm.kind: 'pipedrive' is not a supported CRM",
        ),
        (
            ('token: "env:ACME_TOKEN"', 'token: "pat-na1-abc"'),
            "partners[0].crm.token: looks like a literal token",
        ),
        (
            ('base_url: "http://127.0.0.1:8701"', 'base_url: "127.0.0.1:8701"'),
            "vendor.crm.base_url: '127.0.0.1:8701' must start with http",
        ),
        (
            ("strategy: round_robin", "strategy: lottery"),
            "vendor.owner_assignment.strategy: 'lottery' is not one of",
        ),
        (("- id: acme", "- id: Acme Corp"), "partners[0].id: 'Acme Corp' must be lowercase"),
        (("partners:", "partnerz:"), "partners: missing. List at least one partner"),
    ],
)
def test_mistakes_name_the_file_and_key(tmp_path, change, expected):
    path = _write(tmp_path, MINIMAL.replace(*change))
    with pytest.raises(ConfigError) as failure:
        load_config(path)
    assert str(path) in str(failure.value) and expected in str(failure.value)


@pytest.mark.parametrize(
    "pasted",
    [
        "sandbox-d4b3b570c94815dfdd298545",
        "bcrm_pat_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
        "my token with spaces",
        "env:NOT A NAME",
    ],
)
def test_a_token_that_is_not_a_reference_is_refused_at_once_and_never_echoed(tmp_path, pasted):
    path = _write(tmp_path, MINIMAL.replace('token: "env:ACME_TOKEN"', f'token: "{pasted}"'))
    with pytest.raises(ConfigError) as failure:
        load_config(path)  # no Prefect server is started to find this out
    message = str(failure.value)
    assert "partners[0].crm.token" in message and pasted not in message
    assert "env:NAME" in message


def test_a_missing_env_token_says_which_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("ACME_TOKEN", raising=False)
    config = load_config(_write(tmp_path, MINIMAL))
    with pytest.raises(
        ConfigError,
        match=r"partners\[0\].crm.token: the environment variable ACME_TOKEN is not set",
    ):
        config.partners[0].crm.token()


def test_a_missing_file_says_how_to_point_at_one(tmp_path):
    with pytest.raises(ConfigError, match="--config PATH, set DEALSYNC_CONFIG"):
        load_config(tmp_path / "nope.yaml")
