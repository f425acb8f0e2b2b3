"""Connections and pairs: `dealsync.yaml` (`--config PATH` or `DEALSYNC_CONFIG`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from connectors.salesforce_http import SalesforceLogin
from dealsync.config_errors import ConfigError as ConfigError  # where every caller finds it
from dealsync.mapping import DEFAULT_MAPPING, DEFAULT_NOTES_MAPPING
from dealsync.partner_entries import partner_entries
from dealsync.rules import OwnerAssignment
from dealsync.salesforce_config import SALESFORCE_KEYS, SalesforceAuth, salesforce_auth
from dealsync.secret_refs import check_token_reference, resolve_secret
from dealsync.yaml_errors import YAML_LOADER, python_parse_error
from dealsync.yaml_errors import describe as describe_yaml_error

DEFAULT_CONFIG = "dealsync.yaml"
# The deal mapping a partner gets when its entry names none, by the kind of its CRM.
DEFAULT_MAPPINGS = {
    "hubspot": DEFAULT_MAPPING,
    "bottlecrm": "mappings/bottlecrm_shared_deal.yaml",
    "salesforce": "mappings/salesforce_shared_deal.yaml",
}
DEFAULT_LEDGER = "sqlite:///.dealsync/ledger.db"
DEFAULT_NOTES_MAPPINGS = {
    "hubspot": DEFAULT_NOTES_MAPPING,
    "bottlecrm": "mappings/bottlecrm_shared_notes.yaml",
    "salesforce": "mappings/salesforce_shared_notes.yaml",
}
CRM_KINDS = ("hubspot", "bottlecrm", "salesforce")
_PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class CrmConfig:
    """How to reach one CRM portal; the token is a reference, resolved at the edge."""

    kind: str
    base_url: str
    token_ref: str
    where: str  # "path: key" for error messages
    rate_share: float = 1.0  # the fraction of the portal's API budget one worker process may use
    lookback_seconds: float | None = None  # how far before its cursor a pull re-reads (search lag)
    # HubSpot webhooks: the reference to the client secret of the app that signs this portal's
    # deliveries, and the portal's number when known (else `dealsync receive` asks the portal).
    webhook_secret_ref: str | None = None
    portal_id: int | None = None
    salesforce: SalesforceAuth | None = None  # a Salesforce connection's login (token: refresh)

    def token(self) -> str:
        """The secret the reference points at."""
        return resolve_secret(self.token_ref, self.where)

    def salesforce_login(self) -> SalesforceLogin:
        """A Salesforce connection's login, its secrets resolved."""
        assert self.salesforce is not None
        refresh = self.token() if self.token_ref else None
        where = self.where.removesuffix(".token")
        return self.salesforce.login(self.base_url, refresh, where)

    def webhook_secret(self) -> str | None:
        """The webhook signing secret, when this connection receives webhooks."""
        if self.webhook_secret_ref is None:
            return None
        where = self.where.removesuffix(".token") + ".webhook_secret"
        return resolve_secret(self.webhook_secret_ref, where)


@dataclass(frozen=True)
class NotifyTarget:
    """Where a pair's notifications go: a saved Prefect notification block, or a webhook URL reference."""

    block: str | None = None
    webhook_ref: str | None = None
    where: str = ""


@dataclass(frozen=True)
class PartnerConfig:
    """One partner: its CRM and the mappings of its pair."""

    id: str
    crm: CrmConfig
    mapping_path: Path
    notes_mapping_path: Path | None = None
    notify: tuple[NotifyTarget, ...] = ()
    vendor_company_id: str | None = None


@dataclass(frozen=True)
class Config:
    """The whole configuration: one vendor, many partners, one ledger."""

    path: Path
    ledger_url: str
    vendor_crm: CrmConfig
    owner_assignment: OwnerAssignment
    partners: tuple[PartnerConfig, ...]
    max_file_bytes: int = 25 * 1024 * 1024
    registrations_property: str | None = "dealsync_active_registrations"
    lease_seconds: float = 60.0  # how long a pair's lease outlives its holder's last renewal

    def partner(self, partner_id: str) -> PartnerConfig:
        """The partner with this id, or a ConfigError listing the known ones."""
        for partner in self.partners:
            if partner.id == partner_id:
                return partner
        known = ", ".join(p.id for p in self.partners)
        raise ConfigError(
            f"{self.path}: partners: no partner {partner_id!r}; the configured partners are {known}."
        )


def config_path(explicit: str | Path | None = None) -> Path:
    """The config file to use: --config, then $DEALSYNC_CONFIG, then ./dealsync.yaml."""
    return Path(explicit or os.environ.get("DEALSYNC_CONFIG") or DEFAULT_CONFIG)


def _need(
    data: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], fix: str
) -> Any:
    if key not in data:
        raise ConfigError(f"{where}.{key}: missing. {fix}")
    value = data[key]
    if not isinstance(value, kind):
        raise ConfigError(
            f"{where}.{key}: expected {_kind_name(kind)}, got {type(value).__name__}. {fix}"
        )
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _crm(data: Any, where: str, base: Path) -> CrmConfig:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: expected a mapping like {{kind: hubspot, base_url: ..., token: env:NAME}}."
        )
    kind = _need(data, "kind", where, str, f"Use one of: {', '.join(CRM_KINDS)}.")
    if kind not in CRM_KINDS:
        raise ConfigError(
            f"{where}.kind: {kind!r} is not a supported CRM. Use one of: {', '.join(CRM_KINDS)}."
        )
    base_url = _need(
        data, "base_url", where, str, 'Give the API root, e.g. "http://127.0.0.1:8701".'
    )
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.base_url: {base_url!r} must start with http:// or https://.")
    salesforce = None
    if kind == "salesforce":
        salesforce = salesforce_auth(data, where, "token" in data, base)
    else:
        unknown = [key for key in SALESFORCE_KEYS if key in data]
        if unknown:
            raise ConfigError(
                f"{where}: {', '.join(unknown)} are for Salesforce connections; a {kind} "
                "connection logs in with its token alone. Remove them."
            )
    token = ""
    if salesforce is None or "token" in data:
        token = _need(
            data, "token", where, str, "Give a reference: env:NAME or a Prefect Secret block name."
        )
        check_token_reference(token, f"{where}.token")
    share = data.get("rate_share", 1.0)
    if not isinstance(share, int | float) or not 0 < share <= 1:
        raise ConfigError(
            f"{where}.rate_share: {share!r} must be a fraction in (0, 1], e.g. 0.5 for two worker processes."
        )
    lookback = data.get("lookback_seconds")
    if lookback is not None and (
        isinstance(lookback, bool) or not isinstance(lookback, int | float) or lookback < 0
    ):
        raise ConfigError(
            f"{where}.lookback_seconds: {lookback!r} must be a number of seconds >= 0 "
            "(how far before its cursor a pull re-reads; leave it out for 300)."
        )
    return CrmConfig(
        kind,
        base_url.rstrip("/"),
        token,
        f"{where}.token",
        float(share),
        None if lookback is None else float(lookback),
        *_webhooks(data, kind, where),
        salesforce,
    )


def _webhooks(data: dict[str, Any], kind: str, where: str) -> tuple[str | None, int | None]:
    """A connection's webhook secret reference and portal number (both optional)."""
    secret, portal = data.get("webhook_secret"), data.get("portal_id")
    if (secret is not None or portal is not None) and kind != "hubspot":
        raise ConfigError(
            f"{where}: webhook_secret and portal_id are for HubSpot portals; {kind} sends no "
            "webhooks (its changes arrive with the schedule). Remove them."
        )
    if secret is not None:
        if not isinstance(secret, str):
            raise ConfigError(
                f"{where}.webhook_secret: give a reference, env:NAME or a block name."
            )
        check_token_reference(secret, f"{where}.webhook_secret")
    if portal is not None and (
        isinstance(portal, bool) or not isinstance(portal, int) or portal <= 0
    ):
        raise ConfigError(
            f"{where}.portal_id: {portal!r} must be the portal's number (its Hub ID), e.g. 12345678."
        )
    return secret, portal


def _owner_assignment(data: Any, where: str) -> OwnerAssignment:
    if data is None:
        return OwnerAssignment("round_robin")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: expected a mapping with a strategy (round_robin, by_field or fixed)."
        )
    strategy = data.get("strategy", "round_robin")
    fallback = data.get("fallback")
    if strategy == "round_robin":
        pool = _need(data, "pool", where, list, "List the owner emails to rotate through.")
        return OwnerAssignment("round_robin", tuple(str(e) for e in pool), fallback)
    if strategy == "by_field":
        prop = _need(
            data,
            "property",
            where,
            str,
            "Name the partner deal property whose value picks the owner.",
        )
        table = _need(
            data,
            "owners",
            where,
            dict,
            "Map property values to owner emails, e.g. {DE: rep1@vendor.test}.",
        )
        return OwnerAssignment(
            "by_field", (), fallback, prop, {str(k): str(v) for k, v in table.items()}
        )
    if strategy == "fixed":
        owner = _need(data, "owner", where, str, "Give the owner email every registration goes to.")
        return OwnerAssignment("fixed", (), fallback, owner=owner)
    raise ConfigError(f"{where}.strategy: {strategy!r} is not one of round_robin, by_field, fixed.")


def _resolve_ledger(url: str, base: Path) -> str:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url[len("sqlite:///") :]
        if relative and relative != ":memory:":
            return f"sqlite:///{(base / relative).resolve()}"
    return url


def _notify(data: Any, where: str) -> tuple[NotifyTarget, ...]:
    if data is None:
        return ()
    items = data if isinstance(data, list) else [data]
    targets = []
    for n, item in enumerate(items):
        at = f"{where}[{n}]"
        if not isinstance(item, dict) or not ({"block", "webhook"} & set(item)):
            raise ConfigError(
                f"{at}: give `block: <Prefect notification block name>` or `webhook: env:NAME` (a URL reference)."
            )
        webhook = item.get("webhook")
        if (
            webhook
            and not str(webhook).startswith("env:")
            and "://" in str(webhook)
            and "@" in str(webhook)
        ):
            raise ConfigError(
                f"{at}.webhook: looks like a URL with credentials; use env:NAME instead."
            )
        targets.append(NotifyTarget(item.get("block"), webhook, at))
    return tuple(targets)


def _notes_mapping_path(raw: str | None, base: Path, kind: str) -> Path | None:
    """The pair's notes mapping: the one named, or the default for the partner CRM's kind (none for
    a kind whose notes are not synced yet, or when the entry says `notes_mapping: none`)."""
    default = DEFAULT_NOTES_MAPPINGS.get(kind)
    if (raw is None and default is None) or raw == "none":
        return None
    return _mapping_path(raw, base, default or DEFAULT_NOTES_MAPPING)


def _mapping_path(raw: str | None, base: Path, default: str = DEFAULT_MAPPING) -> Path:
    candidate = Path(raw or default)
    if candidate.is_absolute():
        return candidate
    for root in (base, Path(__file__).resolve().parent.parent):
        if (root / candidate).exists():
            return root / candidate
    return base / candidate


def load_config(path: str | Path | None = None) -> Config:
    """Read and check the config; every error names the file, the key and the fix."""
    file = config_path(path)
    if not file.exists():
        raise ConfigError(
            f"{file}: no such file. Pass --config PATH, set DEALSYNC_CONFIG, or create {DEFAULT_CONFIG} (see README)."
        )
    text = file.read_text()
    try:
        data = yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError:
        syntax = describe_yaml_error(text, python_parse_error(text))
        raise ConfigError(f"{file}:{syntax.line}:{syntax.column}: {syntax.message}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected keys ledger, vendor and partners at the top level.")
    base = file.resolve().parent
    where = str(file)
    vendor = _need(data, "vendor", where, dict, "Describe the vendor CRM: vendor: {crm: {...}}.")
    partners = []
    seen: dict[str, str] = {}
    for at, entry in partner_entries(data, base, where):
        if not isinstance(entry, dict):
            raise ConfigError(f"{at}: expected a mapping with id and crm.")
        partner_id = str(
            _need(entry, "id", at, (str, int), "Give the partner a short id, e.g. acme.")
        )
        if not _PARTNER_ID.match(partner_id):
            raise ConfigError(
                f"{at}.id: {partner_id!r} must be lowercase letters, digits, - or _ (it is part of every idempotency key)."
            )
        if partner_id in seen:
            raise ConfigError(
                f"{at}.id: {partner_id!r} is used twice (also at {seen[partner_id]}); partner ids "
                "must be unique."
            )
        seen[partner_id] = at
        crm = _crm(entry.get("crm"), f"{at}.crm", base)
        partners.append(
            PartnerConfig(
                partner_id,
                crm,
                _mapping_path(entry.get("mapping"), base, DEFAULT_MAPPINGS[crm.kind]),
                _notes_mapping_path(entry.get("notes_mapping"), base, crm.kind),
                _notify(entry.get("notify"), f"{at}.notify"),
                str(entry["vendor_company_id"]) if entry.get("vendor_company_id") else None,
            )
        )
    ledger = data.get("ledger", DEFAULT_LEDGER)
    if not isinstance(ledger, str) or "://" not in ledger:
        raise ConfigError(
            f"{where}: ledger: {ledger!r} is not a database URL, e.g. {DEFAULT_LEDGER} or postgresql+psycopg://user@host/db."
        )
    return Config(
        path=file,
        ledger_url=_resolve_ledger(ledger, base),
        vendor_crm=_crm(vendor.get("crm"), f"{where}: vendor.crm", base),
        owner_assignment=_owner_assignment(
            vendor.get("owner_assignment"), f"{where}: vendor.owner_assignment"
        ),
        partners=tuple(partners),
        max_file_bytes=_max_file_bytes(data.get("files"), where),
        registrations_property=(data.get("tracking") or {}).get(
            "property", "dealsync_active_registrations"
        ),
        lease_seconds=_lease_seconds(data.get("lease_seconds", 60), where),
    )


def _lease_seconds(value: Any, where: str) -> float:
    """How long a pair's lease outlives its holder's last renewal (renewed every quarter of it)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 2 <= value <= 3600:
        raise ConfigError(
            f"{where}: lease_seconds: {value!r} must be a number of seconds from 2 to 3600 (default 60): "
            "how long a run that stopped renewing keeps its partner from the next run."
        )
    return float(value)


def _max_file_bytes(data: Any, where: str) -> int:
    if data is None:
        return 25 * 1024 * 1024
    value = data.get("max_bytes") if isinstance(data, dict) else None
    if not isinstance(value, int) or value <= 0:
        raise ConfigError(
            f"{where}: files.max_bytes must be a positive number of bytes, e.g. files: {{max_bytes: 26214400}}."
        )
    return value
