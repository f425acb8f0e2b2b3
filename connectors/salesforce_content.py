"""Notes and files of Salesforce opportunities, as Salesforce keeps them: a note is a ContentNote,
a file a ContentVersion of a ContentDocument; either reaches an opportunity by a ContentDocumentLink.

Neither can carry a custom field, so sharing is an explicit mark a user types: a title that starts
with `[shared]`. A note or file with the mark is shared unless it is private on the record
(`SharingPrivacy` P); anything else stays in the org, and dealsync never even downloads its body.
The connector tells it as the property `dealsync_shared` ("true"/"false") of a note.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from connectors.base import FileInfo, Record
from connectors.errors import RecordRejected
from connectors.salesforce_http import SalesforceHttp

SHARED_MARK = "[shared]"
SHARED = "dealsync_shared"  # the property that tells whether a note carries the mark
NOTE_FIELDS = ("Id", "CreatedDate", "SystemModstamp", "Title", "SharingPrivacy", "OwnerId")
NOTE_PROPERTIES = ("Title", "Content", "SharingPrivacy", "OwnerId", "CreatedDate", SHARED)
OPPORTUNITY_PREFIX = "006"
TITLE_LENGTH = 255
Query = Callable[[str], Iterator[list[dict[str, Any]]]]


def soql_ids(ids: Iterable[str]) -> str:
    """Ids as a SOQL IN list (the caller passes only well-formed ids)."""
    return ", ".join(f"'{i}'" for i in ids)


def is_marked(title: str | None) -> bool:
    """Whether a title starts with the shared mark (spaces and case aside)."""
    return (title or "").strip().lower().startswith(SHARED_MARK)


def shared(row: Mapping[str, Any]) -> bool:
    """Whether a note or document is shared: marked, and not private on the record."""
    return is_marked(row.get("Title")) and row.get("SharingPrivacy") != "P"


def unmarked(title: str | None) -> str:
    """A title without the shared mark."""
    text = (title or "").strip()
    return text[len(SHARED_MARK) :].strip() if is_marked(text) else text


# The line dealsync starts a note with when its author has no account here (dealsync/note_text.py):
# not what the note is about, so not its title.
_AUTHOR_LINE = re.compile(r'^<p class="dealsync-author">.*?</p>', re.DOTALL)


def note_title(body: str | None) -> str:
    """The title dealsync gives a note it writes: the mark and the text's first line."""
    text = html.unescape(re.sub(r"<[^>]+>", "\n", _AUTHOR_LINE.sub("", body or "")))
    first = next((line.strip() for line in text.splitlines() if line.strip()), "Note")
    return f"{SHARED_MARK} {first}"[:TITLE_LENGTH]


def encoded(text: str | None) -> str:
    """A note's HTML as ContentNote's base64 `Content`."""
    return base64.b64encode((text or "").encode()).decode()


class SalesforceContent:
    """Reads and writes notes and files through a connection and its connector's SOQL pages."""

    def __init__(self, http: SalesforceHttp, query: Query) -> None:
        self.http, self.query = http, query
        self.versions: dict[str, str] = {}  # document id -> its latest version id, as last read

    # ---- notes -------------------------------------------------------------------------------

    def note_records(self, rows: Sequence[Mapping[str, Any]]) -> list[Record]:
        """Rows of ContentNote as records; the body is read for shared notes only."""
        records = []
        for row in rows:
            is_shared = shared(row)
            body = self._body(str(row["Content"])) if is_shared and row.get("Content") else None
            records.append(
                Record(
                    id=str(row["Id"]),
                    properties={
                        "Title": row.get("Title"),
                        "Content": body,
                        "SharingPrivacy": row.get("SharingPrivacy"),
                        "OwnerId": row.get("OwnerId"),
                        "CreatedDate": iso_time(row.get("CreatedDate")),
                        SHARED: "true" if is_shared else "false",
                    },
                    created_at=iso_time(row.get("CreatedDate")),
                    updated_at=iso_time(row.get("SystemModstamp")),
                )
            )
        return records

    def _body(self, url: str) -> str:
        answer = self.http.request("GET", f"{self.http.instance_url}{url}")
        return answer.content.decode("utf-8", "replace")

    def note_values(self, properties: Mapping[str, str | None], creating: bool) -> dict[str, Any]:
        """A note's writable fields from its properties: the text, and on create a marked title."""
        values: dict[str, Any] = {}
        if "Content" in properties:
            values["Content"] = encoded(properties["Content"])
        if creating:
            values["Title"] = properties.get("Title") or note_title(properties.get("Content"))
            if not is_marked(values["Title"]):
                values["Title"] = f"{SHARED_MARK} {values['Title']}"[:TITLE_LENGTH]
        return values

    def deals_of(self, document_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The opportunities each document is linked to."""
        found: dict[str, tuple[str, ...]] = {i: () for i in document_ids}
        if not document_ids:
            return found
        soql = (
            "SELECT ContentDocumentId, LinkedEntityId FROM ContentDocumentLink "
            f"WHERE ContentDocumentId IN ({soql_ids(document_ids)})"
        )
        for rows in self.query(soql):
            for row in rows:
                entity = str(row["LinkedEntityId"])
                if entity.startswith(OPPORTUNITY_PREFIX):
                    document = str(row["ContentDocumentId"])
                    found[document] = (*found.get(document, ()), entity)
        return found

    def documents_on(self, deal_ids: Sequence[str]) -> dict[str, list[str]]:
        """The documents linked to each opportunity."""
        found: dict[str, list[str]] = {i: [] for i in deal_ids}
        if not deal_ids:
            return found
        soql = (
            "SELECT ContentDocumentId, LinkedEntityId FROM ContentDocumentLink "
            f"WHERE LinkedEntityId IN ({soql_ids(deal_ids)})"
        )
        for rows in self.query(soql):
            for row in rows:
                found.setdefault(str(row["LinkedEntityId"]), []).append(
                    str(row["ContentDocumentId"])
                )
        return found

    def documents(self, document_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Documents by id: title, type, privacy, size, latest version."""
        if not document_ids:
            return {}
        soql = (
            "SELECT Id, Title, FileType, FileExtension, SharingPrivacy, ContentSize, "
            f"LatestPublishedVersionId FROM ContentDocument WHERE Id IN ({soql_ids(document_ids)})"
        )
        return {str(row["Id"]): row for rows in self.query(soql) for row in rows}

    # ---- files ---------------------------------------------------------------------------------

    def shared_files(self, deal_ids: Sequence[str]) -> dict[str, tuple[FileInfo, ...]]:
        """The shared files (marked, not private, not notes) of each opportunity."""
        on = self.documents_on(deal_ids)
        documents = self.documents(sorted({d for ids in on.values() for d in ids}))
        result: dict[str, tuple[FileInfo, ...]] = {}
        for deal, ids in on.items():
            files = []
            for document_id in ids:
                row = documents.get(document_id)
                if row is None or row.get("FileType") == "SNOTE" or not shared(row):
                    continue
                self.versions[document_id] = str(row["LatestPublishedVersionId"])
                files.append(
                    FileInfo(document_id, file_name(row), int(row.get("ContentSize") or 0))
                )
            result[deal] = tuple(files)
        return result

    def version_of(self, document_id: str) -> str:
        """A document's latest version (from the last listing, else asked)."""
        if document_id not in self.versions:
            row = self.documents([document_id]).get(document_id)
            if row is None:
                raise RecordRejected(f"file {document_id} does not exist", 404, "NOT_FOUND")
            self.versions[document_id] = str(row["LatestPublishedVersionId"])
        return self.versions[document_id]

    def attach(self, deal_id: str, name: str, content: bytes) -> FileInfo:
        """A new shared file on an opportunity: a version published there, its title marked."""
        stem = name.rsplit(".", 1)[0] if "." in name else name
        created = self.http.request(
            "POST",
            "/sobjects/ContentVersion/",
            json={
                "Title": f"{SHARED_MARK} {stem}"[:TITLE_LENGTH],
                "PathOnClient": name,
                "VersionData": base64.b64encode(content).decode(),
                "FirstPublishLocationId": deal_id,
            },
        ).json()
        version = self.http.request(
            "GET",
            f"/sobjects/ContentVersion/{created['id']}",
            params={"fields": "ContentDocumentId"},
        ).json()
        document_id = str(version["ContentDocumentId"])
        self.versions[document_id] = str(created["id"])
        return FileInfo(document_id, name, len(content))

    def download(self, document_id: str, chunk_size: int) -> Iterator[bytes]:
        """A file's bytes, streamed."""
        version = self.version_of(document_id)
        answer = self.http.request(
            "GET", f"/sobjects/ContentVersion/{version}/VersionData", stream=True
        )
        with answer:
            yield from answer.iter_content(chunk_size)

    def delete(self, document_id: str) -> None:
        """Delete a file (its document, with its versions and links); one already gone is fine."""
        try:
            self.http.request("DELETE", f"/sobjects/ContentDocument/{document_id}")
        except RecordRejected as exc:
            if exc.status != 404:
                raise
        self.versions.pop(document_id, None)


def file_name(row: Mapping[str, Any]) -> str:
    """A document's file name: its title without the mark, and its extension."""
    stem, extension = unmarked(row.get("Title")), row.get("FileExtension") or ""
    return f"{stem}.{extension}" if extension and not stem.endswith(f".{extension}") else stem


def iso_time(text: str | None) -> str:
    """Salesforce's 2026-12-04T21:40:00.000+0000 as ISO 8601 with Z ('' for none)."""
    return re.sub(r"\+0000$", "Z", text or "")
