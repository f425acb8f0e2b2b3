"""`dealsync check`: whether every connection would sync, without writing anything.

For each portal and object a pair syncs: the server answers, the token is accepted and allowed the
reads a run makes (a search, owners), the custom properties exist with the right types and options,
and every property the mapping uses exists. The vendor's owner assignment names owners the vendor
portal has. A connection with a webhook secret: the secret resolves and the portal tells its number
(the one configured, if any). Every failure is one sentence saying what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.base import Connector
from connectors.errors import ConnectorError
from dealsync.config import Config, ConfigError, CrmConfig
from dealsync.connections import build_connector, portal_number
from dealsync.fanout import each_at_once
from dealsync.mapping import MappingBase
from dealsync.mapping_check import MappingError
from dealsync.model import Side
from dealsync.setup import portal_mappings


@dataclass
class PortalCheck:
    """What was checked on one portal for one object, and what stops a sync there."""

    portal: str
    object_type: str
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_connections(config: Config, partner_id: str | None = None) -> list[PortalCheck]:
    """Every portal and object the configured pairs (or one) sync, checked read-only."""
    partners = [config.partner(partner_id)] if partner_id else list(config.partners)
    results: list[PortalCheck] = []
    loadable = []
    for partner in partners:
        try:
            list(portal_mappings(config, [partner]))  # its mappings load
        except (MappingError, ConfigError, OSError) as exc:
            results.append(PortalCheck(f"partner {partner.id}", "mapping", problems=[str(exc)]))
            continue
        loadable.append(partner)
    # Every portal has its own budget: a thousand partners are checked side by side.
    results += each_at_once(
        lambda u: _check_portal(u.portal, u.side, u.crm, u.object_type, u.mapping),
        portal_mappings(config, loadable),
    )
    results.append(_check_owner_assignment(config))
    connections = [("vendor", config.vendor_crm), *((f"partner {p.id}", p.crm) for p in partners)]
    results += each_at_once(
        lambda c: _check_webhooks(c[1], c[0]), [c for c in connections if c[1].webhook_secret_ref]
    )
    return results


def _check_webhooks(crm: CrmConfig, portal: str) -> PortalCheck:
    """The webhook secret resolves and the portal's number is known (and matches the config)."""
    result = PortalCheck(portal, "webhooks")
    try:
        crm.webhook_secret()
    except ConfigError as exc:
        result.problems.append(str(exc))
        return result
    result.checked.append("signing secret")
    try:
        number = portal_number(crm, portal)
    except (ConnectorError, ConfigError) as exc:
        result.problems.append(f"{portal}: could not ask which portal this is: {exc}")
        return result
    if crm.portal_id is not None and crm.portal_id != number:
        result.problems.append(
            f"{crm.where.removesuffix('.token')}.portal_id: {crm.portal_id} is configured, but the "
            f"token's portal is {number}: its webhooks would be refused. Set portal_id: {number} "
            "(or leave it out: the receiver asks the portal)."
        )
        return result
    result.checked.append(f"portal {number}")
    return result


def _check_portal(
    portal: str, side: Side, crm: CrmConfig, object_type: str, mapping: MappingBase
) -> PortalCheck:
    """Reach, authenticate, read as a run reads, and compare the properties with the mapping."""
    result = PortalCheck(portal, object_type)
    try:
        connector = build_connector(crm, portal)
    except ConfigError as exc:
        result.problems.append(str(exc))
        return result
    used = [*mapping.properties(side), mapping.owner(side)]
    steps: list[tuple[str, Callable[[], list[str]]]] = [
        ("reads changes", lambda: _reads(connector, object_type)),
        (
            "properties",
            lambda: connector.property_problems(
                object_type, mapping.custom_properties.get(side, ()), used
            ),
        ),
    ]
    for name, step in steps:
        try:
            problems = step()
        except ConnectorError as exc:
            result.problems.append(str(exc))
            return result  # unreachable or refused: the next steps would only say it again
        result.checked.append(name)
        result.problems += problems
    return result


def _reads(connector: Connector, object_type: str) -> list[str]:
    """One page of the change feed and the owners: what every run reads first."""
    next(iter(connector.pull_changes(object_type, None, [])), None)
    connector.owners()
    return []


def _check_owner_assignment(config: Config) -> PortalCheck:
    """The owners the vendor's assignment rules name exist on the vendor portal."""
    result = PortalCheck("vendor", "owners")
    rules = config.owner_assignment
    wanted = [*rules.pool, rules.fallback or "", rules.owner or "", *rules.table.values()]
    wanted = [email for email in dict.fromkeys(wanted) if email]
    if not wanted:
        return result
    try:
        owners = build_connector(config.vendor_crm, "vendor").owners()
    except (ConnectorError, ConfigError) as exc:
        result.problems.append(str(exc))
        return result
    result.checked.append("owner assignment")
    known = {owner.email.lower() for owner in owners if not owner.archived}
    result.problems += [
        f"vendor: owner_assignment names {email}, who is not an active owner of the vendor portal: "
        "add the user in the CRM or change vendor.owner_assignment in the config."
        for email in wanted
        if email.lower() not in known
    ]
    return result
