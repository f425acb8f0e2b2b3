"""Wake a partner's sync: a Prefect event that `sync-partner`'s trigger in prefect.yaml reacts to."""

from __future__ import annotations

from collections.abc import Mapping

from prefect.client.orchestration import get_client
from prefect.events import Event

WAKE_EVENT = "dealsync.partner.changed"


def partner_resource(partner_id: str) -> dict[str, str]:
    """The Prefect resource that stands for a partner's pair (what the trigger matches)."""
    return {
        "prefect.resource.id": f"dealsync.partner.{partner_id}",
        "prefect.resource.name": partner_id,
        "dealsync.partner": partner_id,
    }


def wake_partner(partner_id: str, reasons: Mapping[str, int]) -> None:
    """Tell Prefect that a partner's CRM changed; returns once the API has accepted the event."""
    event = Event(
        event=WAKE_EVENT,
        resource=partner_resource(partner_id),
        payload={"source": "hubspot-webhook", "events": dict(reasons)},
    )
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/events", json=[event.model_dump(mode="json")])
        response.raise_for_status()
