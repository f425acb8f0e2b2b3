"""The merge for notes, comments and their files on shared deals. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dealsync.claims import contested, decide, twin_of
from dealsync.mapping import NotesMapping
from dealsync.model import (
    SIDES,
    Adopt,
    FieldRule,
    Link,
    Side,
    Skip,
    both,
    other,
)
from dealsync.note_model import (
    FILES,
    NoteCreate,
    NoteDelete,
    NotePlan,
    NotePlanInput,
    NoteRecord,
    NoteUpdate,
)
from dealsync.note_text import author_line, author_prefix
from dealsync.plan import key_for, merge_field


def merge_files(
    partner: tuple[str, ...], vendor: tuple[str, ...], base: tuple[str, ...]
) -> tuple[str, ...]:
    """Three-way merge of file sets: what either side added stays, what either side removed goes."""
    p, v, b = set(partner), set(vendor), set(base)
    return tuple(sorted((b | (p - b) | (v - b)) - (b - p) - (b - v)))


def make_note_plan(inp: NotePlanInput) -> NotePlan:
    """Decide every note write of one run."""
    plan = NotePlan()
    linked: dict[Side, dict[str, Link]] = {
        "partner": {link.partner_id: link for link in inp.links},
        "vendor": {link.vendor_id: link for link in inp.links},
    }
    for link in inp.links:
        _plan_link(inp, link, plan)
    unlinked = [
        (side, note)
        for side in SIDES
        for note in inp.notes.get(side, {}).values()
        if note.id not in linked[side]
    ]
    disputed = contested(
        (key, f"{side}:{note.id}")
        for side, note in unlinked
        if (key := _key_of(inp.mapping, side, note))
    )
    for side, note in unlinked:
        _plan_unlinked(inp, side, note, linked, plan, disputed)
    for vendor_deal, partner_deal, text, stamp in inp.welcome:
        properties = {
            _rule(inp.mapping, "body").prop("partner") or "": text,
            **_shared_flag(inp, "partner"),
        }
        stamp_rule = _rule(inp.mapping, "timestamp")
        if stamp_rule.direction.flows_to("partner"):
            properties[stamp_rule.prop("partner")] = stamp  # type: ignore[index]
        plan.creates.append(
            NoteCreate(
                target="partner",
                source_id=f"welcome-{vendor_deal}",
                key=welcome_key(inp.pair, vendor_deal),
                deal_id=partner_deal,
                properties=properties,
                base={},
                files=(),
                welcome=True,
            )
        )
    return plan


def _rule(mapping: NotesMapping, name: str) -> FieldRule:
    return next(r for r in mapping.fields if r.name == name)


def _shared_flag(inp: NotePlanInput, side: Side) -> dict[str, str]:
    """The property value that marks a note shared on a side."""
    rule = inp.mapping.share(side)
    return {rule.property: rule.equals or ""}


def _key_of(mapping: NotesMapping, side: Side, note: NoteRecord) -> str:
    """The key a note carries on its side (none where that CRM keeps no key on notes)."""
    prop = mapping.key(side)
    return (note.record.raw.get(prop) or "").strip() if prop else ""


def _on_shared_deal(inp: NotePlanInput, side: Side, note: NoteRecord) -> bool:
    return any(d in inp.deal_twins.get(side, {}) for d in note.deal_ids)


def _plan_link(inp: NotePlanInput, link: Link, plan: NotePlan) -> None:
    for side in SIDES:
        note_id = link.partner_id if side == "partner" else link.vendor_id
        if (side, note_id) in inp.gone:
            target_id = link.vendor_id if side == "partner" else link.partner_id
            if (other(side), target_id) in inp.gone:
                plan.deletes.append(NoteDelete(side, link.id, target_id, "unlink"))
            else:
                plan.deletes.append(
                    NoteDelete(side, link.id, target_id, inp.mapping.policy(side).action)
                )
            return
    partner = inp.notes.get("partner", {}).get(link.partner_id)
    vendor = inp.notes.get("vendor", {}).get(link.vendor_id)
    if partner is None or vendor is None:
        return
    if not _on_shared_deal(inp, "vendor", vendor):
        reason = (
            f"vendor note {vendor.id} is linked to partner {inp.pair} but is no longer on a deal "
            f"shared with {inp.pair}: nothing of it is synced either way until it is back on one"
        )
        plan.skips.append(Skip("vendor", vendor.id, reason))
        return
    base = dict(link.base)
    writes: dict[Side, dict[str, str]] = {"partner": {}, "vendor": {}}
    changed: dict[Side, list[str]] = {"partner": [], "vendor": []}
    for rule in (r for r in inp.mapping.synced_fields() if r.when == "always"):
        p, v, b = (
            partner.record.values.get(rule.name),
            vendor.record.values.get(rule.name),
            link.base.get(rule.name),
        )
        target, value = merge_field(rule, p, v, b, partner.record, vendor.record, link, plan)  # type: ignore[arg-type]
        base[rule.name] = value
        if target is not None:
            text = rule.write(target, value)
            if rule.name == "body":
                current = (partner if target == "partner" else vendor).record.raw.get(
                    rule.prop(target) or ""
                )
                text = author_prefix(current) + text
            writes[target][rule.prop(target)] = text  # type: ignore[index]
            changed[target].append(rule.name)
    base_files = tuple(link.base.get(FILES) or ())
    files = merge_files(partner.files, vendor.files, base_files) if inp.sync_files else base_files
    base[FILES] = files
    file_updates: dict[Side, tuple[str, ...] | None] = {"partner": None, "vendor": None}
    for side, note in both(partner, vendor):
        if inp.sync_files and tuple(sorted(note.files)) != files:
            file_updates[side] = files
            changed[side].append(FILES)
            plan.removed_files += [(side, sha) for sha in set(note.files) - set(files)]
    for side, note in both(partner, vendor):
        if writes[side] or file_updates[side] is not None:
            plan.updates.append(
                NoteUpdate(
                    side, note.id, link.id, writes[side], file_updates[side], tuple(changed[side])
                )
            )
    if link.id is not None and base != dict(link.base):
        plan.new_bases[link.id] = base


def _is_shared(
    inp: NotePlanInput, side: Side, note: NoteRecord, linked: Mapping[Side, Mapping[str, Link]]
) -> bool:
    """Shared when marked so; a reply to a shared note is shared unless marked private."""
    rule = inp.mapping.share(side)
    flag = (note.record.raw.get(rule.property) or "").strip().lower()
    if flag:
        return rule.matches(note.record.raw, inp.pair)
    reply_to = inp.mapping.reply_to(side)
    parent = (note.record.raw.get(reply_to) or "").strip() if reply_to else ""
    if not parent:
        return False
    if parent in linked[side]:
        return True
    parent_note = inp.notes.get(side, {}).get(parent)
    return (
        parent_note is not None
        and parent_note.id != note.id
        and _is_shared(inp, side, parent_note, linked)
    )


def _plan_unlinked(
    inp: NotePlanInput,
    side: Side,
    note: NoteRecord,
    linked: Mapping[Side, Mapping[str, Link]],
    plan: NotePlan,
    disputed: set[str],
) -> None:
    mapping = inp.mapping
    if (side, note.id) in inp.known:
        return  # its link ended, or dealsync made it (a welcome note): it never crosses by itself
    if key := _key_of(mapping, side, note):
        _plan_claim(inp, side, note, key, linked, plan, disputed)
        return
    if not _is_shared(inp, side, note, linked):
        return  # private notes never leave their CRM
    target = other(side)
    twin_deal = next(
        (inp.deal_twins[side][d] for d in note.deal_ids if d in inp.deal_twins.get(side, {})), None
    )
    if twin_deal is None:
        return  # not on a deal shared with this partner
    body_rule = _rule(mapping, "body")
    if not note.record.values.get("body") and mapping.attachments(target) is None:
        return  # a files-only note: where files belong to the deal, only its files cross
    properties: dict[str, str] = _shared_flag(inp, target)
    for rule in mapping.synced_fields():
        value = note.record.values.get(rule.name)
        if value is not None and rule.direction.flows_to(target):
            properties[rule.prop(target)] = rule.write(target, value)  # type: ignore[index]
    owner_id = (
        inp.owners.get(target, {}).get((note.author_email or "").lower())
        if note.author_email
        else None
    )
    body_prop = body_rule.prop(target) or ""
    if owner_id:
        properties[mapping.owner(target)] = owner_id
    elif note.author_email:
        # Without declared formats both CRMs hold HTML (HubSpot notes).
        fmt = body_rule.format(target) if body_rule.formats else "html"
        line = author_line(note.author_name, note.author_email, fmt)
        properties[body_prop] = line + properties.get(body_prop, "")
    reply_to, target_reply_to = mapping.reply_to(side), mapping.reply_to(target)
    parent = (note.record.raw.get(reply_to) or "").strip() or None if reply_to else None
    if parent and target_reply_to is None:
        parent = None  # the other CRM has no replies: the comment crosses as a note of its own
    if parent and parent in linked[side]:
        link = linked[side][parent]
        properties[target_reply_to] = link.vendor_id if side == "partner" else link.partner_id  # type: ignore[index]
        parent = None
    base = {r.name: note.record.values.get(r.name) for r in mapping.synced_fields()}
    files: tuple[str, ...] = tuple(sorted(note.files)) if inp.sync_files else ()
    base[FILES] = files
    plan.creates.append(
        NoteCreate(
            target,
            note.id,
            key_for(inp.pair, side, note.id),
            twin_deal,
            properties,
            base,
            files,
            parent,
        )
    )


def _plan_claim(
    inp: NotePlanInput,
    side: Side,
    note: NoteRecord,
    key: str,
    linked: Mapping[Side, Mapping[str, Link]],
    plan: NotePlan,
    disputed: set[str],
) -> None:
    """An unlinked note carrying a key: adopt it only as the twin of this pair's pending create."""
    verdict = decide(
        inp.pair,
        side,
        note.id,
        key,
        inp.intents,
        inp.known,
        disputed=disputed,
        origin_linked=linked[other(side)],
        wants_sharing=_on_shared_deal(inp, side, note) and _is_shared(inp, side, note, linked),
        key_property=inp.mapping.key(side) or "key",
        noun="shared note",
    )
    if verdict.kind == "adopt" and is_welcome_key(key):
        plan.found[key] = note.id  # dealsync's own welcome note: confirmed, never linked
    elif verdict.kind == "adopt":
        partner_id, vendor_id = twin_of(side, note.id, verdict.origin_id)
        base = {r.name: note.record.values.get(r.name) for r in inp.mapping.synced_fields()}
        files = tuple(sorted(note.files)) if inp.sync_files else ()
        plan.adopts.append(Adopt(partner_id, vendor_id, other(side), {**base, FILES: files}))
    elif verdict.kind == "refuse":
        plan.skips.append(Skip(side, note.id, verdict.reason, security=True))


def welcome_key(pair: str, vendor_deal: str) -> str:
    """The key of the welcome note of a converted vendor deal."""
    return f"{pair}:vendor:{vendor_deal}:welcome"


def is_welcome_key(key: str) -> bool:
    """Whether a key is a welcome note's (it has no twin: it is dealsync's own note)."""
    return key.endswith(":welcome")


def adopt_interrupted_creates(
    plan: NotePlan,
    mapping: NotesMapping,
    notes: Mapping[Side, Mapping[str, NoteRecord]],
    interrupted: set[str],
    links: Iterable[Link] = (),
) -> None:
    """Where notes hold no key, a create an interrupted run sent shows up as a new, unlinked note
    on the twin deal with the same text: link it instead of creating it again (and copying it back)."""
    body = _rule(mapping, "body")
    taken = {("partner", lk.partner_id) for lk in links} | {
        ("vendor", lk.vendor_id) for lk in links
    }
    for create in [c for c in plan.creates if c.key in interrupted]:
        wanted = (create.properties.get(body.prop(create.target) or "") or "").strip()
        found = next(
            (
                note
                for note in notes.get(create.target, {}).values()
                if create.deal_id in note.deal_ids
                and (create.target, note.id) not in taken
                and (note.record.raw.get(body.prop(create.target) or "") or "").strip() == wanted
            ),
            None,
        )
        if found is None:
            continue
        echo = [c for c in plan.creates if c.target != create.target and c.source_id == found.id]
        plan.creates = [c for c in plan.creates if c is not create and c not in echo]
        plan.found[create.key] = found.id
        taken.add((create.target, found.id))
        if create.welcome:
            continue  # a welcome note has no twin to link: it is dealsync's own, and stays put
        source = other(create.target)
        partner_id, vendor_id = (
            (found.id, create.source_id) if source == "vendor" else (create.source_id, found.id)
        )
        plan.adopts.append(Adopt(partner_id, vendor_id, source, create.base))
