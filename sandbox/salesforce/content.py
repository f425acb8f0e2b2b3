"""Notes and files as Salesforce keeps them: a ContentNote or a ContentVersion is a ContentDocument,
linked to records by ContentDocumentLinks; deleting the document deletes its versions, its note and
its links. Base64 fields come back as URLs of their bodies."""

from __future__ import annotations

import base64
import html
import re
from typing import Any

from sandbox.salesforce.records import Org, SalesforceError

API_VERSION = "59.0"
LINK_FILTERS = ("linkedentityid", "contentdocumentid", "id")


def _body_url(type_name: str, record_id: str, field_name: str) -> str:
    return f"/services/data/v{API_VERSION}/sobjects/{type_name}/{record_id}/{field_name}"


def _keep_body(org: Org, type_name: str, record_id: str, field_name: str, encoded: str) -> bytes:
    body = base64.b64decode(encoded)
    org.bodies[(record_id, field_name)] = body
    org.records[type_name][record_id][field_name] = _body_url(type_name, record_id, field_name)
    return body


def create_record(org: Org, type_name: str, values: dict[str, Any]) -> str:
    """Create a record, with what Salesforce does around notes and files; its id."""
    name = org.sobject(type_name).name
    if name == "ContentVersion":
        return _create_version(org, values)
    if name == "ContentNote":
        return _create_note(org, values)
    if name == "ContentDocument":
        raise SalesforceError(
            400, "INVALID_TYPE", "ContentDocument is created with a ContentVersion or ContentNote"
        )
    if name == "ContentDocumentLink":
        document = org.get("ContentDocument", str(values.get("ContentDocumentId") or "-"))["Id"]
        entity = str(values.get("LinkedEntityId") or "")
        if any(
            link["ContentDocumentId"] == document and link["LinkedEntityId"] == entity
            for link in org.all("ContentDocumentLink")
        ):
            raise SalesforceError(
                400,
                "DUPLICATE_VALUE",
                f"Document with ID: {document} is already linked with the entity with ID: {entity}",
                ["LinkedEntityId"],
            )
    return org.create(name, values)


def _create_version(org: Org, values: dict[str, Any]) -> str:
    document_id = values.get("ContentDocumentId")
    if document_id:
        org.get("ContentDocument", str(document_id))  # a new version of a document that exists
    version_id = org.create("ContentVersion", values)
    version = org.records["ContentVersion"][version_id]
    body = _keep_body(org, "ContentVersion", version_id, "VersionData", values["VersionData"])
    path = str(values.get("PathOnClient") or "")
    extension = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    version.update(
        ContentSize=len(body),
        FileExtension=extension,
        IsLatest=True,
        Title=values.get("Title") or path.rsplit("/", 1)[-1].rsplit(".", 1)[0],
    )
    if document_id:
        for other in org.all("ContentVersion"):
            if other["ContentDocumentId"] == document_id and other["Id"] != version_id:
                other["IsLatest"] = False
    else:
        document_id = org.create_system(
            "ContentDocument",
            {
                "Title": version["Title"],
                "FileType": extension.upper() or "UNKNOWN",
                "FileExtension": extension,
                "SharingPrivacy": version["SharingPrivacy"] or "N",
            },
        )
        version["ContentDocumentId"] = document_id
    document = org.records["ContentDocument"][document_id]
    document.update(LatestPublishedVersionId=version_id, ContentSize=len(body))
    if values.get("FirstPublishLocationId"):
        org.create(
            "ContentDocumentLink",
            {
                "ContentDocumentId": document_id,
                "LinkedEntityId": values["FirstPublishLocationId"],
                "Visibility": "AllUsers",
            },
        )
    return version_id


def _create_note(org: Org, values: dict[str, Any]) -> str:
    document_id = org.create_system(
        "ContentDocument",
        {
            "Title": values.get("Title"),
            "FileType": "SNOTE",
            "SharingPrivacy": values.get("SharingPrivacy") or "N",
        },
    )
    org.create("ContentNote", values, record_id=document_id)
    note = org.records["ContentNote"][document_id]
    note["FileType"] = "SNOTE"
    if values.get("Content"):
        text = _keep_body(org, "ContentNote", document_id, "Content", values["Content"])
        plain = html.unescape(re.sub(r"<[^>]+>", " ", text.decode("utf-8", "replace")))
        note["TextPreview"] = " ".join(plain.split())[:255]
    return document_id


def update_record(org: Org, type_name: str, record_id: str, values: dict[str, Any]) -> None:
    """Update a record; a note's new content is kept as its body."""
    name = org.sobject(type_name).name
    org.update(name, record_id, values)
    if name == "ContentNote" and values.get("Content"):
        _keep_body(org, "ContentNote", org.get(name, record_id)["Id"], "Content", values["Content"])


def delete_record(org: Org, type_name: str, record_id: str) -> None:
    """Delete a record; deleting a document (or its note) deletes its versions and links too."""
    name = org.sobject(type_name).name
    if name not in ("ContentDocument", "ContentNote"):
        org.delete(name, record_id)
        return
    document_id = org.get("ContentDocument", record_id)["Id"]
    for kind, key in (
        ("ContentVersion", "ContentDocumentId"),
        ("ContentDocumentLink", "ContentDocumentId"),
        ("ContentNote", "Id"),
    ):
        for record in org.all(kind):
            if record[key] == document_id:
                org.delete(kind, record["Id"])
    org.delete("ContentDocument", document_id)


def body(org: Org, type_name: str, record_id: str, field_name: str) -> bytes:
    """The body of a record's base64 field (a file's data, a note's content)."""
    record = org.get(type_name, record_id)
    found = org.bodies.get((record["Id"], field_name))
    if found is None:
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
    return found


def check_link_query(type_name: str, where: str) -> None:
    """ContentDocumentLink queries must filter on the linked record, the document or the id."""
    if type_name.lower() == "contentdocumentlink" and not any(
        re.search(rf"\b{name}\s*(=|\bIN\b)", where, re.IGNORECASE) for name in LINK_FILTERS
    ):
        raise SalesforceError(
            400,
            "MALFORMED_QUERY",
            "Implementation restriction: ContentDocumentLink requires a filter by a single Id on "
            "ContentDocumentId or LinkedEntityId using the equals operator or multiple Id's using "
            "the IN operator.",
        )
