"""The steps every synced object goes through (ARCHITECTURE.md): read, check, write, record.

A phase (`dealsync/phases/`) says what differs per object: how its changes are found, what may cross,
how it is planned. These modules do the rest, once, for deals and notes alike.
"""
