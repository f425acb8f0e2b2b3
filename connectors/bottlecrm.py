"""The BottleCRM connector (django-crm 1.35): opportunities, comments, attachments, users.

BottleCRM has no change feed, no modification times and hard deletes, so this connector is
snapshot-style: `pull_changes` is always a complete scan (the engine compares it with the content
hashes of the last synced snapshot). Records are flattened into string properties so that mappings
address them like HubSpot properties: `name`, `stage`, `amount`, `currency`, `closed_on`, `description`,
`assigned_to` (owner emails, `;`-joined), `tags` (tag names, `;`-joined) and `cf_<key>` per custom field.

Comments are the object `notes`: `comment`, `is_internal` ("true"/"false"), `commented_by` (the author's
email) and `commented_on`. They are listed only inside a deal's detail, so they are found deal by deal
(`associations("deals", "notes", deal_ids)`) and then read from what that listing returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from connectors.base import (
    Capabilities,
    ChangePage,
    FileInfo,
    Owner,
    PropertySpec,
    Record,
    WriteInput,
    WriteOutcome,
)
from connectors.errors import (
    HTTP_ERRORS,
    AuthError,
    ConnectorError,
    DailyLimitReached,
    RecordRejected,
)
from connectors.http import HttpClient
from connectors.paging import offset_pages
from connectors.ratelimit import PortalLimiters

OPPORTUNITIES = "/api/opportunities/"
OPPORTUNITY = "/api/opportunities/{id}/"
COMMENT = "/api/opportunities/comment/{id}/"
ATTACHMENT = "/api/opportunities/attachment/{id}/"
DOWNLOAD = "/api/attachments/{id}/download/"
USERS = "/api/users/"
TAGS = "/api/tags/"
CUSTOM_FIELDS = "/api/custom-fields/"
PAGE = 100
NOTES = "notes"
NOTE_FIELDS = ("comment", "is_internal")  # what can be written on a comment
DIRECT_FIELDS = ("name", "stage", "amount", "currency", "closed_on", "description")


TAG_GROUP = "tags_"  # tags_product <-> the deal's tags named "Product: <value>", as a multi-select


def group_prefix(prop: str) -> str:
    """The tag-name prefix of a tag-group property: tags_product -> "Product: "."""
    return prop[len(TAG_GROUP) :].replace("_", " ").capitalize() + ": "


def _flatten(
    deal: Mapping[str, Any], custom_keys: Iterable[str] = (), groups: Iterable[str] = ()
) -> Record:
    properties: dict[str, str | None] = {}
    for name in DIRECT_FIELDS:
        value = deal.get(name)
        properties[name] = None if value in (None, "") else str(value)
    emails = sorted(
        (p.get("user_details") or {}).get("email", "") for p in deal.get("assigned_to") or []
    )
    properties["assigned_to"] = ";".join(e for e in emails if e) or None
    tag_names = sorted(t["name"] for t in deal.get("tags") or [])
    properties["tags"] = ";".join(tag_names) or None
    for group in groups:
        prefix = group_prefix(group)
        properties[group] = (
            ";".join(sorted(n[len(prefix) :] for n in tag_names if n.startswith(prefix))) or None
        )
    values = deal.get("custom_fields") or {}
    # Every defined custom field is a property, set or not; one the org lacks is simply absent.
    for key in {*custom_keys, *values}:
        value = values.get(key)
        properties[f"cf_{key}"] = None if value in (None, "") else str(value)
    created = deal.get("created_at") or ""
    return Record(id=str(deal["id"]), properties=properties, created_at=created, updated_at=created)


def _comment_record(deal_id: str, comment: Mapping[str, Any]) -> Record:
    author = ((comment.get("commented_by") or {}).get("user_details") or {}).get("email")
    stamp = comment.get("commented_on") or ""
    return Record(
        id=str(comment["id"]),
        properties={
            "comment": comment.get("comment") or "",
            "is_internal": "true" if comment.get("is_internal") else "false",
            "commented_by": author,
            "commented_on": stamp or None,
        },
        created_at=stamp,
        updated_at=stamp,
        associations={"deals": (deal_id,)},
    )


def _attachment_infos(detail: Mapping[str, Any]) -> tuple[FileInfo, ...]:
    return tuple(
        FileInfo(str(a["id"]), a.get("file_name") or "", 0) for a in detail.get("attachments", [])
    )


class BottleCrmConnector:
    """Talks to one BottleCRM org through its REST API with an ADMIN personal access token."""

    kind = "bottlecrm"
    capabilities = Capabilities(
        change_detection="snapshot",
        idempotent_create="lookup",
        max_batch=1,
        files_on="deals",
        note_authors=False,
    )

    def __init__(
        self, base_url: str, token: str, connection: str = "bottlecrm", **http_options: Any
    ) -> None:
        # A self-hosted server announces no limits; 20 requests a second keeps it responsive.
        http_options.setdefault("limiters", PortalLimiters(per_10s=220))
        self.http = HttpClient(base_url, token, connection, error_table=HTTP_ERRORS, **http_options)
        self.notices: list[str] = []
        self._tags: dict[str, str] | None = None
        self._profiles: dict[str, str] | None = None
        self._custom_keys: set[str] | None = None
        self._groups: set[str] = set()  # tag-group properties callers asked for
        self._comments: dict[str, Record] = {}  # comments seen in deal details, by id
        self._attachments: dict[str, tuple[FileInfo, ...]] = {}  # deal id -> its attachments

    @property
    def calls(self) -> int:
        """API calls this connector made (what run reports count)."""
        return self.http.calls

    def guard_writes(self, guard: Callable[[], None] | None) -> None:
        """Call `guard` before every call that writes (a run's lease: see dealsync/ledger/lease.py)."""
        self.http.write_guard = guard

    def _custom_field_keys(self) -> set[str]:
        """Keys of the org's opportunity custom fields (read once per connector)."""
        if self._custom_keys is None:
            body = self.http.request(
                "GET", CUSTOM_FIELDS, params={"target_model": "Opportunity"}
            ).json()
            self._custom_keys = {
                f["key"]
                for f in body.get("definitions", [])
                if f.get("target_model") == "Opportunity" and f.get("is_active", True)
            }
        return self._custom_keys

    # ---- reading ---------------------------------------------------------------------------
    def _scan(self) -> Iterator[list[Record]]:
        def fetch(offset: int) -> dict[str, Any]:
            page: dict[str, Any] = self.http.request(
                "GET", OPPORTUNITIES, params={"limit": PAGE, "offset": offset}
            ).json()
            return page

        for deals in offset_pages(
            fetch,
            lambda page: page.get("opportunities") or [],
            lambda page: int(page.get("opportunities_count") or 0),
        ):
            yield [_flatten(d, self._custom_field_keys(), self._groups) for d in deals]

    def pull_changes(
        self, object_type: str, since_ms: int | None, properties: Sequence[str]
    ) -> Iterator[ChangePage]:
        """A complete scan of the opportunities the token can see (there is no change feed)."""
        self._groups.update(p for p in properties if p.startswith(TAG_GROUP))
        self._only_deals(object_type)
        for records in self._scan():
            yield ChangePage(tuple(records), None)

    def list_archived(self, object_type: str, properties: Sequence[str]) -> Iterator[list[Record]]:
        """Nothing: BottleCRM deletes for good; a record missing from a complete scan is deleted."""
        self._only_deals(object_type)
        return iter(())

    def detail(self, deal_id: str) -> dict[str, Any] | None:
        """An opportunity with its comments and attachments, or None when it does not exist."""
        try:
            detail: dict[str, Any] = self.http.request("GET", OPPORTUNITY.format(id=deal_id)).json()
            return detail
        except RecordRejected as exc:
            if exc.status == 404:
                return None
            raise

    def read(
        self,
        object_type: str,
        ids: Iterable[str],
        properties: Sequence[str],
        id_property: str | None = None,
        archived: bool = False,
    ) -> dict[str, Record]:
        """Records by id, or by a custom-field key (`cf_<key>`) found with a scan; never archived ones.

        A comment can only be read through its deal (`deal_notes`): here, the comments of the deals
        read so far.
        """
        if object_type == NOTES:
            return {} if archived else {i: self._comments[i] for i in ids if i in self._comments}
        self._groups.update(p for p in properties if p.startswith(TAG_GROUP))
        self._only_deals(object_type)
        wanted = list(dict.fromkeys(ids))
        if archived or not wanted:
            return {}
        if id_property:
            found = {}
            for records in self._scan():
                for record in records:
                    value = record.properties.get(id_property)
                    if value in wanted:
                        found[str(value)] = record
            return found
        found = {}
        for deal_id in wanted:
            body = self.detail(deal_id)
            if body is not None:
                found[deal_id] = _flatten(
                    body["opportunity_obj"], self._custom_field_keys(), self._groups
                )
        return found

    # ---- writing ---------------------------------------------------------------------------
    def _payload(
        self, properties: Mapping[str, str | None], current_tags: list[str] | None = None
    ) -> dict[str, Any]:
        """Flattened properties as BottleCRM's JSON: custom fields, tag ids (groups merged), profile ids."""
        payload: dict[str, Any] = {}
        custom: dict[str, str] = {}
        tags = list(current_tags or [])
        touches_tags = False
        for name, value in properties.items():
            if name in DIRECT_FIELDS:
                payload[name] = value if value not in ("",) else None
            elif name.startswith("cf_"):
                custom[name[3:]] = value or ""
            elif name == "tags":
                tags, touches_tags = (
                    [t.strip() for t in (value or "").split(";") if t.strip()],
                    True,
                )
            elif name == "assigned_to":
                owners = [o.strip() for o in (value or "").split(";") if o.strip()]
                payload["assigned_to"] = [self._profile_id(o) if "@" in o else o for o in owners]
            elif not name.startswith(TAG_GROUP):
                raise RecordRejected(f"BottleCRM has no property {name!r} on opportunities", 400)
        for name, value in properties.items():
            if name.startswith(TAG_GROUP):
                prefix = group_prefix(name)
                wanted = [prefix + v.strip() for v in (value or "").split(";") if v.strip()]
                tags, touches_tags = [t for t in tags if not t.startswith(prefix)] + wanted, True
        if touches_tags:
            payload["tags"] = [self._tag_id(t) for t in dict.fromkeys(tags)]
        if custom:
            payload["custom_fields"] = custom
        return payload

    def _tag_id(self, name: str) -> str:
        tags = self._load_tags() if self._tags is None else self._tags
        name = name.strip()
        if name not in tags:
            created = self.http.request("POST", TAGS, json={"name": name}).json()
            tags[name] = str(created["tag"]["id"])
        return tags[name]

    def _profile_id(self, email: str) -> str:
        if self._profiles is None:
            self._profiles = {o.email.lower(): o.id for o in self.owners()}
        profile = self._profiles.get(email.strip().lower())
        if profile is None:
            raise RecordRejected(f"no active BottleCRM user has the email {email!r}", 400)
        return profile

    def _write_one(self, item: WriteInput, create: bool) -> WriteOutcome:
        self._groups.update(p for p in item.properties if p.startswith(TAG_GROUP))
        try:
            if create:
                body = self.http.request(
                    "POST", OPPORTUNITIES, json=self._payload(item.properties)
                ).json()
                if body.get("error"):
                    raise RecordRejected(
                        f"BottleCRM refused the opportunity: {body.get('errors')}", 400
                    )
                deal_id = str(body["id"])
            else:
                deal_id = str(item.id)
                current = None
                if "tags" not in item.properties and any(
                    p.startswith(TAG_GROUP) for p in item.properties
                ):
                    # A tag group replaces only its own tags: start from the deal's current ones.
                    before = self.detail(deal_id)
                    if before is None:
                        raise RecordRejected(f"opportunity {deal_id} was not found", 404)
                    current = [t["name"] for t in before["opportunity_obj"].get("tags") or []]
                self.http.request(
                    "PATCH",
                    OPPORTUNITY.format(id=deal_id),
                    json=self._payload(item.properties, current),
                )
            detail = self.detail(deal_id)
            if detail is None:
                raise RecordRejected(f"opportunity {deal_id} was not found", 404)
            return WriteOutcome(
                item.ref,
                _flatten(detail["opportunity_obj"], self._custom_field_keys(), self._groups),
                created=create,
            )
        except ConnectorError as exc:
            if isinstance(exc, AuthError | DailyLimitReached):
                raise
            return WriteOutcome(item.ref, error=exc)

    def create(self, object_type: str, inputs: Sequence[WriteInput]) -> list[WriteOutcome]:
        """Create opportunities, or comments on the deal each input is associated with, one by one."""
        if object_type == NOTES:
            return [self._write_comment(item) for item in inputs]
        self._only_deals(object_type)
        return [self._write_one(item, create=True) for item in inputs]

    def upsert(
        self, object_type: str, id_property: str, inputs: Sequence[WriteInput]
    ) -> list[WriteOutcome]:
        """Create-or-update keyed by a custom field: looked up before any create, so a crash cannot duplicate."""
        self._only_deals(object_type)
        existing = self.read(object_type, [i.ref for i in inputs], [], id_property=id_property)
        outcomes = []
        for item in inputs:
            properties = {**item.properties, id_property: item.ref}
            if item.ref in existing:
                outcomes.append(
                    self._write_one(
                        WriteInput(item.ref, properties, id=existing[item.ref].id), create=False
                    )
                )
            else:
                outcomes.append(self._write_one(WriteInput(item.ref, properties), create=True))
        return outcomes

    def update(self, object_type: str, inputs: Sequence[WriteInput]) -> list[WriteOutcome]:
        """PATCH each opportunity or comment (PUT would wipe tags and owners)."""
        if object_type == NOTES:
            return [self._write_comment(item) for item in inputs]
        self._only_deals(object_type)
        return [self._write_one(item, create=False) for item in inputs]

    def archive(self, object_type: str, ids: Sequence[str]) -> list[WriteOutcome]:
        """Delete opportunities or comments (for good); one already gone counts as deleted."""
        path = COMMENT if object_type == NOTES else OPPORTUNITY
        if object_type != NOTES:
            self._only_deals(object_type)
        outcomes = []
        for record_id in ids:
            try:
                self.http.request("DELETE", path.format(id=record_id))
                self._comments.pop(record_id, None)
                outcomes.append(WriteOutcome(record_id))
            except RecordRejected as exc:
                outcomes.append(
                    WriteOutcome(record_id)
                    if exc.status == 404
                    else WriteOutcome(record_id, error=exc)
                )
        return outcomes

    # ---- comments as notes ----------------------------------------------------------------
    def deal_notes(self, deal_ids: Iterable[str]) -> dict[str, list[Record]]:
        """The comments of each deal (one detail read per deal: BottleCRM lists them nowhere else)."""
        found: dict[str, list[Record]] = {}
        for deal_id in dict.fromkeys(deal_ids):
            body = self.detail(deal_id)
            if body is None:
                continue
            records = [_comment_record(deal_id, c) for c in body.get("comments", [])]
            for gone in [
                i for i, r in self._comments.items() if r.associations["deals"] == (deal_id,)
            ]:
                del self._comments[gone]  # deleted since the last read of this deal
            self._comments.update({r.id: r for r in records})
            self._attachments[deal_id] = _attachment_infos(body)
            found[deal_id] = records
        return found

    def associations(
        self, from_type: str, to_type: str, ids: Iterable[str]
    ) -> dict[str, tuple[str, ...]]:
        """Comment ids per deal (one detail read per deal), or the deal of each comment read so far."""
        if (from_type, to_type) == (NOTES, "deals"):
            return {i: self._comments[i].associations["deals"] for i in ids if i in self._comments}
        if (from_type, to_type) != ("deals", NOTES):
            raise ConnectorError(f"BottleCRM has no associations from {from_type} to {to_type}")
        return {deal: tuple(r.id for r in notes) for deal, notes in self.deal_notes(ids).items()}

    def associate(
        self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]], type_id: int
    ) -> None:
        """Nothing to do: a comment is created on its deal and never moves."""
        for note_id, deal_id in pairs:
            known = self._comments.get(note_id)
            if known is None or known.associations["deals"] != (deal_id,):
                raise ConnectorError(f"BottleCRM comment {note_id} is not on deal {deal_id}")

    def _write_comment(self, item: WriteInput) -> WriteOutcome:
        """Create (on the input's associated deal) or PATCH one comment, then read it back."""
        unknown = sorted(set(item.properties) - set(NOTE_FIELDS))
        try:
            if unknown:
                raise RecordRejected(f"BottleCRM comments have no {', '.join(unknown)}", 400)
            text = item.properties.get("comment")
            internal = (item.properties.get("is_internal") or "").lower() == "true"
            if item.id is None:
                deal_id = next(
                    (to_id for kind, to_id, _ in item.associations if kind == "deals"), None
                )
                if deal_id is None or not (text or "").strip():
                    raise RecordRejected("a comment needs a deal and some text", 400)
                comment_id = self.add_comment(deal_id, text or "", internal)
            else:
                comment_id = str(item.id)
                known = self._comments.get(comment_id)
                if known is None:
                    raise RecordRejected(f"comment {comment_id} was not found", 404)
                deal_id = known.associations["deals"][0]
                change: dict[str, Any] = {}
                if text is not None:
                    change["comment"] = text
                if "is_internal" in item.properties:
                    change["is_internal"] = internal
                self.http.request("PATCH", COMMENT.format(id=comment_id), json=change)
            self.associations("deals", NOTES, [deal_id])
            record = self._comments.get(comment_id)
            if record is None:
                raise RecordRejected(f"comment {comment_id} was not found", 404)
            return WriteOutcome(item.ref, record, created=item.id is None)
        except ConnectorError as exc:
            if isinstance(exc, AuthError | DailyLimitReached):
                raise
            return WriteOutcome(item.ref, error=exc)

    # ---- comments and attachments ----------------------------------------------------------
    def comments(self, deal_id: str) -> list[dict[str, Any]]:
        """A deal's comments: id, comment, commented_on, author email, is_internal."""
        ids = self.associations("deals", NOTES, [deal_id]).get(deal_id, ())
        return [
            {
                "id": note.id,
                "comment": note.properties["comment"],
                "commented_on": note.properties["commented_on"],
                "email": note.properties["commented_by"],
                "is_internal": note.properties["is_internal"] == "true",
            }
            for note in (self._comments[i] for i in ids)
        ]

    def add_comment(self, deal_id: str, text: str, internal: bool = False) -> str:
        """Post a comment and return its id (the API ignores is_internal on create: it is PATCHed after)."""
        before = {c["id"] for c in self.comments(deal_id)}
        body = self.http.request(
            "POST", OPPORTUNITY.format(id=deal_id), data={"comment": text}
        ).json()
        new = [str(c["id"]) for c in body.get("comments", []) if str(c["id"]) not in before]
        if len(new) != 1:
            raise ConnectorError(
                f"could not tell which comment was created on opportunity {deal_id}"
            )
        if internal:
            self.http.request("PATCH", COMMENT.format(id=new[0]), json={"is_internal": True})
        return new[0]

    def edit_comment(self, comment_id: str, text: str) -> None:
        """Change a comment's text."""
        self.http.request("PATCH", COMMENT.format(id=comment_id), json={"comment": text})

    def delete_comment(self, comment_id: str) -> None:
        """Delete a comment; one already gone is fine."""
        try:
            self.http.request("DELETE", COMMENT.format(id=comment_id))
        except RecordRejected as exc:
            if exc.status != 404:
                raise

    def attachments(self, deal_id: str) -> list[FileInfo]:
        """A deal's attachments (sizes are not listed by BottleCRM: 0)."""
        return list(_attachment_infos(self.detail(deal_id) or {}))

    def deal_attachments(self, deal_ids: Iterable[str]) -> dict[str, tuple[FileInfo, ...]]:
        """Attachments per deal, from this connector's earlier detail reads where there were any;
        a deal that does not exist is absent."""
        wanted = list(dict.fromkeys(deal_ids))
        missing = [d for d in wanted if d not in self._attachments]
        if missing:
            self.associations("deals", NOTES, missing)
        return {d: self._attachments[d] for d in wanted if d in self._attachments}

    def attach(self, deal_id: str, name: str, content: bytes | BinaryIO) -> FileInfo:
        """Upload a file onto a deal."""
        before = {a.id for a in self.attachments(deal_id)}
        body = self.http.request(
            "POST",
            OPPORTUNITY.format(id=deal_id),
            files={"opportunity_attachment": (name, content)},
        ).json()
        self._attachments.pop(deal_id, None)
        new = [a for a in body.get("attachments", []) if str(a["id"]) not in before]
        if len(new) != 1:
            raise ConnectorError(
                f"could not tell which attachment was created on opportunity {deal_id}"
            )
        return FileInfo(str(new[0]["id"]), name, 0)

    def download_file(self, file_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """An attachment's bytes, streamed."""
        response = self.http.request("GET", DOWNLOAD.format(id=file_id), stream=True)
        with response:
            yield from response.iter_content(chunk_size)

    def delete_file(self, file_id: str) -> None:
        """Delete an attachment; one already gone is fine."""
        for deal_id, infos in self._attachments.items():
            self._attachments[deal_id] = tuple(i for i in infos if i.id != file_id)
        try:
            self.http.request("DELETE", ATTACHMENT.format(id=file_id))
        except RecordRejected as exc:
            if exc.status != 404:
                raise

    # ---- owners and properties -------------------------------------------------------------
    def property_times(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """BottleCRM keeps no property history (the engine stamps scans instead): nothing to tell."""
        return {}

    def owners(self) -> list[Owner]:
        """Active users (their profile id is what `assigned_to` takes)."""
        body = self.http.request("GET", USERS).json()
        users = (body.get("active_users") or {}).get("active_users") or []
        return [
            Owner(id=str(u["id"]), email=(u.get("user_details") or {}).get("email") or "")
            for u in users
        ]

    def property_problems(
        self, object_type: str, specs: Sequence[PropertySpec], used: Sequence[str]
    ) -> list[str]:
        """Custom fields and tags the mapping needs that are missing (the model's own fields are
        fixed, so only those a mapping adds can be missing)."""
        self._only_deals(object_type)
        self._custom_keys = None
        keys = self._custom_field_keys()
        missing = [
            spec.name
            for spec in specs
            if (
                not self._tag_id_exists(spec.name[4:])
                if spec.name.startswith("tag:")
                else spec.name.removeprefix("cf_") not in keys
            )
        ]
        return [
            f"{self.http.connection}: custom field or tag {name} is missing: run `dealsync init`."
            for name in missing
        ]

    def ensure_properties(self, object_type: str, specs: Sequence[PropertySpec]) -> list[str]:
        """Create missing textarea custom fields (`cf_<key>`) and tags (`tag:<name>`) (idempotent)."""
        self._only_deals(object_type)
        self._custom_keys = None  # read them fresh: init may follow a change made in the CRM
        keys = self._custom_field_keys()
        created = []
        for spec in specs:
            if spec.name.startswith("tag:"):
                if self._tag_id_exists(spec.name[4:]):
                    continue
                self._tag_id(spec.name[4:])
                created.append(spec.name)
                continue
            key = spec.name.removeprefix("cf_")
            if key in keys:
                continue
            body = {
                "target_model": "Opportunity",
                "key": key,
                "label": spec.label,
                "field_type": "textarea",
                "is_filterable": True,
            }
            self.http.request("POST", CUSTOM_FIELDS, json=body)
            created.append(spec.name)
            self._custom_keys = None
        return created

    def _tag_id_exists(self, name: str) -> bool:
        self._load_tags()
        return name in (self._tags or {})

    def _load_tags(self) -> dict[str, str]:
        page = self.http.request("GET", TAGS, params={"limit": 1000}).json()
        self._tags = {t["name"]: str(t["id"]) for t in page.get("tags", [])}
        return self._tags

    @staticmethod
    def _only_deals(object_type: str) -> None:
        if object_type != "deals":
            raise ConnectorError(
                f"BottleCRM has no {object_type!r}: comments and attachments live on deals"
            )

    def close(self) -> None:
        """Release pooled connections."""
        self.http.close()


__all__ = ["BottleCrmConnector"]
