"""Adversarial, against real sandboxes: whatever key CRM users put on deals and notes, on either side,
no link moves, nothing is written to any CRM, nothing is deleted, and every record that claims to be
shared or to be this partner's twin is quarantined with a reason."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import PARTNER_OWNERS, VENDOR_OWNERS, Pair, write_config
from tests.integration.test_notes import _note, _notes_on
from tests.integration.test_sync import SHARED, _twin
from tests.integration.test_trust import _links, _quarantined, _run, beta_server, partners

__all__ = ["beta_server", "partners"]  # fixtures used below

REFS = (
    "acme_reg",  # acme's registration (partner deal)
    "acme_reg_twin",  # its vendor twin
    "acme_conv",  # a vendor deal converted to acme
    "acme_conv_twin",  # its partner twin
    "beta_conv",  # a vendor deal converted to beta
    "beta_conv_twin",  # its twin in beta's CRM
    "acme_note",  # a shared partner note on acme_reg
    "acme_note_twin",  # its vendor twin
    "beta_note",  # a shared vendor note on beta_conv
    "missing",
)
PAIRS = ("acme", "beta", "globex", "ACME", "")
SIDE_WORDS = ("partner", "vendor", "notes", "deals", "file", "")


@st.composite
def keys(draw) -> tuple:
    """A key as a symbolic recipe: dealsync-shaped (any pair, side word and referenced record, with
    suffixes and padding) or free text (unicode, colons, markup)."""
    if draw(st.booleans()):
        shape = (
            draw(st.sampled_from(PAIRS)),
            draw(st.sampled_from(SIDE_WORDS)),
            draw(st.sampled_from(REFS)),
            draw(st.sampled_from(["", ":welcome", ":1", " "])),
            draw(st.sampled_from(["", " "])),
        )
        return ("shaped", shape)
    text = draw(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(":[]/"),
            min_size=1,
            max_size=40,
        ).filter(lambda t: t.strip())
    )
    return ("text", text)


@st.composite
def hostile_records(draw) -> list[dict]:
    """One to four records users made or edited, each with a key, on deals and notes, both sides."""
    records = []
    for _ in range(draw(st.integers(1, 4))):
        side = draw(st.sampled_from(["partner", "vendor"]))
        kind = draw(st.sampled_from(["deal", "note"]))
        record = {"side": side, "kind": kind, "key": draw(keys())}
        if kind == "deal":
            record["marked"] = draw(
                st.sampled_from(["acme", "beta", None] if side == "vendor" else ["true", None])
            )
        else:
            deals = (
                ["acme_reg", "acme_conv_twin"]
                if side == "partner"
                else ["acme_reg_twin", "beta_conv"]
            )
            record["on"] = draw(st.sampled_from(deals))
            record["shared"] = draw(st.booleans())
        records.append(record)
    return records


@dataclass
class Scene:
    """Both partners synced and quiet: the ids of what the hostile records may point at."""

    ids: dict[str, str]

    def key(self, recipe: tuple) -> str:
        if recipe[0] == "text":
            return recipe[1]
        pair, side, ref, suffix, pad = recipe[1]
        target = self.ids.get(ref, "999999999999")
        return f"{pad}{pair}:{side}:{target}{suffix}{pad}"


_ledgers = itertools.count()


def _fresh(views: dict[str, Pair], folder) -> None:
    """Empty portals with their owners, a new ledger, `dealsync init`."""
    acme, beta = views["acme"], views["beta"]
    servers = {
        "vendor": acme.servers["vendor"],
        "acme": acme.servers["partner"],
        "beta": beta.servers["partner"],
    }
    for name, server in servers.items():
        server.admin("POST", "reset")
        emails = (
            VENDOR_OWNERS if name == "vendor" else [e.replace("acme", name) for e in PARTNER_OWNERS]
        )
        for email in emails:
            server.admin("POST", "owners", json={"email": email, "firstName": name})
    ledger = f"sqlite:///{folder}/ledger-{next(_ledgers)}.db"
    write_config(
        acme.config, acme.servers, ledger, {"acme": servers["acme"], "beta": servers["beta"]}
    )
    acme.cli("init")


def _scene(views: dict[str, Pair]) -> Scene:
    acme, beta = views["acme"], views["beta"]
    ids = {}
    ids["acme_reg"] = acme.create(
        "partner", dealname="Acme registration", closedate="2026-12-01", **SHARED
    )
    ids["acme_conv"] = acme.create(
        "vendor",
        dealname="For acme",
        amount="100",
        dealsync_partner="acme",
        dealsync_partner_owner_email="ann@acme.test",
    )
    ids["beta_conv"] = beta.create(
        "vendor",
        dealname="For beta",
        amount="200",
        dealsync_partner="beta",
        dealsync_partner_owner_email="ann@beta.test",
    )
    _run(acme, "acme")
    _run(beta, "beta")
    ids["acme_reg_twin"] = _twin(acme, "vendor", f"acme:partner:{ids['acme_reg']}")["id"]
    ids["acme_conv_twin"] = _twin(acme, "partner", f"acme:vendor:{ids['acme_conv']}")["id"]
    ids["beta_conv_twin"] = _twin(beta, "partner", f"beta:vendor:{ids['beta_conv']}")["id"]
    ids["acme_note"] = _note(
        acme, "partner", ids["acme_reg"], "<p>Acme says</p>", dealsync_shared="true"
    )
    ids["beta_note"] = _note(
        beta, "vendor", ids["beta_conv"], "<p>For beta only</p>", dealsync_shared="true"
    )
    _run(acme, "acme")
    _run(beta, "beta")
    notes = [
        n
        for n in _notes_on(acme, "vendor", ids["acme_reg_twin"])
        if "Acme says" in n["hs_note_body"]
    ]
    ids["acme_note_twin"] = notes[0]["id"]
    return Scene(ids)


def _make(views: dict[str, Pair], scene: Scene, record: dict) -> str | None:
    """Create one hostile record as a CRM user would; None when the CRM refuses it (a unique key)."""
    view = views["acme"]
    key = scene.key(record["key"])
    try:
        if record["kind"] == "deal":
            props = {"dealname": "Hostile", "closedate": "2031-01-01", "dealsync_key": key}
            if record["side"] == "partner" and record["marked"]:
                props["dealsync_shared"] = "true"
            if record["side"] == "vendor" and record["marked"]:
                props["dealsync_partner"] = record["marked"]
                props["dealsync_partner_owner_email"] = f"ann@{record['marked']}.test"
            return view.create(record["side"], **props)
        extra = {"dealsync_shared": "true"} if record["shared"] else {}
        return _note(
            view,
            record["side"],
            scene.ids[record["on"]],
            "<p>Hostile</p>",
            dealsync_key=key,
            **extra,
        )
    except AssertionError as refused:  # Pair.api asserts < 400: the CRM refused the write
        assert "dealsync_key" in str(refused), refused
        return None


def _parses_as(pair: str, key: str) -> bool:
    parts = key.strip().split(":")
    return len(parts) == 3 and parts[0] == pair and parts[1] in ("partner", "vendor")


def _claims(record: dict, key: str) -> set[str]:
    """The pairs that must quarantine this record: the ones it claims to belong to (by its key or
    by asking to be shared with them), among the ones that can see it (the vendor CRM is seen by
    both, acme's CRM by acme alone)."""
    visible = {"acme", "beta"} if record["side"] == "vendor" else {"acme"}
    asks = {pair for pair in ("acme", "beta") if _parses_as(pair, key)}
    if record["kind"] == "deal" and record["marked"]:
        asks.add("acme" if record["side"] == "partner" else record["marked"])
    if record["kind"] == "note" and record["shared"]:
        asks.add("beta" if record["on"] == "beta_conv" else "acme")
    return asks & visible


def _counts(views: dict[str, Pair]) -> dict[str, int]:
    acme, beta = views["acme"], views["beta"]
    return {
        "vendor": acme.writes("vendor"),
        "acme": acme.writes("partner"),
        "beta": beta.writes("partner"),
    }


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(hostile=hostile_records())
def test_forged_keys_move_no_link_write_nothing_and_are_quarantined(partners, tmp_path, hostile):
    _fresh(partners, tmp_path)
    scene = _scene(partners)
    acme, beta = partners["acme"], partners["beta"]
    links = _links(acme)
    made = [(record, _make(partners, scene, record)) for record in hostile]
    made = [(record, rid) for record, rid in made if rid]
    for view in (acme, beta):
        view.reset_counts()

    for _ in range(2):
        _run(acme, "acme")
        _run(beta, "beta")
        assert _links(acme) == links
        assert _counts(partners) == {"vendor": 0, "acme": 0, "beta": 0}

    quarantined = {"acme": _quarantined(acme, "acme"), "beta": _quarantined(beta, "beta")}
    for record, rid in made:
        key = scene.key(record["key"])
        for pair in _claims(record, key):
            reasons = quarantined[pair].get(rid)
            assert reasons and any("clear" in r for r in reasons), (pair, record, key, quarantined)
    for ref in ("acme_reg", "acme_reg_twin", "acme_conv", "acme_conv_twin", "beta_conv"):
        side = "partner" if ref in ("acme_reg", "acme_conv_twin") else "vendor"
        assert acme.deal(side, scene.ids[ref], "dealname") is not None, ref
    assert beta.deal("partner", scene.ids["beta_conv_twin"], "dealname") is not None
    response = requests.get(
        f"{acme.servers['partner'].base_url}/crm/v3/objects/deals/{scene.ids['acme_reg']}",
        headers={"Authorization": f"Bearer {acme.servers['partner'].token}"},
        timeout=30,
    )
    assert response.status_code == 200
