"""Keys are claims: what a key read back from a CRM may prove, judged by the ledger's word. Pure.

dealsync writes a key (`<pair>:<origin side>:<origin id>`) on every record it creates, so that a run
killed between a create and its ledger commit can find the twin it made. But the key is a property
any CRM user can type, paste, clone or re-import. It is therefore only a claim: it confirms a record
the ledger already knows, or completes a create the ledger recorded as pending. Anything else is
refused, and the record is quarantined with a reason; it never moves a link, causes a write to the
other side, or causes a deletion.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from dealsync.model import Side

IntentState = Literal["pending", "done", "failed"]


@dataclass(frozen=True)
class Intent:
    """A create the ledger recorded before sending it: pending until the CRM's answer is committed."""

    key: str
    target_side: Side
    source_id: str
    state: IntentState = "pending"
    target_id: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What a record's key proves: a record the ledger knows, the twin of a pending create, or nothing."""

    kind: Literal["known", "adopt", "refuse", "ignore"]
    origin_id: str = ""  # adopt: the source record of the pending create, on the other side
    reason: str = ""  # refuse: what the user can do


KNOWN = Verdict("known")


def shown(key: str, limit: int = 80) -> str:
    """A user-typed key, safe and short enough to quote in a message."""
    text = key if len(key) <= limit else key[: limit - 1] + "…"
    return repr(text)


def refusal(pair: str, side: Side, key_property: str, key: str, noun: str) -> str:
    """The quarantine reason of a record whose key dealsync did not issue."""
    if side == "partner":
        return (
            f"{key_property} {shown(key)} names a record partner {pair} did not create: clear "
            f"{key_property} to register it as a new {noun}"
        )
    return (
        f"{key_property} {shown(key)} was not issued by dealsync for partner {pair}: clear "
        f"{key_property} to share it with {pair} as a new {noun}"
    )


def judge(
    side: Side,
    record_id: str,
    key: str,
    intents: Mapping[str, Intent],
    known: Collection[tuple[Side, str]],
) -> Verdict:
    """What `key`, read on `side` from record `record_id`, proves by the ledger's word."""
    if (side, record_id) in known:
        return KNOWN
    intent = intents.get(key)
    if intent is not None and intent.target_side == side:
        if intent.state == "pending":
            return Verdict("adopt", origin_id=intent.source_id)
        if intent.state == "done" and intent.target_id == record_id:
            return KNOWN
    return Verdict("refuse")


def decide(
    pair: str,
    side: Side,
    record_id: str,
    key: str,
    intents: Mapping[str, Intent],
    known: Collection[tuple[Side, str]],
    *,
    disputed: Collection[str],
    origin_linked: Collection[str],
    wants_sharing: bool,
    key_property: str,
    noun: str,
) -> Verdict:
    """The whole policy for an unlinked record carrying a key: known (leave it), adopt it as the twin
    of a pending create (when no other record claims the key and its source is not linked already),
    refuse it with a reason when it asks to be shared or names this pair, else ignore it (it is
    another partner's record, or not meant to be shared)."""
    verdict = judge(side, record_id, key, intents, known)
    if verdict.kind == "known":
        return verdict
    if verdict.kind == "adopt" and key not in disputed and verdict.origin_id not in origin_linked:
        return verdict
    if not wants_sharing and not names_pair(pair, key):
        return Verdict("ignore")
    reason = refusal(pair, side, key_property, key, noun)
    if key in disputed:
        reason += f" (several {noun}s carry this key)"
    return Verdict("refuse", reason=reason)


def names_pair(pair: str, key: str) -> bool:
    """Whether a key has the shape of one this pair issues (`<pair>:<side>:<id>`)."""
    parts = key.split(":")
    return len(parts) == 3 and parts[0] == pair and parts[1] in ("partner", "vendor")


def contested(claims: Iterable[tuple[str, str]]) -> set[str]:
    """Keys claimed by more than one record ((key, record id) pairs): none of them may be adopted."""
    holders: dict[str, set[str]] = {}
    for key, record_id in claims:
        holders.setdefault(key, set()).add(record_id)
    return {key for key, ids in holders.items() if len(ids) > 1}


def twin_of(side: Side, record_id: str, origin_id: str) -> tuple[str, str]:
    """(partner id, vendor id) of a record on `side` adopted as the twin of `origin_id`."""
    return (origin_id, record_id) if side == "vendor" else (record_id, origin_id)
