"""`dealsync init`: the custom properties every portal needs for its pairs' mappings (idempotent)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dealsync.config import Config, CrmConfig, PartnerConfig
from dealsync.connections import build_connector
from dealsync.fanout import each_at_once
from dealsync.mapping import MappingBase, load_mapping, load_notes_mapping
from dealsync.model import Side
from dealsync.tracking import tracking_properties


@dataclass(frozen=True)
class PreparedObject:
    """What init did for one object type on one portal."""

    portal: str
    object_type: str
    created: tuple[str, ...]
    already_there: int


@dataclass(frozen=True)
class PortalMapping:
    """One mapping as one portal must serve it."""

    portal: str  # "vendor" or "partner <id>"
    side: Side
    crm: CrmConfig
    object_type: str
    mapping: MappingBase


def portal_mappings(
    config: Config, partners: Iterable[PartnerConfig] | None = None
) -> Iterator[PortalMapping]:
    """Every portal and mapping the pairs (or these partners') use, each once. Portals are told
    apart by URL *and* token: every HubSpot portal answers on the same api.hubapi.com."""
    done: set[tuple[str, str, Side, str, str]] = set()
    for partner in config.partners if partners is None else partners:
        mappings: list[tuple[str, MappingBase]] = [("deals", load_mapping(partner.mapping_path))]
        if partner.notes_mapping_path:
            mappings.append(("notes", load_notes_mapping(partner.notes_mapping_path)))
        portals: tuple[tuple[str, Side, CrmConfig], ...] = (
            ("vendor", "vendor", config.vendor_crm),
            (f"partner {partner.id}", "partner", partner.crm),
        )
        for portal, side, crm in portals:
            for object_type, mapping in mappings:
                key = (crm.base_url, crm.token_ref, side, object_type, str(mapping.path))
                if key not in done:
                    done.add(key)
                    yield PortalMapping(portal, side, crm, object_type, mapping)


def prepare_portals(config: Config) -> list[PreparedObject]:
    """Create the missing custom properties on the vendor portal and every partner portal."""

    def prepare(used: PortalMapping) -> PreparedObject:
        specs = used.mapping.custom_properties.get(used.side, ())
        created = (
            build_connector(used.crm, used.portal).ensure_properties(used.object_type, specs)
            if specs
            else []
        )
        return PreparedObject(
            used.portal, used.object_type, tuple(created), len(specs) - len(created)
        )

    # Portals at once (each its own budget); one portal's mappings one after another, as two
    # mappings (a HubSpot and a Salesforce partner's) may ask the vendor for the same property.
    by_portal: dict[tuple[str, str], list[PortalMapping]] = {}
    for used in portal_mappings(config):
        by_portal.setdefault((used.crm.base_url, used.crm.token_ref), []).append(used)
    done = each_at_once(lambda group: [prepare(u) for u in group], list(by_portal.values()))
    results = [prepared for group in done for prepared in group]
    if config.registrations_property:
        tracked = tracking_properties(config.registrations_property)
        made = build_connector(config.vendor_crm, "vendor").ensure_properties("companies", tracked)
        results.append(PreparedObject("vendor", "companies", tuple(made), len(tracked) - len(made)))
    return results
