"""The Salesforce connector: deals are Opportunities, notes ContentNotes, files ContentVersions on
the opportunity (see salesforce_content.py); changes read by SOQL over SystemModstamp, writes in
sObject Collections, deletions taken from Salesforce's delete log (`deleted/`).

Field values travel as strings, like every connector's: checkboxes as "true"/"false", numbers without
a trailing ".0", multi-select picklists `;`-joined (as Salesforce keeps them), empty as None. Writes
turn them back into the JSON types `describe` names. Salesforce keeps times to the second, so the
cursor does too (`capabilities.cursor_step_ms`).
"""

from __future__ import annotations

import datetime
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, BinaryIO
from urllib.parse import quote

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
from connectors.errors import ConnectorError, RecordRejected
from connectors.paging import chunks, epoch_ms
from connectors.salesforce_content import (
    NOTE_FIELDS,
    NOTE_PROPERTIES,
    OPPORTUNITY_PREFIX,
    SalesforceContent,
    iso_time,
    soql_ids,
)
from connectors.salesforce_fields import SalesforceFields, no_note_field
from connectors.salesforce_http import SalesforceHttp

log = logging.getLogger("dealsync.salesforce")

SOBJECTS = {"deals": "Opportunity", "notes": "ContentNote"}
NOTES = "notes"
# Where a type's deletions are logged: a note is deleted with its document.
DELETE_LOGS = {"Opportunity": "Opportunity", "ContentNote": "ContentDocument"}
COLLECTION_SIZE = 200  # records in one sObject Collections call
IN_CHUNK = 200  # values in one SOQL IN (...): far below SOQL's 100,000-character limit
QUERY_PAGE = 2000
DEFAULT_LOOKBACK_MS = 5 * 60 * 1000
DELETED_FEED_DAYS = 15  # how far back `deleted/` answers
GONE_CODES = ("ENTITY_IS_DELETED", "NOT_FOUND", "INVALID_CROSS_REFERENCE_KEY")
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_NUMBER_TYPES = ("double", "currency", "percent", "int", "long")


def soql_string(value: str) -> str:
    """A SOQL string literal (quotes and backslashes escaped: a value a user typed stays a value)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"'{escaped}'"


def soql_moment(instant_ms: int) -> str:
    """A SOQL datetime literal at or after an instant, to the second (Salesforce's precision)."""
    seconds = math.ceil(instant_ms / 1000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def as_text(value: Any) -> str | None:
    """A field's JSON value as the string every connector speaks."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _typed(kind: str | None, value: str | None) -> Any:
    """A string value as the JSON type a field of `describe` type `kind` takes."""
    if value is None or value == "":
        return False if kind == "boolean" else None
    if kind == "boolean":
        return value.strip().lower() in ("true", "1", "yes")
    if kind in _NUMBER_TYPES:
        try:
            number = float(value)
        except ValueError:
            return value  # Salesforce refuses it, and says which field: the record's own error
        return int(number) if number.is_integer() and kind in ("int", "long") else number
    return value


class SalesforceConnector:
    """Talks to one Salesforce org through its REST API (v59.0)."""

    kind = "salesforce"
    capabilities = Capabilities(
        change_detection="cursor",
        idempotent_create="upsert",
        max_batch=COLLECTION_SIZE,
        files_on="deals",
        note_authors=False,  # a note's author is the connection's user: others are named in it
        cursor_step_ms=1000,
        merges=False,  # Salesforce merges leads, contacts and accounts, never these
    )

    def __init__(self, http: SalesforceHttp, lookback_ms: int = DEFAULT_LOOKBACK_MS) -> None:
        self.http = http
        self.lookback_ms = lookback_ms
        self.notices: list[str] = []
        self._described: dict[str, dict[str, dict[str, Any]]] = {}
        self.content = SalesforceContent(http, self._query)
        self.fields = SalesforceFields(http, self._query)
        self._logs: dict[tuple[str, datetime.datetime, datetime.datetime], dict[str, Any]] = {}

    # ---- reading ---------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        """API calls this connector made (what run reports count)."""
        return self.http.calls

    def guard_writes(self, guard: Callable[[], None] | None) -> None:
        """Call `guard` before every call that writes (a run's lease)."""
        self.http.write_guard = guard

    def _sobject(self, object_type: str) -> str:
        try:
            return SOBJECTS[object_type]
        except KeyError:
            raise ConnectorError(
                f"{self.http.connection}: Salesforce connections sync deals (Opportunity) and notes "
                f"(ContentNote), not {object_type}."
            ) from None

    def _fields(self, properties: Iterable[str], *more: str) -> list[str]:
        """The fields to select: the system ones the connector needs, then those asked for."""
        wanted: dict[str, str] = {}
        for name in ("Id", "CreatedDate", "SystemModstamp", *more, *properties):
            wanted.setdefault(name.lower(), name)
        return list(wanted.values())

    def _records(
        self, sobject: str, rows: Sequence[Mapping[str, Any]], properties: Sequence[str]
    ) -> list[Record]:
        if sobject == "ContentNote":
            return self.content.note_records(rows)
        return [self._record(row, properties) for row in rows]

    def _select(self, sobject: str, properties: Sequence[str], *more: str) -> str:
        """The SELECT of a type: a note's fields are the connector's own (see salesforce_content)."""
        if sobject == "ContentNote":
            return f"SELECT {', '.join([*NOTE_FIELDS, 'Content', *more])} FROM ContentNote"
        return f"SELECT {', '.join(self._fields(properties, *more))} FROM {sobject}"

    def _record(self, row: Mapping[str, Any], properties: Sequence[str]) -> Record:
        by_lower = {k.lower(): v for k, v in row.items() if k != "attributes"}
        return Record(
            id=str(row["Id"]),
            properties={name: as_text(by_lower.get(name.lower())) for name in properties},
            created_at=iso_time(row.get("CreatedDate")),
            updated_at=iso_time(row.get("SystemModstamp")),
            archived=bool(by_lower.get("isdeleted")),
            archived_at=iso_time(row.get("SystemModstamp")) if by_lower.get("isdeleted") else None,
        )

    def _query(self, soql: str, every: bool = False) -> Iterator[list[dict[str, Any]]]:
        """A query's rows, page by page (`queryAll` with `every`: deleted rows too)."""
        headers = {"Sforce-Query-Options": f"batchSize={QUERY_PAGE}"}
        answer = self.http.request(
            "GET", "/queryAll/" if every else "/query/", params={"q": soql}, headers=headers
        ).json()
        while True:
            yield list(answer.get("records") or [])
            following = answer.get("nextRecordsUrl")
            if answer.get("done", True) or not following:
                return
            answer = self.http.request(
                "GET", f"{self.http.instance_url}{following}", headers=headers
            ).json()

    def pull_changes(
        self, object_type: str, since_ms: int | None, properties: Sequence[str]
    ) -> Iterator[ChangePage]:
        """Records whose SystemModstamp is at or after `since_ms` minus the lookback (all records
        when None), oldest first, pages of up to 2,000; each page's cursor is its newest stamp."""
        sobject = self._sobject(object_type)
        soql = self._select(sobject, properties)
        if since_ms is not None:
            soql += f" WHERE SystemModstamp >= {soql_moment(max(since_ms - self.lookback_ms, 0))}"
        soql += " ORDER BY SystemModstamp ASC, Id ASC"
        cursor = since_ms
        for rows in self._query(soql):
            records = tuple(self._records(sobject, rows, properties))
            if records:
                cursor = max(cursor or 0, max(r.modified_ms for r in records))
                yield ChangePage(records, cursor)

    def deleted_since(self, object_type: str, since_ms: int) -> set[str] | None:
        """The ids deleted since `since_ms` minus the lookback, from Salesforce's delete log; None
        when the log does not reach back that far (emptied recycle bin, or over 15 days)."""
        return self._deleted(DELETE_LOGS[self._sobject(object_type)], since_ms)

    def _deleted(self, sobject: str, since_ms: int, reuse: bool = False) -> set[str] | None:
        """The delete log of one sObject type since then (less the lookback), or None; `reuse`
        takes the answer read for the same window a moment ago (a run's notes, for its files)."""
        now = datetime.datetime.now(datetime.UTC)
        start = datetime.datetime.fromtimestamp(
            max(since_ms - self.lookback_ms, 0) / 1000, datetime.UTC
        ).replace(second=0, microsecond=0)
        if start < now - datetime.timedelta(days=DELETED_FEED_DAYS) + datetime.timedelta(hours=1):
            self._notice(
                f"{self.http.connection}: Salesforce's delete log reaches back {DELETED_FEED_DAYS} "
                f"days and the last run is older ({start:%Y-%m-%d %H:%M} UTC): every linked "
                f"{sobject} was checked instead"
            )
            return None
        end = now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
        asked = (sobject, start, end)
        if not reuse or asked not in self._logs:
            self._logs[asked] = self.http.request(
                "GET",
                f"/sobjects/{sobject}/deleted/",
                params={"start": start.isoformat(), "end": end.isoformat()},
            ).json()
        answer = self._logs.pop(asked) if reuse else self._logs[asked]
        earliest = answer.get("earliestDateAvailable")
        if earliest and epoch_ms(earliest) > start.timestamp() * 1000:
            self._notice(
                f"{self.http.connection}: Salesforce's delete log starts at {earliest}, after this "
                f"run's window ({start:%Y-%m-%d %H:%M} UTC; the recycle bin was emptied?): every "
                f"linked {sobject} was checked instead"
            )
            return None
        return {str(item["id"]) for item in answer.get("deletedRecords") or []}

    def _notice(self, text: str) -> None:
        """Tell the run report (once) and the log."""
        if text not in self.notices:
            self.notices.append(text)
            log.warning("%s", text)

    def list_archived(self, object_type: str, properties: Sequence[str]) -> Iterator[list[Record]]:
        """Records in the recycle bin (deleted within the last 15 days), page by page."""
        sobject = self._sobject(object_type)
        soql = self._select(sobject, properties, "IsDeleted")
        soql += " WHERE IsDeleted = true ORDER BY SystemModstamp ASC, Id ASC"
        for rows in self._query(soql, every=True):
            records = self._records(sobject, rows, properties)
            yield [replace(r, archived=True, archived_at=r.updated_at) for r in records]

    def read(
        self,
        object_type: str,
        ids: Iterable[str],
        properties: Sequence[str],
        id_property: str | None = None,
        archived: bool = False,
    ) -> dict[str, Record]:
        """Records by id (or by the value of a unique field), 200 a query; missing ones are left
        out, as are values that cannot be Salesforce ids."""
        sobject = self._sobject(object_type)
        wanted = list(dict.fromkeys(str(i) for i in ids))
        if id_property is None:
            wanted = [i for i in wanted if _ID.match(i)]
        by = id_property or "Id"
        asked = [*properties, id_property] if id_property else list(properties)
        found: dict[str, Record] = {}
        for chunk in chunks(wanted, IN_CHUNK):
            values = ", ".join(soql_string(v) for v in chunk)
            deleted = "true" if archived else "false"
            soql = (
                f"{self._select(sobject, asked, 'IsDeleted')} WHERE {by} IN ({values}) "
                f"AND IsDeleted = {deleted}"
            )
            for rows in self._query(soql, every=archived):
                for record in self._records(sobject, rows, asked):
                    if archived:
                        record = replace(record, archived=True, archived_at=record.updated_at)
                    key = record.properties.get(id_property) if id_property else None
                    found[key or _matching(chunk, record.id)] = record
        return found

    def property_times(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """Salesforce keeps field history only where an admin turned it on: not asked for."""
        return {}

    # ---- writing ---------------------------------------------------------------------------

    def _describe(self, sobject: str) -> dict[str, dict[str, Any]]:
        """The sObject's fields by lower-case name (once per connector)."""
        if sobject not in self._described:
            answer = self.http.request("GET", f"/sobjects/{sobject}/describe/").json()
            self._described[sobject] = {f["name"].lower(): f for f in answer.get("fields", [])}
        return self._described[sobject]

    def _body(self, sobject: str, item: WriteInput) -> dict[str, Any]:
        body: dict[str, Any] = {"attributes": {"type": sobject}}
        if sobject == "ContentNote":
            body.update(self.content.note_values(item.properties, creating=item.id is None))
            return {**body, **({"Id": item.id} if item.id else {})}
        fields = self._describe(sobject)
        for name, value in item.properties.items():
            described = fields.get(name.lower())
            body[described["name"] if described else name] = _typed(
                described["type"] if described else None, value
            )
        if item.id:
            body["Id"] = item.id
        return body

    def create(self, object_type: str, inputs: Sequence[WriteInput]) -> list[WriteOutcome]:
        """Create records, 200 a call; a record Salesforce refuses fails alone. A note is linked to
        its deal at once; one that cannot be is deleted again and fails with the reason."""
        outcomes = self._collection("POST", object_type, inputs, created=True)
        if object_type != NOTES:
            return outcomes
        links = {
            o.ref: [(o.record.id, deal) for _, deal, _ in item.associations]
            for item, o in zip(inputs, outcomes, strict=True)
            if o.ok and o.record is not None
        }
        refused = self._link([pair for pairs in links.values() for pair in pairs])
        failed = {ref for ref, pairs in links.items() if any(p in refused for p in pairs)}
        if failed:
            orphans = [o.record.id for o in outcomes if o.ref in failed and o.record is not None]
            self.archive(NOTES, orphans)
        return [
            WriteOutcome(o.ref, error=refused[links[o.ref][0]]) if o.ref in failed else o
            for o in outcomes
        ]

    def _link(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], ConnectorError]:
        """Link documents to opportunities (document id, deal id), 200 a call; the pairs that
        failed, with why (a link that exists already is fine)."""
        refused: dict[tuple[str, str], ConnectorError] = {}
        for chunk in chunks(list(pairs), COLLECTION_SIZE):
            records = [
                {
                    "attributes": {"type": "ContentDocumentLink"},
                    "ContentDocumentId": document,
                    "LinkedEntityId": deal,
                    "ShareType": "I",
                }
                for document, deal in chunk
            ]
            body = {"allOrNone": False, "records": records}
            results = self.http.request("POST", "/composite/sobjects", json=body).json()
            for pair, result in zip(chunk, results, strict=True):
                outcome = self._outcome(WriteInput(pair[0], {}), result, True)
                if outcome.error is not None and outcome.error.category != "DUPLICATE_VALUE":
                    refused[pair] = outcome.error
        return refused

    def update(self, object_type: str, inputs: Sequence[WriteInput]) -> list[WriteOutcome]:
        """Update records by id, 200 a call; each has its own result."""
        known = [i for i in inputs if i.id and _ID.match(str(i.id))]
        outcomes = {o.ref: o for o in self._collection("PATCH", object_type, known)}
        for item in inputs:
            outcomes.setdefault(
                item.ref,
                WriteOutcome(
                    item.ref,
                    error=RecordRejected(f"{item.id!r} is not a Salesforce record id", 404),
                ),
            )
        return [outcomes[i.ref] for i in inputs]

    def _collection(
        self, method: str, object_type: str, inputs: Sequence[WriteInput], created: bool = False
    ) -> list[WriteOutcome]:
        sobject = self._sobject(object_type)
        outcomes: list[WriteOutcome] = []
        for chunk in chunks(list(inputs), COLLECTION_SIZE):
            body = {"allOrNone": False, "records": [self._body(sobject, i) for i in chunk]}
            try:
                results = self.http.request(method, "/composite/sobjects", json=body).json()
            except ConnectorError as exc:
                if not exc.retriable and not isinstance(exc, RecordRejected):
                    raise
                outcomes += [WriteOutcome(i.ref, error=exc) for i in chunk]
                continue
            for item, result in zip(chunk, results, strict=True):
                outcomes.append(self._outcome(item, result, created))
        return outcomes

    def _outcome(self, item: WriteInput, result: Mapping[str, Any], created: bool) -> WriteOutcome:
        """A SaveResult as an outcome: the record as written, or the reason Salesforce gave."""
        if result.get("success"):
            record_id = str(result.get("id") or item.id)
            return WriteOutcome(
                item.ref,
                Record(record_id, dict(item.properties), "", ""),
                created=created,
            )
        errors = result.get("errors") or []
        message = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in errors)
        code = str(errors[0].get("statusCode")) if errors else None
        return WriteOutcome(
            item.ref,
            error=RecordRejected(
                f"{self.http.connection}: Salesforce refused {item.ref} ({message or 'no reason given'})",
                404 if code in GONE_CODES else 400,
                code,
            ),
        )

    def upsert(
        self, object_type: str, id_property: str, inputs: Sequence[WriteInput]
    ) -> list[WriteOutcome]:
        """Create or update by an External ID field, a call each (`ref` is the key value). The
        engine upserts only keys its ledger recorded as its own creates (see `twins.py`)."""
        sobject = self._sobject(object_type)
        outcomes: list[WriteOutcome] = []
        for item in inputs:
            body = {k: v for k, v in self._body(sobject, item).items() if k != "attributes"}
            body.pop(id_property, None)
            path = f"/sobjects/{sobject}/{id_property}/{quote(item.ref, safe='')}"
            try:
                response = self.http.request("PATCH", path, json=body)
            except ConnectorError as exc:
                if not isinstance(exc, RecordRejected):
                    raise
                outcomes.append(WriteOutcome(item.ref, error=exc))
                continue
            answer = response.json() if response.content else {}
            record = Record(
                str(answer.get("id") or ""), {**item.properties, id_property: item.ref}, "", ""
            )
            outcomes.append(
                WriteOutcome(
                    item.ref,
                    record,
                    created=bool(answer.get("created", response.status_code == 201)),
                )
            )
        return outcomes

    def archive(self, object_type: str, ids: Sequence[str]) -> list[WriteOutcome]:
        """Delete records (to the recycle bin), 200 a call; one already gone is fine."""
        self._sobject(object_type)
        outcomes: dict[str, WriteOutcome] = {}
        valid = [i for i in ids if _ID.match(i)]
        for chunk in chunks(valid, COLLECTION_SIZE):
            params = {"ids": ",".join(chunk), "allOrNone": "false"}
            results = self.http.request("DELETE", "/composite/sobjects", params=params).json()
            for record_id, result in zip(chunk, results, strict=True):
                outcome = self._outcome(WriteInput(record_id, {}, record_id), result, False)
                gone = outcome.error is not None and outcome.error.category in GONE_CODES
                outcomes[record_id] = WriteOutcome(record_id) if gone else outcome
        return [outcomes.get(i, WriteOutcome(i)) for i in ids]

    # ---- notes on deals, files on deals -------------------------------------------------------

    def associations(
        self, from_type: str, to_type: str, ids: Iterable[str]
    ) -> dict[str, tuple[str, ...]]:
        """The deals of notes, or the notes of deals (by their ContentDocumentLinks)."""
        if {from_type, to_type} != {NOTES, "deals"}:
            raise ConnectorError(f"Salesforce links notes and deals, not {from_type}->{to_type}")
        wanted = [i for i in dict.fromkeys(ids) if _ID.match(i)]
        found: dict[str, tuple[str, ...]] = {}
        for chunk in chunks(wanted, IN_CHUNK):
            if from_type == NOTES:
                found.update(self.content.deals_of(chunk))
                continue
            on = self.content.documents_on(chunk)
            documents = sorted({d for ids in on.values() for d in ids})
            notes = set()
            for part in chunks(documents, IN_CHUNK):
                soql = f"SELECT Id FROM ContentNote WHERE Id IN ({soql_ids(part)})"
                notes |= {str(row["Id"]) for rows in self._query(soql) for row in rows}
            found.update(
                {
                    deal: tuple(dict.fromkeys(d for d in ids if d in notes))
                    for deal, ids in on.items()
                }
            )
        return found

    def associate(
        self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]], type_id: int
    ) -> None:
        """Link notes to deals ((note, deal) or (deal, note) pairs), idempotently."""
        linked = [(a, b) if from_type == NOTES else (b, a) for a, b in pairs]
        wanted = [p for p in linked if p[1].startswith(OPPORTUNITY_PREFIX) and _ID.match(p[0])]
        existing: dict[str, tuple[str, ...]] = {}
        for chunk in chunks(sorted({document for document, _ in wanted}), IN_CHUNK):
            existing.update(self.content.deals_of(chunk))
        refused = self._link([(d, deal) for d, deal in wanted if deal not in existing.get(d, ())])
        if refused:
            raise next(iter(refused.values()))

    def deals_with_changed_files(self, since_ms: int, known: Mapping[str, str]) -> set[str] | None:
        """The deals linked to documents modified since then, and those of known files the delete
        log names; None when the log does not reach back that far."""
        deleted = self._deleted("ContentDocument", since_ms, reuse=True)
        if deleted is None:
            return None
        deals = {known[d] for d in deleted if known.get(d)}
        stamp = soql_moment(max(since_ms - self.lookback_ms, 0))
        soql = (
            "SELECT Id FROM ContentDocument WHERE SystemModstamp >= "
            f"{stamp} AND FileType != 'SNOTE'"
        )
        changed = [str(row["Id"]) for rows in self._query(soql) for row in rows]
        for chunk in chunks(changed, IN_CHUNK):
            deals |= {d for ids in self.content.deals_of(chunk).values() for d in ids}
        return deals

    def deal_attachments(self, deal_ids: Iterable[str]) -> dict[str, tuple[FileInfo, ...]]:
        """The shared files of each deal (title marked `[shared]`, not private on the record)."""
        wanted = [i for i in dict.fromkeys(deal_ids) if _ID.match(i)]
        found: dict[str, tuple[FileInfo, ...]] = {}
        for chunk in chunks(wanted, IN_CHUNK):
            found.update(self.content.shared_files(chunk))
        return found

    def attach(self, deal_id: str, name: str, content: bytes | BinaryIO) -> FileInfo:
        """A shared file on a deal (a ContentVersion published on it, its title marked)."""
        data = content if isinstance(content, bytes) else content.read()
        return self.content.attach(deal_id, name, data)

    def download_file(self, file_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """A file's bytes (its latest version), streamed."""
        return self.content.download(file_id, chunk_size)

    def delete_file(self, file_id: str) -> None:
        """Delete a file; one already gone is fine."""
        self.content.delete(file_id)

    # ---- owners and fields -----------------------------------------------------------------

    def owners(self) -> list[Owner]:
        """Every active user."""
        soql = "SELECT Id, Email, FirstName, LastName FROM User WHERE IsActive = true ORDER BY Id"
        return [
            Owner(
                id=str(row["Id"]),
                email=str(row.get("Email") or ""),
                first_name=row.get("FirstName") or "",
                last_name=row.get("LastName") or "",
            )
            for rows in self._query(soql)
            for row in rows
        ]

    def property_problems(
        self, object_type: str, specs: Sequence[PropertySpec], used: Sequence[str]
    ) -> list[str]:
        """Custom fields missing (or hidden from the user), of another type or lacking picklist
        values; fields the mapping uses that the org lacks. A note's properties are fixed."""
        sobject = self._sobject(object_type)
        if sobject == "ContentNote":
            return [
                no_note_field(self.http.connection, name)
                for name in (*(s.name for s in specs), *used)
                if name not in NOTE_PROPERTIES
            ]
        self._described.pop(sobject, None)
        return self.fields.problems(sobject, self._describe(sobject), specs, used)

    def ensure_properties(self, object_type: str, specs: Sequence[PropertySpec]) -> list[str]:
        """Create the missing custom fields (Tooling API) and grant the connection's user access
        to them (a permission set); refuse one that exists with another type."""
        sobject = self._sobject(object_type)
        if sobject == "ContentNote":
            if specs:
                raise ConnectorError(no_note_field(self.http.connection, specs[0].name))
            return []
        self._described.pop(sobject, None)
        created = self.fields.ensure(sobject, self._describe(sobject), specs)
        self._described.pop(sobject, None)
        self.fields.check_types(sobject, self._describe(sobject), specs)
        return created


def _matching(asked: Sequence[str], record_id: str) -> str:
    """The id as it was asked for (15 or 18 characters) of a record read by id."""
    return next((a for a in asked if record_id.startswith(a)), record_id)
