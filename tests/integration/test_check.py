"""`dealsync check` says, read-only, whether every connection would sync, and what to do where not."""

from __future__ import annotations

import json

from tests.integration.conftest import Pair


def test_a_ready_setup_checks_ok_and_writes_nothing(pair: Pair):
    pair.reset_counts()
    result = pair.cli("check")
    assert "Everything would sync" in result.output
    assert pair.writes("vendor") == pair.writes("partner") == 0


def test_a_wrong_token_is_named_with_its_partner(pair: Pair, monkeypatch):
    monkeypatch.setenv("TEST_ACME_TOKEN", "not-the-token")
    result = pair.cli("check", ok=False)
    assert result.exit_code == 1
    document = json.loads(pair.cli("check", "--json", ok=False).stdout)
    assert document["ok"] is False
    failing = [c for c in document["checks"] if not c["ok"]]
    assert {c["portal"] for c in failing} == {"partner acme"}
    assert all("token" in " ".join(c["problems"]).lower() for c in failing)


def test_a_portal_without_the_custom_properties_is_told_to_run_init(pair: Pair):
    pair.servers["partner"].admin("POST", "reset")  # a fresh portal: no dealsync properties
    document = json.loads(pair.cli("check", "--json", ok=False).stdout)
    problems = [
        p for c in document["checks"] if c["portal"] == "partner acme" for p in c["problems"]
    ]
    assert any("dealsync_key" in p and "dealsync init" in p for p in problems), problems
    assert all(c["ok"] for c in document["checks"] if c["portal"] == "vendor")
    pair.cli("init")
    assert json.loads(pair.cli("check", "--json").stdout)["ok"] is True


def test_an_owner_the_assignment_names_must_exist_on_the_vendor(pair: Pair):
    text = pair.config.read_text().replace(
        "fallback: rep1@vendor.test", "fallback: gone@vendor.test"
    )
    pair.config.write_text(text)
    result = pair.cli("check", ok=False)
    assert "gone@vendor.test" in result.output and "owner_assignment" in result.output


def test_webhook_settings_are_checked_secret_and_portal(pair: Pair, monkeypatch):
    portal = pair.api("partner", "GET", "/account-info/v3/details").json()["portalId"]
    text = pair.config.read_text().replace(
        'token: "env:TEST_ACME_TOKEN"}',
        f'token: "env:TEST_ACME_TOKEN", webhook_secret: "env:TEST_ACME_HOOKS", portal_id: {portal + 1}}}',
    )
    pair.config.write_text(text)
    monkeypatch.delenv("TEST_ACME_HOOKS", raising=False)
    hooks = [
        c
        for c in json.loads(pair.cli("check", "--json", ok=False).stdout)["checks"]
        if c["object"] == "webhooks"
    ]
    assert [c["portal"] for c in hooks] == ["partner acme"]
    assert "TEST_ACME_HOOKS is not set" in hooks[0]["problems"][0]

    monkeypatch.setenv("TEST_ACME_HOOKS", "the-app-secret")
    result = pair.cli("check", ok=False)
    assert (
        f"portal_id: {portal + 1} is configured, but the token's portal is {portal}"
        in result.output
    )

    pair.config.write_text(text.replace(f"portal_id: {portal + 1}", f"portal_id: {portal}"))
    document = json.loads(pair.cli("check", "--json").stdout)
    hooks = [c for c in document["checks"] if c["object"] == "webhooks"]
    assert document["ok"] is True and hooks[0]["checked"] == ["signing secret", f"portal {portal}"]
