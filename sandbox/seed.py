"""Seed data sets for a sandbox portal (`--seed demo`)."""

from __future__ import annotations

import random

from sandbox.schema import DEAL_STAGES
from sandbox.store import Store, now_ms

DEMO_DEALS = 300
_PRODUCTS = ("Analytics", "Billing", "Connect", "Data Hub")
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka")


def seed_portal(store: Store, name: str) -> dict[str, int]:
    """Fill an empty portal with the named data set; returns what was created."""
    if name != "demo":
        raise ValueError(f"unknown seed {name!r}; the only seed is 'demo'")
    rng = random.Random(7)
    counts = {"owners": 0, "deals": 0, "notes": 0, "files": 0}
    with store.engine.begin() as conn:
        owner_ids = []
        for first, last in (
            ("Ada", "Lovelace"),
            ("Alan", "Turing"),
            ("Grace", "Hopper"),
            ("Edsger", "Dijkstra"),
        ):
            owner = store.add_owner(conn, f"{first.lower()}@example.test", first, last)
            owner_ids.append(owner["id"])
            counts["owners"] += 1
        deal_props = store.properties(conn, "deals")
        note_props = store.properties(conn, "notes")
        stamp = now_ms()
        for i in range(DEMO_DEALS):
            values = store.coerce_properties(
                conn,
                "deals",
                {
                    "dealname": f"{rng.choice(_COMPANIES)} - {rng.choice(_PRODUCTS)} #{i + 1}",
                    "amount": str(rng.randrange(1_000, 200_000, 500)),
                    "closedate": stamp + rng.randrange(1, 180) * 86_400_000,
                    "pipeline": "default",
                    "dealstage": rng.choice(DEAL_STAGES),
                    "hubspot_owner_id": rng.choice(owner_ids),
                },
                deal_props,
            )
            deal_id = store.create(conn, "deals", values, deal_props, stamp + i)
            counts["deals"] += 1
            if i % 3:
                continue
            attachment = ""
            if i % 9 == 0:
                content = f"Proposal for deal {i + 1}\n".encode() * 40
                attachment = str(
                    store.add_file(
                        conn, f"proposal-{i + 1}.txt", "/dealsync-demo", "PRIVATE", content
                    )
                )
                counts["files"] += 1
            note_values = store.coerce_properties(
                conn,
                "notes",
                {
                    "hs_timestamp": stamp + i,
                    "hs_note_body": f"<p>Call notes for deal {i + 1}.</p>",
                    "hs_attachment_ids": attachment,
                },
                note_props,
            )
            note_id = store.create(conn, "notes", note_values, note_props, stamp + i)
            store.associate(conn, "notes", note_id, "deals", deal_id, 214)
            counts["notes"] += 1
    return counts
