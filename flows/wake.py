"""Wake partners' syncs: Prefect events that the triggers of prefect.yaml react to (one partner:
`sync-partner`; several at once: one `sync-partners` batch for all of them)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from prefect.client.orchestration import get_client
from prefect.events import Event

WAKE_EVENT = "dealsync.partner.changed"
WAKE_MANY_EVENT = "dealsync.partners.changed"


def partner_resource(partner_id: str) -> dict[str, str]:
    """The Prefect resource that stands for a partner's pair (what the trigger matches)."""
    return {
        "prefect.resource.id": f"dealsync.partner.{partner_id}",
        "prefect.resource.name": partner_id,
        "dealsync.partner": partner_id,
    }


def _wake_event(reasons: Mapping[str, Mapping[str, int]]) -> Event:
    if len(reasons) == 1:
        ((partner_id, events),) = reasons.items()
        return Event(
            event=WAKE_EVENT,
            resource=partner_resource(partner_id),
            payload={"source": "hubspot-webhook", "events": dict(events)},
        )
    partners = sorted(reasons)
    group = hashlib.sha256("\n".join(partners).encode()).hexdigest()[:16]
    return Event(
        event=WAKE_MANY_EVENT,
        resource={
            "prefect.resource.id": f"dealsync.partners.{group}",
            "prefect.resource.name": f"{len(partners)} partners",
        },
        related=[{**partner_resource(p), "prefect.resource.role": "partner"} for p in partners],
        payload={
            "source": "hubspot-webhook",
            "partners": partners,
            "events": {p: dict(reasons[p]) for p in partners},
        },
    )


def wake_partners(reasons: Mapping[str, Mapping[str, int]]) -> None:
    """Tell Prefect which partners' CRMs changed (events counted by type, by partner): one event,
    one run for all of them; returns once the API has accepted it."""
    event = _wake_event(reasons)
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/events", json=[event.model_dump(mode="json")])
        response.raise_for_status()


def wake_partner(partner_id: str, reasons: Mapping[str, int]) -> None:
    """`wake_partners` for one partner."""
    wake_partners({partner_id: reasons})
