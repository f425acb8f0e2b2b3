"""Fidelity: HubSpot's own Python client works against the sandbox."""

from __future__ import annotations

import hubspot
import pytest
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.deals import BatchInputSimplePublicObjectBatchInputForCreate as BatchCreate
from hubspot.crm.deals.exceptions import ApiException
from hubspot.crm.properties import PropertyCreate


@pytest.fixture
def client(sandbox):
    return hubspot.HubSpot(access_token=sandbox.token, host=sandbox.base_url)


def _create(client, **properties):
    return client.crm.deals.basic_api.create(
        SimplePublicObjectInputForCreate(properties=properties)
    )


def test_basic_create_read_update_archive(client):
    deal = _create(client, dealname="Acme renewal", amount="1200", closedate="2026-12-24")
    assert deal.properties["dealname"] == "Acme renewal"
    assert deal.properties["closedate"] == "2026-12-24T00:00:00.000Z"
    assert deal.properties["hs_object_id"] == deal.id

    fetched = client.crm.deals.basic_api.get_by_id(deal.id, properties=["dealname", "amount"])
    assert fetched.properties["amount"] == "1200"

    updated = client.crm.deals.basic_api.update(
        deal.id, SimplePublicObjectInput(properties={"amount": "1500"})
    )
    assert updated.properties["amount"] == "1500"
    assert updated.updated_at >= deal.updated_at

    client.crm.deals.basic_api.archive(deal.id)
    with pytest.raises(ApiException) as missing:
        client.crm.deals.basic_api.get_by_id(deal.id)
    assert missing.value.status == 404
    archived = client.crm.deals.basic_api.get_by_id(deal.id, archived=True)
    assert archived.archived is True and archived.archived_at is not None


def test_batch_create_update_read_archive(client):
    created = client.crm.deals.batch_api.create(
        BatchCreate(
            inputs=[
                {"properties": {"dealname": f"Deal {i}", "amount": str(i * 100)}} for i in range(5)
            ]
        )
    )
    assert created.status == "COMPLETE" and len(created.results) == 5
    ids = sorted(r.id for r in created.results)

    client.crm.deals.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": i, "properties": {"dealstage": "closedwon"}} for i in ids]
        )
    )
    read = client.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": i} for i in ids], properties=["dealstage"], properties_with_history=[]
        )
    )
    assert {r.properties["dealstage"] for r in read.results} == {"closedwon"}

    client.crm.deals.batch_api.archive(
        BatchInputSimplePublicObjectId(inputs=[{"id": i} for i in ids[:2]])
    )
    page = client.crm.deals.basic_api.get_page(limit=100, archived=True)
    assert sorted(r.id for r in page.results) == ids[:2]
    remaining = client.crm.deals.basic_api.get_page(limit=100)
    assert sorted(r.id for r in remaining.results) == ids[2:]


def test_search_with_filters_groups_and_sort(client):
    for name, amount, stage in [
        ("Alpha", "100", "closedwon"),
        ("Beta", "250", "qualifiedtobuy"),
        ("Gamma", "900", "closedwon"),
    ]:
        _create(client, dealname=name, amount=amount, dealstage=stage)
    request = PublicObjectSearchRequest(
        filter_groups=[
            {"filters": [{"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"}]},
            {
                "filters": [
                    {
                        "propertyName": "amount",
                        "operator": "BETWEEN",
                        "value": "200",
                        "highValue": "300",
                    }
                ]
            },
        ],
        sorts=[{"propertyName": "amount", "direction": "DESCENDING"}],
        properties=["dealname", "amount"],
        limit=2,
    )
    first = client.crm.deals.search_api.do_search(request)
    assert first.total == 3
    assert [r.properties["dealname"] for r in first.results] == ["Gamma", "Beta"]
    assert first.paging.next.after == "2"
    request.after = first.paging.next.after
    second = client.crm.deals.search_api.do_search(request)
    assert [r.properties["dealname"] for r in second.results] == ["Alpha"]


def test_associations_v4_and_notes(client):
    deal = _create(client, dealname="With notes")
    note = client.crm.objects.notes.basic_api.create(
        {
            "properties": {"hs_timestamp": "2026-11-01T10:00:00Z", "hs_note_body": "<p>hello</p>"},
            "associations": [
                {
                    "to": {"id": deal.id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}],
                }
            ],
        }
    )
    listed = client.crm.associations.v4.basic_api.get_page("deals", deal.id, "notes")
    assert [str(r.to_object_id) for r in listed.results] == [note.id]
    assert listed.results[0].association_types[0].type_id == 213

    second = client.crm.objects.notes.basic_api.create(
        {"properties": {"hs_timestamp": "1764000000000"}}
    )
    client.crm.associations.v4.basic_api.create_default("notes", second.id, "deals", deal.id)
    batch = client.crm.associations.v4.batch_api.get_page(
        "deals", "notes", BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": deal.id}])
    )
    assert sorted(str(t.to_object_id) for t in batch.results[0].to) == sorted([note.id, second.id])


def test_owners_listing_with_email_filter(client, sandbox):
    sandbox.admin(
        "POST", "owners", json={"email": "rep1@vendor.test", "firstName": "Rita", "lastName": "Rep"}
    )
    sandbox.admin("POST", "owners", json={"email": "gone@vendor.test", "archived": True})
    page = client.crm.owners.owners_api.get_page(email="rep1@vendor.test")
    assert [o.first_name for o in page.results] == ["Rita"]
    archived = client.crm.owners.owners_api.get_page(archived=True)
    assert [o.email for o in archived.results] == ["gone@vendor.test"]


def test_file_upload_and_metadata(client, api, tmp_path):
    content = b"%PDF-1.4 pretend proposal\n" * 100
    path = tmp_path / "proposal.pdf"
    path.write_bytes(content)
    uploaded = client.files.files_api.upload(
        file=str(path),
        file_name="proposal.pdf",
        folder_path="/dealsync",
        options='{"access": "PRIVATE"}',
    )
    assert uploaded.size == len(content) and uploaded.extension == "pdf"
    meta = client.files.files_api.get_by_id(uploaded.id)
    assert meta.access == "PRIVATE"
    assert api("GET", f"/files/v3/files/{uploaded.id}/download").content == content


def test_unique_property_and_upsert(client):
    client.crm.properties.core_api.create(
        "deals",
        PropertyCreate(
            name="dealsync_key",
            label="dealsync key",
            type="string",
            field_type="text",
            group_name="dealinformation",
            has_unique_value=True,
        ),
    )
    first = client.crm.deals.batch_api.upsert(
        {
            "inputs": [
                {"idProperty": "dealsync_key", "id": "acme:p:1", "properties": {"dealname": "One"}}
            ]
        }
    )
    again = client.crm.deals.batch_api.upsert(
        {
            "inputs": [
                {
                    "idProperty": "dealsync_key",
                    "id": "acme:p:1",
                    "properties": {"dealname": "One, renamed"},
                }
            ]
        }
    )
    assert first.results[0].new is True and again.results[0].new is False
    assert first.results[0].id == again.results[0].id
    by_key = client.crm.deals.basic_api.get_by_id(
        "acme:p:1", id_property="dealsync_key", properties=["dealname"]
    )
    assert by_key.properties["dealname"] == "One, renamed"


def test_merge_makes_one_new_record_that_both_old_ids_answer_with(client):
    from hubspot.crm.deals import PublicMergeInput

    first = _create(client, dealname="First", amount="100")
    second = _create(client, dealname="Second", closedate="2026-12-24")
    merged = client.crm.deals.basic_api.merge(
        PublicMergeInput(primary_object_id=first.id, object_id_to_merge=second.id)
    )
    assert merged.id not in (first.id, second.id)
    for old in (first.id, second.id):
        read = client.crm.deals.basic_api.get_by_id(
            old, properties=["dealname", "amount", "closedate", "hs_merged_object_ids"]
        )
        assert read.id == merged.id
        assert read.properties["dealname"] == "First" and read.properties["amount"] == "100"
        assert read.properties["closedate"] == "2026-12-24T00:00:00.000Z"  # filled from the other
        assert set(read.properties["hs_merged_object_ids"].split(";")) == {first.id, second.id}
    listed = client.crm.deals.basic_api.get_page(limit=100)
    assert [d.id for d in listed.results] == [merged.id]


def test_property_history_is_kept_newest_first(client):
    deal = _create(client, dealname="v1")
    client.crm.deals.basic_api.update(
        deal.id, SimplePublicObjectInput(properties={"dealname": "v2", "amount": "5"})
    )
    client.crm.deals.basic_api.update(
        deal.id,
        SimplePublicObjectInput(properties={"amount": "5"}),  # unchanged: no entry
    )
    read = client.crm.deals.basic_api.get_by_id(
        deal.id, properties_with_history=["dealname", "amount"]
    )
    history = read.properties_with_history
    assert [h.value for h in history["dealname"]] == ["v2", "v1"]
    assert [h.value for h in history["amount"]] == ["5"]
    assert history["dealname"][0].timestamp >= history["dealname"][1].timestamp
    batch = client.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": deal.id}], properties=["dealname"], properties_with_history=["dealname"]
        )
    )
    assert [h.value for h in batch.results[0].properties_with_history["dealname"]] == ["v2", "v1"]
