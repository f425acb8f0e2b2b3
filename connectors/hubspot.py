"""The HubSpot CRM v3 connector (works against HubSpot and the sandbox alike)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO

import requests
from requests_toolbelt import MultipartEncoder

from connectors import hubspot_settings as hs
from connectors.base import (
    Capabilities,
    ChangePage,
    CountRule,
    FileInfo,
    Owner,
    PropertyMatch,
    PropertySpec,
    Record,
    WriteInput,
    WriteOutcome,
)
from connectors.errors import AuthError, ConnectorError, DailyLimitReached, RecordRejected
from connectors.http import HttpClient
from connectors.paging import after_pages, chunks, epoch_ms


def modified_ms(record: Record) -> int:
    """A record's hs_lastmodifieddate in epoch milliseconds."""
    return record.modified_ms


def _record(body: dict[str, Any]) -> Record:
    associations = {
        name: tuple(str(item["id"]) for item in group.get("results", []))
        for name, group in (body.get("associations") or {}).items()
    }
    properties = dict(body.get("properties") or {})
    merged = (properties.pop(hs.MERGED, None) or "").split(";")
    record_id = str(body["id"])
    return Record(
        id=record_id,
        properties=properties,
        created_at=body.get("createdAt", ""),
        # A record's modification time is its hs_lastmodifieddate (updatedAt where it is not asked for).
        updated_at=properties.get(hs.MODIFIED) or body.get("updatedAt", ""),
        archived=bool(body.get("archived", False)),
        archived_at=body.get("archivedAt"),
        associations=associations,
        merged_from=tuple(i for i in merged if i and i != record_id),
    )


def _with_merges(properties: Sequence[str]) -> list[str]:
    """The properties to ask for, plus the merge trail (so a merged record is recognised)."""
    return [*properties, hs.MERGED] if hs.MERGED not in properties else list(properties)


def _filter(name: str, operator: str, value: Any) -> dict[str, str]:
    return {"propertyName": name, "operator": operator, "value": str(value)}


_OPERATORS = {"eq": "EQ", "contains": "CONTAINS_TOKEN", "present": "HAS_PROPERTY"}


def _condition(match: PropertyMatch) -> dict[str, str]:
    """One alternative of a count rule as a search filter."""
    condition = {"propertyName": match.property, "operator": _OPERATORS[match.operator]}
    if match.operator != "present":
        condition["value"] = match.value
    return condition


def _scoped(filters: list[dict[str, str]], rule: CountRule | None) -> list[dict[str, Any]]:
    """Search filter groups: the filters ANDed with each alternative of the rule (OR-ed)."""
    if rule is None:
        return [{"filters": filters}]
    return [{"filters": [_condition(match), *filters]} for match in rule.alternatives]


def _rule_groups(
    rule: CountRule, low: int | None, high: int | None, after_id: int | None = None
) -> list[dict[str, Any]]:
    """A count rule as search filter groups (one per alternative, OR-ed), within an id range."""
    bounds = []
    if low is not None:
        bounds.append(_filter(hs.OBJECT_ID, "GTE", low))
    if high is not None:
        bounds.append(_filter(hs.OBJECT_ID, "LTE", high))
    if after_id is not None:
        bounds.append(_filter(hs.OBJECT_ID, "GT", after_id))
    return _scoped(bounds, rule)


class HubSpotConnector:
    """Talks to one HubSpot portal through its CRM v3/v4 and files v3 APIs."""

    kind = "hubspot"
    capabilities = Capabilities(
        change_detection="cursor",
        idempotent_create="upsert",
        max_batch=hs.BATCH_SIZE,
        files_on="notes",
        property_history=True,
    )

    def __init__(
        self,
        base_url: str,
        token: str,
        connection: str = "hubspot",
        lookback_ms: int = hs.DEFAULT_LOOKBACK_MS,
        **http_options: Any,
    ) -> None:
        self.http = HttpClient(base_url, token, connection, **http_options)
        self.notices: list[str] = []
        self.lookback_ms = lookback_ms

    # ---- reading ---------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        """API calls this connector made (what run reports count)."""
        return self.http.calls

    def guard_writes(self, guard: Callable[[], None] | None) -> None:
        """Call `guard` before every call that writes (a run's lease: see dealsync/ledger/lease.py)."""
        self.http.write_guard = guard

    def pull_changes(
        self, object_type: str, since_ms: int | None, properties: Sequence[str]
    ) -> Iterator[ChangePage]:
        """Records changed since `since_ms` minus the lookback (all records when None), page by page."""
        return self.pull_matching(object_type, since_ms, properties, None)

    def pull_matching(
        self,
        object_type: str,
        since_ms: int | None,
        properties: Sequence[str],
        rule: CountRule | None,
    ) -> Iterator[ChangePage]:
        """Records changed since `since_ms` minus the lookback that match the rule (every changed
        record when None), page by page.

        Pulls search on hs_lastmodifieddate. A query can reach at most 10,000 results, so
        when a window holds more, the pull continues with a keyset: first the rest of the timestamp
        where the cap cut (ordered by hs_object_id, as many records can share one timestamp), then
        the records strictly after it. Each page's cursor is the newest modification seen so far.
        """
        cursor = since_ms
        # A first (or full) pull searches from the beginning: pages of 200, where lists give 100.
        floor = 0 if since_ms is None else max(since_ms - self.lookback_ms, 0)
        strictly_after = False
        while True:
            cut_at: int | None = None
            seen_at_cut: set[str] = set()
            newest: int | None
            ids_at_newest: set[str]
            operator = "GT" if strictly_after else "GTE"
            body = {
                "filterGroups": _scoped([_filter(hs.MODIFIED, operator, floor)], rule),
                "sorts": [{"propertyName": hs.MODIFIED, "direction": "ASCENDING"}],
            }
            newest, ids_at_newest = None, set()
            for records, capped in self._search(object_type, body, properties):
                for record in records:
                    stamp = modified_ms(record)
                    if stamp != newest:
                        newest, ids_at_newest = stamp, set()
                    ids_at_newest.add(record.id)
                if records and newest is not None:
                    cursor = max(cursor or 0, newest)
                    yield ChangePage(tuple(records), cursor)
                if capped:
                    cut_at, seen_at_cut = newest, ids_at_newest
            if cut_at is None:
                return
            yield from self._drain_timestamp(
                object_type, cut_at, seen_at_cut, properties, cursor, rule
            )
            floor, strictly_after = cut_at, True

    def _drain_timestamp(
        self,
        object_type: str,
        stamp: int,
        already: set[str],
        properties: Sequence[str],
        cursor: int | None,
        rule: CountRule | None,
    ) -> Iterator[ChangePage]:
        """Every record modified exactly at `stamp` (matching the rule), by ascending id, across the
        result cap."""
        last_id = 0
        while True:
            body = {
                "filterGroups": _scoped(
                    [_filter(hs.MODIFIED, "EQ", stamp), _filter(hs.OBJECT_ID, "GT", last_id)], rule
                ),
                "sorts": [{"propertyName": hs.OBJECT_ID, "direction": "ASCENDING"}],
            }
            hit_cap = False
            for records, capped in self._search(object_type, body, properties):
                hit_cap = capped
                if records:
                    last_id = int(records[-1].id)
                    fresh = tuple(r for r in records if r.id not in already)
                    if fresh:
                        yield ChangePage(fresh, max(cursor or 0, stamp))
            if not hit_cap:
                return

    def _search(
        self, object_type: str, body: dict[str, Any], properties: Sequence[str]
    ) -> Iterator[tuple[list[Record], bool]]:
        """Pages of one search query; the flag is True on the page after which the cap stops paging."""
        path = hs.SEARCH.format(object_type=object_type)

        def fetch(after: str | None) -> dict[str, Any]:
            request = {**body, "properties": _with_merges(properties), "limit": hs.SEARCH_PAGE_SIZE}
            if after:
                request["after"] = after
            page: dict[str, Any] = self.http.request("POST", path, json=request, search=True).json()
            return page

        for page, capped in after_pages(fetch, cap=hs.SEARCH_RESULT_CAP):
            yield [_record(item) for item in page.get("results", [])], capped

    def count(
        self, object_type: str, rule: CountRule, low: int | None = None, high: int | None = None
    ) -> int:
        """How many live records match the rule: one search call, its `total` (search lags a few
        seconds behind writes, so a record written just now may not be counted yet)."""
        body = {"filterGroups": _rule_groups(rule, low, high), "properties": [], "limit": 1}
        path = hs.SEARCH.format(object_type=object_type)
        answer = self.http.request("POST", path, json=body, search=True).json()
        return int(answer.get("total") or 0)

    def matching_ids(
        self, object_type: str, rule: CountRule, low: int | None = None, high: int | None = None
    ) -> list[str]:
        """The ids of the live records matching the rule, 200 a call, by ascending id (a keyset on
        the id, so the 10,000-result cap never cuts the listing)."""
        path = hs.SEARCH.format(object_type=object_type)
        found: list[str] = []
        last: int | None = None
        while True:
            body = {
                "filterGroups": _rule_groups(rule, low, high, last),
                "sorts": [{"propertyName": hs.OBJECT_ID, "direction": "ASCENDING"}],
                "properties": [],
                "limit": hs.SEARCH_PAGE_SIZE,
            }
            page = self.http.request("POST", path, json=body, search=True).json()
            ids = [str(item["id"]) for item in page.get("results", [])]
            found += ids
            if not ids or len(ids) >= int(page.get("total") or 0):
                return found
            last = int(ids[-1])

    def _list(
        self, object_type: str, properties: Sequence[str], archived: bool
    ) -> Iterator[list[Record]]:
        params: dict[str, Any] = {"limit": hs.LIST_PAGE_SIZE, "archived": str(archived).lower()}
        if properties:
            params["properties"] = ",".join(_with_merges(properties))
        path = hs.OBJECTS.format(object_type=object_type)
        for page, _capped in after_pages(lambda after: self._get(path, params, after)):
            yield [_record(item) for item in page.get("results", [])]

    def _get(self, path: str, params: dict[str, Any], after: str | None) -> dict[str, Any]:
        """One page of a GET listing."""
        page: dict[str, Any] = self.http.request(
            "GET", path, params={**params, **({"after": after} if after else {})}
        ).json()
        return page

    def list_archived(self, object_type: str, properties: Sequence[str]) -> Iterator[list[Record]]:
        """Archived records, page by page (HubSpot has no server-side time filter for them)."""
        yield from self._list(object_type, properties, archived=True)

    def read(
        self,
        object_type: str,
        ids: Iterable[str],
        properties: Sequence[str],
        id_property: str | None = None,
        archived: bool = False,
    ) -> dict[str, Record]:
        """Records by the id or unique property value asked for, 100 per call; missing ones are left
        out. A merged id answers with the record it became (a different `id`, listing it in
        `merged_from`)."""
        found: dict[str, Record] = {}
        path = hs.BATCH.format(object_type=object_type, operation="read")
        for chunk in chunks(list(dict.fromkeys(ids)), hs.BATCH_SIZE):
            asked = [*properties, id_property] if id_property else list(properties)
            body: dict[str, Any] = {
                "inputs": [{"id": key} for key in chunk],
                "properties": asked if archived else _with_merges(asked),
            }
            if id_property:
                body["idProperty"] = id_property
            response = self.http.request(
                "POST", path, json=body, params={"archived": str(archived).lower()}, reads=True
            )
            wanted = set(chunk)
            for item in response.json().get("results", []):
                record = _record(item)
                key = record.properties.get(id_property) if id_property else record.id
                found[str(key)] = record
                if not id_property:
                    found.update({old: record for old in record.merged_from if old in wanted})
        return found

    def property_times(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """When each property last changed, from its history (batch read, 100 records a call)."""
        times: dict[str, dict[str, int]] = {}
        path = hs.BATCH.format(object_type=object_type, operation="read")
        for chunk in chunks(list(dict.fromkeys(ids)), hs.BATCH_SIZE):
            body = {
                "inputs": [{"id": i} for i in chunk],
                "properties": [],
                "propertiesWithHistory": list(properties),
            }
            page = self.http.request("POST", path, json=body, reads=True).json()
            for item in page.get("results", []):
                history = item.get("propertiesWithHistory") or {}
                times[str(item["id"])] = {
                    name: max(epoch_ms(entry["timestamp"]) for entry in entries)
                    for name, entries in history.items()
                    if entries
                }
        return times

    def associations(
        self, from_type: str, to_type: str, ids: Iterable[str]
    ) -> dict[str, tuple[str, ...]]:
        """Associated ids per record id, 1,000 records per call (v4 batch read)."""
        id_list = list(dict.fromkeys(ids))
        result: dict[str, tuple[str, ...]] = {i: () for i in id_list}
        path = hs.ASSOCIATIONS_BATCH_READ.format(from_type=from_type, to_type=to_type)
        for chunk in chunks(id_list, hs.ASSOCIATION_READ_BATCH):
            inputs = {"inputs": [{"id": i} for i in chunk]}
            response = self.http.request("POST", path, json=inputs, reads=True)
            for item in response.json().get("results", []):
                result[str(item["from"]["id"])] = tuple(
                    str(to["toObjectId"]) for to in item.get("to", [])
                )
        return result

    def associate(
        self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]], type_id: int
    ) -> None:
        """Associate records (idempotent), up to 2,000 pairs per call."""
        path = hs.ASSOCIATIONS_BATCH_CREATE.format(from_type=from_type, to_type=to_type)
        spec = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]
        for chunk in chunks(list(pairs), 2_000):
            inputs = [{"from": {"id": a}, "to": {"id": b}, "types": spec} for a, b in chunk]
            self.http.request("POST", path, json={"inputs": inputs})

    # ---- writing ---------------------------------------------------------------------------
    def create(self, object_type: str, inputs: Sequence[WriteInput]) -> list[WriteOutcome]:
        """Batch create; the trace id of each input is its `ref`. Results map back by position."""

        def body(chunk: Sequence[WriteInput]) -> dict[str, Any]:
            return {
                "inputs": [
                    {
                        "properties": dict(i.properties),
                        "objectWriteTraceId": i.ref,
                        "associations": [
                            {
                                "to": {"id": to_id},
                                "types": [
                                    {
                                        "associationCategory": "HUBSPOT_DEFINED",
                                        "associationTypeId": type_id,
                                    }
                                ],
                            }
                            for _to_type, to_id, type_id in i.associations
                        ],
                    }
                    for i in chunk
                ]
            }

        def match(chunk: Sequence[WriteInput], results: list[Record]) -> dict[str, Record]:
            # HubSpot returns created records in input order; failed inputs are skipped.
            return dict(zip([i.ref for i in chunk], results, strict=False))

        return self._write(object_type, "create", inputs, body, match, created=True)

    def upsert(
        self, object_type: str, id_property: str, inputs: Sequence[WriteInput]
    ) -> list[WriteOutcome]:
        """Create-or-update by a unique property; each input's `ref` is its key value."""

        def body(chunk: Sequence[WriteInput]) -> dict[str, Any]:
            return {
                "inputs": [
                    {"idProperty": id_property, "id": i.ref, "properties": dict(i.properties)}
                    for i in chunk
                ]
            }

        def match(_chunk: Sequence[WriteInput], results: list[Record]) -> dict[str, Record]:
            return {str(r.properties.get(id_property)): r for r in results}

        return self._write(object_type, "upsert", inputs, body, match)

    def update(self, object_type: str, inputs: Sequence[WriteInput]) -> list[WriteOutcome]:
        """Batch update by record id."""

        def body(chunk: Sequence[WriteInput]) -> dict[str, Any]:
            return {"inputs": [{"id": i.id, "properties": dict(i.properties)} for i in chunk]}

        def match(chunk: Sequence[WriteInput], results: list[Record]) -> dict[str, Record]:
            by_id = {r.id: r for r in results}
            return {i.ref: by_id[str(i.id)] for i in chunk if str(i.id) in by_id}

        return self._write(object_type, "update", inputs, body, match)

    def archive(self, object_type: str, ids: Sequence[str]) -> list[WriteOutcome]:
        """Batch archive; HubSpot answers 204 without per-record detail."""
        inputs = [WriteInput(ref=i, properties={}, id=i) for i in ids]

        def body(chunk: Sequence[WriteInput]) -> dict[str, Any]:
            return {"inputs": [{"id": i.id} for i in chunk]}

        def match(chunk: Sequence[WriteInput], _results: list[Record]) -> dict[str, Record]:
            return {}

        outcomes = self._write(object_type, "archive", inputs, body, match, expect_results=False)
        return outcomes

    def _write(
        self,
        object_type: str,
        operation: str,
        inputs: Sequence[WriteInput],
        body: Callable[[Sequence[WriteInput]], dict[str, Any]],
        match: Callable[[Sequence[WriteInput], list[Record]], dict[str, Record]],
        created: bool = False,
        expect_results: bool = True,
    ) -> list[WriteOutcome]:
        """Send inputs in batches of 100 and return one outcome per input, in input order."""
        path = hs.BATCH.format(object_type=object_type, operation=operation)
        outcomes: dict[str, WriteOutcome] = {}
        pending = [list(chunk) for chunk in chunks(list(inputs), hs.BATCH_SIZE)]
        while pending:
            chunk = pending.pop(0)
            try:
                response = self.http.request("POST", path, json=body(chunk))
            except RecordRejected as exc:
                # A 4xx rejects the whole batch: isolate the offending inputs by halving.
                pending[:0] = self._split_rejected(chunk, exc, outcomes)
                continue
            except ConnectorError as exc:
                for item in chunk:
                    outcomes[item.ref] = WriteOutcome(item.ref, error=exc)
                if isinstance(exc, AuthError | DailyLimitReached):
                    raise
                continue
            payload = response.json() if response.content else {}
            results = [_record(item) for item in payload.get("results", [])]
            failed = self._failed_refs(chunk, payload.get("errors", []))
            ok_chunk = [i for i in chunk if i.ref not in failed]
            matched = match(ok_chunk, results)
            new_flags = {str(r.get("id")): bool(r.get("new")) for r in payload.get("results", [])}
            for item in chunk:
                if item.ref in failed:
                    outcomes[item.ref] = WriteOutcome(item.ref, error=failed[item.ref])
                elif not expect_results:
                    outcomes[item.ref] = WriteOutcome(item.ref)
                elif item.ref in matched:
                    record = matched[item.ref]
                    outcomes[item.ref] = WriteOutcome(
                        item.ref, record, created=created or new_flags.get(record.id, False)
                    )
                else:
                    outcomes[item.ref] = WriteOutcome(
                        item.ref,
                        error=ConnectorError(
                            f"{operation} answered without a result for {item.ref}"
                        ),
                    )
        return [outcomes[i.ref] for i in inputs]

    @staticmethod
    def _split_rejected(
        chunk: list[WriteInput], exc: RecordRejected, outcomes: dict[str, WriteOutcome]
    ) -> list[list[WriteInput]]:
        if len(chunk) == 1:
            outcomes[chunk[0].ref] = WriteOutcome(chunk[0].ref, error=exc)
            return []
        middle = len(chunk) // 2
        return [chunk[:middle], chunk[middle:]]

    @staticmethod
    def _failed_refs(
        chunk: Sequence[WriteInput], errors: list[dict[str, Any]]
    ) -> dict[str, ConnectorError]:
        """Which inputs of a 207 failed: by objectWriteTraceId, record id or key value."""
        keys: dict[str, str] = {}
        for item in chunk:
            keys[item.ref] = item.ref
            if item.id:
                keys[str(item.id)] = item.ref
        failed: dict[str, ConnectorError] = {}
        for error in errors:
            context = error.get("context") or {}
            named = [*context.get("objectWriteTraceId", []), *context.get("ids", [])]
            error_obj = RecordRejected(
                str(error.get("message", "the CRM refused this record")),
                int(error["status"]) if str(error.get("status", "")).isdigit() else None,
                error.get("category"),
            )
            for name in named:
                if str(name) in keys:
                    failed[keys[str(name)]] = error_obj
        return failed

    # ---- owners, files, properties ---------------------------------------------------------
    def owners(self) -> list[Owner]:
        """Every active owner, 100 per call."""
        params: dict[str, Any] = {"limit": hs.OWNERS_PAGE_SIZE, "archived": "false"}
        return [
            Owner(
                id=str(o["id"]),
                email=str(o.get("email") or ""),
                first_name=o.get("firstName") or "",
                last_name=o.get("lastName") or "",
                archived=bool(o.get("archived", False)),
            )
            for page, _capped in after_pages(lambda after: self._get(hs.OWNERS, params, after))
            for o in page.get("results", [])
        ]

    def upload_file(self, name: str, content: bytes | BinaryIO, folder: str) -> FileInfo:
        """Upload a private file into `folder`, streaming it (a file object is never read whole)."""
        start = content.tell() if hasattr(content, "tell") else 0

        def body() -> tuple[MultipartEncoder, dict[str, str]]:
            source = content
            if hasattr(content, "seek"):
                content.seek(start)
            else:
                source = io.BytesIO(content)
            encoder = MultipartEncoder(
                fields={
                    "file": (name, source, "application/octet-stream"),
                    "fileName": name,
                    "folderPath": folder,
                    "options": json.dumps({"access": "PRIVATE"}),
                }
            )
            return encoder, {"Content-Type": encoder.content_type}

        response = self.http.request("POST", hs.FILES, body=body)
        body_json = response.json()
        return FileInfo(id=str(body_json["id"]), name=name, size=int(body_json.get("size") or 0))

    def file_info(self, file_id: str) -> FileInfo | None:
        """A file's metadata, or None when it does not exist."""
        try:
            body = self.http.request("GET", hs.FILE.format(file_id=file_id)).json()
        except RecordRejected as exc:
            if exc.status == 404:
                return None
            raise
        name = f"{body['name']}.{body['extension']}" if body.get("extension") else body["name"]
        return FileInfo(id=str(body["id"]), name=name, size=int(body.get("size") or 0))

    def download_file(self, file_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream a file's bytes through a signed URL (fetched without our token)."""
        signed = self.http.request("GET", hs.FILE_SIGNED_URL.format(file_id=file_id)).json()
        with requests.get(signed["url"], stream=True, timeout=self.http.timeout_s) as response:
            if response.status_code >= 400:
                raise RecordRejected(
                    f"download of file {file_id} answered {response.status_code}",
                    response.status_code,
                )
            yield from response.iter_content(chunk_size)

    def delete_file(self, file_id: str) -> None:
        """Delete a file; a file already gone is fine."""
        try:
            self.http.request("DELETE", hs.FILE.format(file_id=file_id))
        except RecordRejected as exc:
            if exc.status != 404:
                raise

    def portal_id(self) -> int:
        """The portal's number (Hub ID): what its webhook events carry as `portalId`."""
        return int(self.http.request("GET", hs.ACCOUNT_DETAILS).json()["portalId"])

    def _properties(self, object_type: str) -> dict[str, dict[str, Any]]:
        """The portal's properties of an object type, by name."""
        path = hs.PROPERTIES.format(object_type=object_type)
        return {p["name"]: p for p in self.http.request("GET", path).json().get("results", [])}

    def _mismatch(
        self, object_type: str, spec: PropertySpec, current: dict[str, Any]
    ) -> str | None:
        """Why an existing property cannot serve as the mapping's custom property, if it cannot."""
        if current.get("type") == spec.type and bool(current.get("hasUniqueValue")) == spec.unique:
            return None
        return (
            f"{self.http.connection}: property {object_type}.{spec.name} exists as type "
            f"{current.get('type')} (unique={current.get('hasUniqueValue')}) but the mapping needs "
            f"{spec.type} (unique={spec.unique}); rename one of them or fix it in the CRM."
        )

    def property_problems(
        self, object_type: str, specs: Sequence[PropertySpec], used: Sequence[str]
    ) -> list[str]:
        """Custom properties missing, of another type or lacking options; used ones missing."""
        existing = self._properties(object_type)
        problems = []
        for spec in specs:
            current = existing.get(spec.name)
            if current is None:
                problems.append(
                    f"{self.http.connection}: custom property {object_type}.{spec.name} "
                    f"({spec.type}{', unique' if spec.unique else ''}) is missing: run `dealsync init`."
                )
            elif mismatch := self._mismatch(object_type, spec, current):
                problems.append(mismatch)
            elif lacking := set(spec.options) - {
                o.get("value") for o in current.get("options", [])
            }:
                problems.append(
                    f"{self.http.connection}: property {object_type}.{spec.name} lacks the options "
                    f"{', '.join(sorted(lacking))}: add them in the CRM's property settings."
                )
        named = {spec.name for spec in specs}
        for name in dict.fromkeys(used):
            if name not in existing and name not in named:
                problems.append(
                    f"{self.http.connection}: the mapping uses {object_type}.{name}, which this portal "
                    "does not have: fix the property name in the mapping, or create it in the CRM."
                )
        return problems

    def ensure_properties(self, object_type: str, specs: Sequence[PropertySpec]) -> list[str]:
        """Create the missing custom properties; refuse when an existing one differs in a way that matters."""
        path = hs.PROPERTIES.format(object_type=object_type)
        existing = self._properties(object_type)
        created = []
        for spec in specs:
            current = existing.get(spec.name)
            if current is not None:
                if mismatch := self._mismatch(object_type, spec, current):
                    raise ConnectorError(mismatch)
                continue
            body = {
                "name": spec.name,
                "label": spec.label,
                "type": spec.type,
                "fieldType": spec.field_type,
                "groupName": spec.group,
                "hasUniqueValue": spec.unique,
                "options": [
                    {"label": o, "value": o, "displayOrder": n, "hidden": False}
                    for n, o in enumerate(spec.options)
                ],
            }
            self.http.request("POST", path, json=body)
            created.append(spec.name)
        return created
