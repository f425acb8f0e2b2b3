"""Tell a pair's configured recipients about new registrations and new shared notes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dealsync.config import NotifyTarget
from dealsync.secret_refs import resolve_secret


def _block(target: NotifyTarget) -> Any:
    if target.block:
        from prefect.blocks.abstract import NotificationBlock

        return NotificationBlock.load(target.block)
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    url = resolve_secret(target.webhook_ref or "", f"{target.where}.webhook")
    return CustomWebhookNotificationBlock(  # type: ignore[call-arg]  # pydantic fills the defaults
        name="dealsync",
        url=url,
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
        allow_private_urls=True,
    )


def send(targets: Sequence[NotifyTarget], subject: str, lines: Sequence[str]) -> list[str]:
    """Notify every target; returns one problem line per target that failed (never raises)."""
    if not targets or not lines:
        return []
    problems = []
    body = "\n".join(lines)
    for target in targets:
        try:
            _block(target).notify(body, subject)
        except Exception as exc:  # a notification must never fail the sync that triggered it
            problems.append(f"notification via {target.where} failed: {type(exc).__name__}")
    return problems
