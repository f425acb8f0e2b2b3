"""HubSpot endpoints and limits in one place (dlt's "settings module" style)."""

OBJECTS = "/crm/v3/objects/{object_type}"
OBJECT = "/crm/v3/objects/{object_type}/{object_id}"
SEARCH = "/crm/v3/objects/{object_type}/search"
BATCH = "/crm/v3/objects/{object_type}/batch/{operation}"
PROPERTIES = "/crm/v3/properties/{object_type}"
OWNERS = "/crm/v3/owners/"
ASSOCIATIONS_BATCH_READ = "/crm/v4/associations/{from_type}/{to_type}/batch/read"
ASSOCIATIONS_BATCH_CREATE = "/crm/v4/associations/{from_type}/{to_type}/batch/create"
ASSOCIATIONS_BATCH_ARCHIVE = "/crm/v4/associations/{from_type}/{to_type}/batch/archive"
FILES = "/files/v3/files"
FILE = "/files/v3/files/{file_id}"
FILE_SIGNED_URL = "/files/v3/files/{file_id}/signed-url"
ACCOUNT_DETAILS = "/account-info/v3/details"

BATCH_SIZE = 100
SEARCH_PAGE_SIZE = 200
LIST_PAGE_SIZE = 100
OWNERS_PAGE_SIZE = 100
ASSOCIATION_READ_BATCH = 1_000
SEARCH_RESULT_CAP = 10_000
# Search is eventually consistent: re-read this much before the stored cursor on every pull.
DEFAULT_LOOKBACK_MS = 5 * 60 * 1000
MODIFIED = "hs_lastmodifieddate"
OBJECT_ID = "hs_object_id"
MERGED = "hs_merged_object_ids"  # ;-joined ids of the records a merge turned into this one
NOTE_TO_DEAL = 214  # HubSpot-defined association type: note -> deal
