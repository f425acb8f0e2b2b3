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
    assert config.lease_seconds == 60
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
        (("partners:", "lease_seconds: 0.5\npartners:"), "lease_seconds: 0.5 must be a number"),
        (("partners:", "lease_seconds: soon\npartners:"), "lease_seconds: 'soon' must be"),
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


VENDOR_ONLY = MINIMAL[: MINIMAL.index("partners:")]


def test_a_partners_file_with_defaults_and_patterns_names_each_partners_token(
    tmp_path, monkeypatch
):
    (tmp_path / "partners.csv").write_text(
        "id,portal_id,base_url\nacme,111,\nbeta-2,222,http://127.0.0.1:9999\ngamma,,\n"
    )
    path = _write(
        tmp_path,
        VENDOR_ONLY
        + "partner_defaults:\n"
        + '  crm: {kind: hubspot, base_url: "http://127.0.0.1:8702", '
        + 'token: "env:PARTNER_{ID}_TOKEN", webhook_secret: "dealsync-{id}-hooks"}\n'
        + "partners_file: partners.csv\n"
        + "partners:\n"
        + '  - {id: delta, crm: {token: "env:DELTA_OWN"}}\n',
    )
    config = load_config(path)
    by_id = {p.id: p for p in config.partners}
    assert list(by_id) == ["delta", "acme", "beta-2", "gamma"]
    assert by_id["acme"].crm.token_ref == "env:PARTNER_ACME_TOKEN"
    assert by_id["beta-2"].crm.token_ref == "env:PARTNER_BETA_2_TOKEN"
    assert by_id["beta-2"].crm.base_url == "http://127.0.0.1:9999"
    assert by_id["gamma"].crm.base_url == "http://127.0.0.1:8702"
    assert by_id["delta"].crm.token_ref == "env:DELTA_OWN"  # an entry's own value wins
    assert by_id["acme"].crm.webhook_secret_ref == "dealsync-acme-hooks"
    assert (by_id["acme"].crm.portal_id, by_id["gamma"].crm.portal_id) == (111, None)
    monkeypatch.setenv("PARTNER_BETA_2_TOKEN", "t")
    assert by_id["beta-2"].crm.token() == "t"


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("id,colour\nacme,red\n", "partners.csv:1: the header must name an id column"),
        ("name\nacme\n", "partners.csv:1: the header must name an id column"),
        ("id,portal_id\nacme,twelve\n", "partners.csv:2: portal_id: 'twelve' is not a number"),
        ("id\nacme\nACME\n", "partners.csv:3.id: 'ACME' must be lowercase"),
        ("id\nacme\nacme\n", "partners.csv:3.id: 'acme' is used twice (also at"),
        ("id,token\nacme,pat-na1-0123456789abcdef\n", "partners.csv:2.crm.token: looks like"),
    ],
)
def test_a_bad_partners_file_names_the_file_the_row_and_the_fix(tmp_path, rows, expected):
    (tmp_path / "partners.csv").write_text(rows)
    path = _write(
        tmp_path,
        VENDOR_ONLY
        + 'partner_defaults: {crm: {kind: hubspot, base_url: "http://x", token: "env:T_{ID}"}}\n'
        + "partners_file: partners.csv\n",
    )
    with pytest.raises(ConfigError) as failure:
        load_config(path)
    assert expected in str(failure.value)
    assert "0123456789abcdef" not in str(failure.value)  # a pasted token is never echoed


def test_a_yaml_partners_file_and_an_unknown_placeholder(tmp_path):
    (tmp_path / "partners.yaml").write_text("- {id: acme}\n- {id: beta, crm: {token: env:B}}\n")
    text = (
        VENDOR_ONLY
        + 'partner_defaults: {crm: {kind: hubspot, base_url: "http://x", token: "env:T_{ID}"}}\n'
        + "partners_file: partners.yaml\n"
    )
    config = load_config(_write(tmp_path, text))
    assert [p.crm.token_ref for p in config.partners] == ["env:T_ACME", "env:B"]
    with pytest.raises(ConfigError, match=r"\{name\} is not a placeholder; use \{id\}"):
        load_config(_write(tmp_path, text.replace("T_{ID}", "T_{name}")))
    with pytest.raises(ConfigError, match="no such partners file"):
        load_config(_write(tmp_path, text.replace("partners.yaml", "missing.csv")))


def test_a_thousand_partners_load_from_a_file(tmp_path):
    rows = "".join(f"p{n:04d}\n" for n in range(1000))
    (tmp_path / "partners.csv").write_text("id\n" + rows)
    text = (
        VENDOR_ONLY
        + 'partner_defaults: {crm: {kind: hubspot, base_url: "http://x", token: "env:T_{ID}"}}\n'
        + "partners_file: partners.csv\n"
    )
    config = load_config(_write(tmp_path, text))
    assert len(config.partners) == 1000 and config.partners[-1].crm.token_ref == "env:T_P0999"


SALESFORCE = MINIMAL.replace(
    '    crm: {kind: hubspot, base_url: "http://127.0.0.1:8702", token: "env:ACME_TOKEN"}\n',
    "    crm:\n"
    "      kind: salesforce\n"
    "      base_url: https://login.salesforce.com\n"
    "      client_id: env:ACME_SF_CLIENT_ID\n"
    "      token: env:ACME_SF_REFRESH_TOKEN\n",
)


def test_a_salesforce_partner_logs_in_with_references_and_gets_its_mappings(tmp_path, monkeypatch):
    partner = load_config(_write(tmp_path, SALESFORCE)).partners[0]
    assert partner.mapping_path.name == "salesforce_shared_deal.yaml"
    assert partner.notes_mapping_path and partner.notes_mapping_path.name == (
        "salesforce_shared_notes.yaml"
    )
    assert partner.crm.salesforce and partner.crm.salesforce.api_share == 0.2
    monkeypatch.setenv("ACME_SF_CLIENT_ID", "3MVG9-key")
    monkeypatch.setenv("ACME_SF_REFRESH_TOKEN", "5Aep-refresh")
    login = partner.crm.salesforce_login()
    assert (login.client_id, login.refresh_token, login.client_secret) == (
        "3MVG9-key",
        "5Aep-refresh",
        None,
    )
    jwt = SALESFORCE.replace(
        "      token: env:ACME_SF_REFRESH_TOKEN\n",
        "      username: dealsync@acme.example\n      private_key: acme-sf-key\n",
    )
    auth = load_config(_write(tmp_path, jwt)).partners[0].crm.salesforce
    assert auth and (auth.username, auth.private_key_ref) == (
        "dealsync@acme.example",
        "acme-sf-key",
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("      client_id: env:ACME_SF_CLIENT_ID\n", ""), "partners[0].crm.client_id: missing"),
        (
            ("      token: env:ACME_SF_REFRESH_TOKEN\n", ""),
            "give either token (a reference to the refresh token) or username and private_key",
        ),
        (
            ("      token: env:ACME_SF_REFRESH_TOKEN\n", "      username: dealsync@acme.example\n"),
            "the JWT bearer login needs both username and private_key",
        ),
        (
            ("      token:", "      username: dealsync\n      private_key: k\n      token:"),
            "partners[0].crm.username: 'dealsync' must be the Salesforce username",
        ),
        (
            ("      token:", "      client_secret: 0123456789abcdef0123456789abcdef\n      token:"),
            "partners[0].crm.client_secret: looks like a literal token",
        ),
        (
            ("      token:", "      api_share: 1.5\n      token:"),
            "api_share: 1.5 must be a fraction",
        ),
        (
            ("      token:", "      ca_bundle: missing.pem\n      token:"),
            "missing.pem does not exist: give the PEM file",
        ),
    ],
)
def test_salesforce_login_mistakes_name_the_key_and_the_fix(tmp_path, change, expected):
    path = _write(tmp_path, SALESFORCE.replace(*change))
    with pytest.raises(ConfigError) as failure:
        load_config(path)
    assert str(path) in str(failure.value) and expected in str(failure.value)
    assert "0123456789abcdef" not in str(failure.value)


def test_salesforce_keys_on_a_hubspot_connection_are_refused(tmp_path):
    path = _write(
        tmp_path,
        MINIMAL.replace('token: "env:ACME_TOKEN"}', 'token: "env:ACME_TOKEN", api_share: 0.5}'),
    )
    with pytest.raises(ConfigError, match="api_share are for Salesforce connections"):
        load_config(path)
