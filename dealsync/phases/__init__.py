"""The synced objects: what each one brings to the shared steps of `dealsync/pipeline/`.

`deals` (registrations, conversions, shared fields), `notes` (shared notes and comments, their files),
`deal_files` (files of a CRM that keeps them on the deal).
"""
