"""The sandbox's state in SQLite through SQLAlchemy Core: records, properties, associations, owners, files."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from sandbox import search_sql
from sandbox.errors import ApiError, bad_request, not_found
from sandbox.schema import (
    ALWAYS_RETURNED,
    BUILTIN_PROPERTIES,
    INVERSE_ASSOCIATION_TYPES,
    PropertyDef,
)
from sandbox.values import InvalidValue, coerce, instant_ms_or_none, iso_ms
from sandbox.webhooks import Change, association_detail

metadata = sa.MetaData()

meta_table = sa.Table(
    "meta", metadata, sa.Column("key", sa.String, primary_key=True), sa.Column("value", sa.String)
)
property_table = sa.Table(
    "properties",
    metadata,
    sa.Column("object_type", sa.String, primary_key=True),
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)
object_table = sa.Table(
    "objects",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("object_type", sa.String, nullable=False),
    sa.Column("archived", sa.Boolean, nullable=False, default=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("archived_ms", sa.BigInteger),
    # Wall-clock time of the last write; search hides records written within the visibility lag.
    sa.Column("written_ms", sa.BigInteger, nullable=False),
    sa.Column("props", sa.Text, nullable=False),
    # A record merged into another: reads of its id answer with the record it became.
    sa.Column("merged_into", sa.BigInteger),
    sa.Index("ix_objects_list", "object_type", "archived", "id"),
    sa.Index("ix_objects_modified", "object_type", "archived", "updated_ms", "id"),
)
history_table = sa.Table(
    "property_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("object_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("value", sa.String),
    sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
)
unique_table = sa.Table(
    "unique_values",
    metadata,
    sa.Column("object_type", sa.String, primary_key=True),
    sa.Column("property", sa.String, primary_key=True),
    sa.Column("value", sa.String, primary_key=True),
    sa.Column("object_id", sa.BigInteger, nullable=False),
    # A write replaces a record's unique values by its id: without this, a scan per write.
    sa.Index("ix_unique_values_object", "object_type", "property", "object_id"),
)
association_table = sa.Table(
    "associations",
    metadata,
    sa.Column("from_type", sa.String, primary_key=True),
    sa.Column("from_id", sa.BigInteger, primary_key=True),
    sa.Column("to_type", sa.String, primary_key=True),
    sa.Column("to_id", sa.BigInteger, primary_key=True),
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("category", sa.String, nullable=False),
)
owner_table = sa.Table(
    "owners",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("email", sa.String, nullable=False, index=True),
    sa.Column("first_name", sa.String, nullable=False),
    sa.Column("last_name", sa.String, nullable=False),
    sa.Column("archived", sa.Boolean, nullable=False, default=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)
file_table = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("extension", sa.String, nullable=False),
    sa.Column("folder_path", sa.String, nullable=False),
    sa.Column("access", sa.String, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("archived", sa.Boolean, nullable=False, default=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


def make_engine(db_path: str | None) -> Engine:
    """A SQLite engine (a file, or in memory when db_path is None) with the sandbox's SQL functions."""
    if db_path:
        engine = sa.create_engine(f"sqlite:///{db_path}", connect_args={"check_same_thread": False})
    else:
        engine = sa.create_engine(
            "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool
        )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")
        search_sql.register_functions(dbapi_conn)

    metadata.create_all(engine)
    for index in unique_table.indexes:  # create_all adds no index to a table kept from before
        index.create(engine, checkfirst=True)
    with engine.begin() as conn:  # a portal file kept from an earlier version lacks newer columns
        columns = {c["name"] for c in sa.inspect(conn).get_columns("objects")}
        if "merged_into" not in columns:
            conn.execute(sa.text("ALTER TABLE objects ADD COLUMN merged_into BIGINT"))
    return engine


@dataclass(frozen=True)
class WriteError:
    """One input of a batch that could not be written, in HubSpot's per-input error shape."""

    status: int
    category: str
    message: str
    context: dict[str, list[str]]

    def as_json(self) -> dict[str, Any]:
        """The entry in a batch response's `errors` list."""
        return {
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": self.context,
            "errors": [],
            "links": {},
        }


class Store:
    """All reads and writes of one sandbox portal; every method runs inside the caller's transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Told of every committed transaction's changes (the webhooks); rolled back ones are forgotten.
        self.on_commit: Callable[[list[Change]], None] | None = None
        with engine.begin() as conn:
            self.id_base = self._id_base(conn)
            self.portal_id = self._portal_id(conn)
        sa.event.listen(engine, "commit", self._committed)
        sa.event.listen(engine, "rollback", lambda conn: conn.info.pop(_CHANGES, None))

    # ---- changes, for webhooks -------------------------------------------------------------
    def _changed(self, conn: Connection, change: Change) -> None:
        if self.on_commit is not None:
            conn.info.setdefault(_CHANGES, []).append(change)

    def _committed(self, conn: Connection) -> None:
        changes = conn.info.pop(_CHANGES, None)
        if changes and self.on_commit is not None:
            self.on_commit(changes)

    def _portal_id(self, conn: Connection) -> int:
        """The portal's number (HubSpot's portalId / Hub ID), kept with its data."""
        row = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == "portal_id")
        ).first()
        if row is None:
            number = random.randint(10_000_000, 99_999_999)
            conn.execute(sa.insert(meta_table).values(key="portal_id", value=str(number)))
            return number
        return int(row.value)

    # ---- ids -------------------------------------------------------------------------------
    def _id_base(self, conn: Connection) -> int:
        row = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == "next_id")
        ).first()
        if row is None:
            # Each portal gets its own id range, so ids from two sandboxes never look alike.
            start = random.randint(10, 899) * 10_000_000
            conn.execute(sa.insert(meta_table).values(key="next_id", value=str(start)))
            return start
        return int(row.value)

    def next_ids(self, conn: Connection, count: int) -> list[int]:
        """Reserve `count` fresh ids shared by records, owners and files."""
        row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "next_id")).one()
        start = int(row.value) + 1
        conn.execute(
            sa.update(meta_table)
            .where(meta_table.c.key == "next_id")
            .values(value=str(start + count - 1))
        )
        return list(range(start, start + count))

    def reset(self) -> None:
        """Forget everything (the `/_sandbox/reset` endpoint)."""
        with self.engine.begin() as conn:
            for table in (
                property_table,
                object_table,
                history_table,
                unique_table,
                association_table,
                owner_table,
                file_table,
            ):
                conn.execute(sa.delete(table))

    # ---- properties ------------------------------------------------------------------------
    def properties(self, conn: Connection, object_type: str) -> dict[str, PropertyDef]:
        """Every property of an object type, built-in and custom, by name."""
        props = {p.name: p for p in BUILTIN_PROPERTIES[object_type]}
        rows = conn.execute(
            sa.select(property_table.c.definition).where(
                property_table.c.object_type == object_type
            )
        )
        for (definition,) in rows:
            prop = PropertyDef(**{**definition, "options": tuple(definition["options"])})
            props[prop.name] = prop
        return props

    def property_created_ms(self, conn: Connection, object_type: str) -> dict[str, int]:
        """Creation times of custom properties."""
        rows = conn.execute(
            sa.select(property_table.c.name, property_table.c.created_ms).where(
                property_table.c.object_type == object_type
            )
        )
        return {name: created for name, created in rows}

    def create_property(self, conn: Connection, object_type: str, prop: PropertyDef) -> None:
        """Add a custom property; 409 when the name is taken."""
        if prop.name in self.properties(conn, object_type):
            raise ApiError(
                409, f"Property named '{prop.name}' already exists.", "OBJECT_ALREADY_EXISTS"
            )
        definition = {
            "name": prop.name,
            "type": prop.type,
            "field_type": prop.field_type,
            "label": prop.label,
            "group_name": prop.group_name,
            "description": prop.description,
            "options": list(prop.options),
            "has_unique_value": prop.has_unique_value,
            "custom": True,
        }
        conn.execute(
            sa.insert(property_table).values(
                object_type=object_type, name=prop.name, definition=definition, created_ms=now_ms()
            )
        )

    # ---- owners ----------------------------------------------------------------------------
    def owner_ids(self, conn: Connection) -> frozenset[str]:
        """Ids of active owners (what `hubspot_owner_id` accepts)."""
        rows = conn.execute(sa.select(owner_table.c.id).where(owner_table.c.archived.is_(False)))
        return frozenset(str(r.id) for r in rows)

    def add_owner(
        self, conn: Connection, email: str, first: str, last: str, archived: bool = False
    ) -> dict:
        """Create an owner and return it as the owners API shows it."""
        (owner_id,) = self.next_ids(conn, 1)
        stamp = now_ms()
        conn.execute(
            sa.insert(owner_table).values(
                id=owner_id,
                user_id=owner_id % 100_000_000,
                email=email,
                first_name=first,
                last_name=last,
                archived=archived,
                created_ms=stamp,
                updated_ms=stamp,
            )
        )
        return self.owner_json(
            conn.execute(sa.select(owner_table).where(owner_table.c.id == owner_id)).one()
        )

    @staticmethod
    def owner_json(row) -> dict:
        """An owner row in the owners API's shape."""
        return {
            "id": str(row.id),
            "email": row.email,
            "firstName": row.first_name,
            "lastName": row.last_name,
            "userId": row.user_id,
            "type": "PERSON",
            "createdAt": iso_ms(row.created_ms),
            "updatedAt": iso_ms(row.updated_ms),
            "archived": bool(row.archived),
            "teams": [],
        }

    def list_owners(
        self, conn: Connection, email: str | None, after: int, limit: int, archived: bool
    ) -> list:
        """Owners ordered by id, after an id cursor."""
        query = (
            sa.select(owner_table)
            .where(owner_table.c.archived.is_(archived), owner_table.c.id > after)
            .order_by(owner_table.c.id)
            .limit(limit + 1)
        )
        if email:
            query = query.where(sa.func.lower(owner_table.c.email) == email.lower())
        return list(conn.execute(query))

    # ---- records ---------------------------------------------------------------------------
    def coerce_properties(
        self,
        conn: Connection,
        object_type: str,
        values: Mapping[str, Any],
        props: dict[str, PropertyDef] | None = None,
    ) -> dict[str, str | None]:
        """Validate and canonicalise written values; raise a 400 listing every bad one."""
        props = props or self.properties(conn, object_type)
        owners: frozenset[str] | None = None
        problems: list[dict[str, Any]] = []
        clean: dict[str, str | None] = {}
        for name, value in values.items():
            prop = props.get(name)
            if prop is None:
                problems.append(
                    _problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                )
                continue
            if prop.read_only:
                problems.append(
                    _problem(
                        name,
                        "READ_ONLY_VALUE",
                        f'"{name}" is a read only property; its value cannot be set.',
                    )
                )
                continue
            if name == "hubspot_owner_id" and owners is None:
                owners = self.owner_ids(conn)
            try:
                clean[name] = coerce(prop, value, owners)
            except InvalidValue as exc:
                problems.append(_problem(name, exc.code, str(exc)))
        if problems:
            raise ApiError(
                400,
                "Property values were not valid: " + json.dumps(problems),
                "VALIDATION_ERROR",
                errors=[
                    {
                        "message": p["message"],
                        "code": p["error"],
                        "context": {"propertyName": [p["name"]]},
                    }
                    for p in problems
                ],
            )
        return clean

    def unique_conflict(
        self,
        conn: Connection,
        object_type: str,
        values: Mapping[str, str | None],
        props: dict[str, PropertyDef],
        own_id: int | None,
    ) -> WriteError | None:
        """The error for a unique-value property already held by another record, if any."""
        for name, value in values.items():
            if value is None or not props[name].has_unique_value:
                continue
            holder = conn.execute(
                sa.select(unique_table.c.object_id).where(
                    unique_table.c.object_type == object_type,
                    unique_table.c.property == name,
                    unique_table.c.value == value,
                )
            ).scalar()
            if holder is not None and holder != own_id:
                return WriteError(
                    400,
                    "VALIDATION_ERROR",
                    f"A {object_type[:-1]} with {name}={value} already exists (id {holder}); "
                    f"{name} has unique values.",
                    {"propertyName": [name], "conflictingObjectId": [str(holder)]},
                )
        return None

    def _index_unique(
        self,
        conn: Connection,
        object_type: str,
        object_id: int,
        values: Mapping[str, str | None],
        props: dict[str, PropertyDef],
    ) -> None:
        for name, value in values.items():
            if not props[name].has_unique_value:
                continue
            conn.execute(
                sa.delete(unique_table).where(
                    unique_table.c.object_type == object_type,
                    unique_table.c.property == name,
                    unique_table.c.object_id == object_id,
                )
            )
            if value is not None:
                conn.execute(
                    sa.insert(unique_table).values(
                        object_type=object_type, property=name, value=value, object_id=object_id
                    )
                )

    def create(
        self,
        conn: Connection,
        object_type: str,
        values: Mapping[str, str | None],
        props: dict[str, PropertyDef],
        stamp: int,
        remember: bool = True,
        announce: bool = True,
    ) -> int:
        """Insert a record with already-coerced values; the caller checked uniqueness."""
        (object_id,) = self.next_ids(conn, 1)
        stored = {k: v for k, v in values.items() if v is not None}
        conn.execute(
            sa.insert(object_table).values(
                id=object_id,
                object_type=object_type,
                archived=False,
                created_ms=stamp,
                updated_ms=stamp,
                written_ms=now_ms(),
                props=json.dumps(stored),
            )
        )
        self._index_unique(conn, object_type, object_id, stored, props)
        if remember:
            self._remember(conn, object_id, stored, stamp)
        if announce:
            self._changed(conn, Change("creation", object_type, object_id, now_ms()))
            self._announce_values(conn, object_type, object_id, stored)
        return object_id

    def _announce_values(
        self, conn: Connection, object_type: str, object_id: int, values: Mapping[str, str | None]
    ) -> None:
        at = now_ms()
        for name, value in values.items():
            detail = {"propertyName": name, "propertyValue": "" if value is None else value}
            self._changed(conn, Change("propertyChange", object_type, object_id, at, detail))

    def _remember(
        self, conn: Connection, object_id: int, values: Mapping[str, str | None], stamp: int
    ) -> None:
        """Add values to the records' property history (what propertiesWithHistory shows)."""
        if values:
            conn.execute(
                sa.insert(history_table),
                [
                    {"object_id": object_id, "name": k, "value": v, "timestamp_ms": stamp}
                    for k, v in values.items()
                ],
            )

    def history(
        self, conn: Connection, object_ids: Iterable[int], names: Iterable[str]
    ) -> dict[int, dict[str, list[tuple[str | None, int]]]]:
        """(value, timestamp) per record and property, newest first."""
        ids, wanted = list(object_ids), list(names)
        found: dict[int, dict[str, list[tuple[str | None, int]]]] = {i: {} for i in ids}
        if not ids or not wanted:
            return found
        rows = conn.execute(
            sa.select(history_table)
            .where(history_table.c.object_id.in_(ids), history_table.c.name.in_(wanted))
            .order_by(history_table.c.timestamp_ms.desc(), history_table.c.id.desc())
        )
        for row in rows:
            found[row.object_id].setdefault(row.name, []).append((row.value, row.timestamp_ms))
        return found

    def update(
        self,
        conn: Connection,
        object_type: str,
        row,
        values: Mapping[str, str | None],
        props: dict[str, PropertyDef],
        stamp: int,
    ) -> None:
        """Apply coerced values to an existing active record."""
        stored = json.loads(row.props)
        changed = {k: v for k, v in values.items() if stored.get(k) != v}
        for name, value in values.items():
            if value is None:
                stored.pop(name, None)
            else:
                stored[name] = value
        conn.execute(
            sa.update(object_table)
            .where(object_table.c.id == row.id)
            .values(props=json.dumps(stored), updated_ms=stamp, written_ms=now_ms())
        )
        self._index_unique(conn, object_type, row.id, values, props)
        self._remember(conn, row.id, changed, stamp)
        self._announce_values(conn, object_type, row.id, changed)

    def merge(
        self,
        conn: Connection,
        object_type: str,
        primary,
        secondary,
        props: dict[str, PropertyDef],
        stamp: int,
    ) -> int:
        """Merge two active records into a new one, as HubSpot does: the primary's values win, the
        secondary fills the gaps; both ids then answer with the new record (`hs_merged_object_ids`
        lists them); associations and property history move to it; the originals are archived."""
        first, second = json.loads(primary.props), json.loads(secondary.props)
        merged_ids = {str(primary.id), str(secondary.id)}
        for old in (first, second):
            merged_ids |= {i for i in (old.get("hs_merged_object_ids") or "").split(";") if i}
        values = {**second, **first, "hs_merged_object_ids": ";".join(sorted(merged_ids))}
        for row in (primary, secondary):
            self.archive(conn, object_type, row.id, stamp, announce=False)
        new_id = self.create(
            conn, object_type, values, props, stamp, remember=False, announce=False
        )
        merge = {
            "primaryObjectId": primary.id,
            "mergedObjectIds": [secondary.id],
            "newObjectId": new_id,
        }
        self._changed(conn, Change("merge", object_type, primary.id, now_ms(), merge))
        originals = [primary.id, secondary.id]
        conn.execute(
            sa.update(object_table)
            .where(object_table.c.id.in_(originals))
            .values(merged_into=new_id)
        )
        conn.execute(
            sa.update(history_table)
            .where(history_table.c.object_id.in_(originals))
            .values(object_id=new_id)
        )
        for old_id in originals:
            outgoing = conn.execute(
                sa.select(association_table).where(association_table.c.from_id == old_id)
            ).all()
            for link in outgoing:
                self.associate(
                    conn, object_type, new_id, link.to_type, link.to_id, link.type_id, link.category
                )
            conn.execute(
                sa.delete(association_table).where(
                    sa.or_(
                        association_table.c.from_id == old_id, association_table.c.to_id == old_id
                    )
                )
            )
        return new_id

    def archive(
        self, conn: Connection, object_type: str, object_id: int, stamp: int, announce: bool = True
    ) -> bool:
        """Archive a record (hs_lastmodifieddate unchanged); False when it was not active."""
        result = conn.execute(
            sa.update(object_table)
            .where(
                object_table.c.id == object_id,
                object_table.c.object_type == object_type,
                object_table.c.archived.is_(False),
            )
            .values(archived=True, archived_ms=stamp, written_ms=now_ms())
        )
        if result.rowcount:
            conn.execute(
                sa.delete(unique_table).where(
                    unique_table.c.object_type == object_type, unique_table.c.object_id == object_id
                )
            )
            if announce:
                self._changed(conn, Change("deletion", object_type, object_id, now_ms()))
        return bool(result.rowcount)

    def find(
        self,
        conn: Connection,
        object_type: str,
        key: str,
        id_property: str | None = None,
        archived: bool = False,
    ):
        """The record row with this id (or unique property value), or None."""
        if id_property and id_property != "hs_object_id":
            props = self.properties(conn, object_type)
            if id_property not in props or not props[id_property].has_unique_value:
                raise bad_request(
                    f"Property {id_property} is not a unique identifier property.",
                    propertyName=id_property,
                )
            if archived:
                return None
            object_id = conn.execute(
                sa.select(unique_table.c.object_id).where(
                    unique_table.c.object_type == object_type,
                    unique_table.c.property == id_property,
                    unique_table.c.value == key,
                )
            ).scalar()
            if object_id is None:
                return None
            key = str(object_id)
        if not str(key).isdigit():
            return None
        row = conn.execute(
            sa.select(object_table).where(
                object_table.c.id == int(key), object_table.c.object_type == object_type
            )
        ).first()
        for _ in range(20):  # a merged id answers with the record it became (merges can chain)
            if row is None or not row.archived or archived or row.merged_into is None:
                break
            row = conn.execute(
                sa.select(object_table).where(object_table.c.id == row.merged_into)
            ).first()
        return row if row is not None and bool(row.archived) == archived else None

    def get_or_404(
        self, conn: Connection, object_type: str, key: str, id_property: str | None = None
    ):
        """Like find, but a HubSpot 404 when the record is missing."""
        row = self.find(conn, object_type, key, id_property)
        if row is None:
            raise not_found(object_type, key)
        return row

    def list_page(
        self, conn: Connection, object_type: str, after: int, limit: int, archived: bool
    ) -> list:
        """One page of records in id order, fetching one extra row to know whether more follow."""
        return list(
            conn.execute(
                sa.select(object_table)
                .where(
                    object_table.c.object_type == object_type,
                    object_table.c.archived.is_(archived),
                    object_table.c.id > after,
                )
                .order_by(object_table.c.id)
                .limit(limit + 1)
            )
        )

    def rows_by_ids(
        self, conn: Connection, object_type: str, ids: Iterable[int], archived: bool
    ) -> dict[int, Any]:
        """Rows for many ids at once."""
        id_list = list(ids)
        if not id_list:
            return {}
        rows = conn.execute(
            sa.select(object_table).where(
                object_table.c.object_type == object_type,
                object_table.c.archived.is_(archived),
                object_table.c.id.in_(id_list),
            )
        )
        return {row.id: row for row in rows}

    def record_json(
        self,
        row,
        wanted: Iterable[str] | None,
        object_type: str,
        defaults: Iterable[str],
        known: Mapping[str, PropertyDef],
    ) -> dict[str, Any]:
        """A record as HubSpot returns it: string values, requested properties, timestamps."""
        stored = json.loads(row.props)
        computed = {
            "hs_object_id": str(row.id),
            "createdate": iso_ms(row.created_ms),
            "hs_lastmodifieddate": iso_ms(row.updated_ms),
        }
        names = list(wanted) if wanted is not None else list(defaults)
        properties: dict[str, str | None] = {}
        for name in [*names, *ALWAYS_RETURNED]:
            if name in computed:
                properties[name] = computed[name]
            elif name in known:
                properties[name] = stored.get(name)
        body: dict[str, Any] = {
            "id": str(row.id),
            "properties": properties,
            "createdAt": iso_ms(row.created_ms),
            "updatedAt": iso_ms(row.updated_ms),
            "archived": bool(row.archived),
        }
        if row.archived and row.archived_ms is not None:
            body["archivedAt"] = iso_ms(row.archived_ms)
        return body

    # ---- associations ----------------------------------------------------------------------
    def associate(
        self,
        conn: Connection,
        from_type: str,
        from_id: int,
        to_type: str,
        to_id: int,
        type_id: int,
        category: str = "HUBSPOT_DEFINED",
    ) -> None:
        """Create an association and its inverse (idempotent)."""
        inverse = INVERSE_ASSOCIATION_TYPES.get(type_id, type_id)
        for row in (
            (from_type, from_id, to_type, to_id, type_id),
            (to_type, to_id, from_type, from_id, inverse),
        ):
            exists = conn.execute(
                sa.select(association_table.c.from_id).where(
                    association_table.c.from_type == row[0],
                    association_table.c.from_id == row[1],
                    association_table.c.to_type == row[2],
                    association_table.c.to_id == row[3],
                    association_table.c.type_id == row[4],
                )
            ).first()
            if exists is None:
                conn.execute(
                    sa.insert(association_table).values(
                        from_type=row[0],
                        from_id=row[1],
                        to_type=row[2],
                        to_id=row[3],
                        type_id=row[4],
                        category=category,
                    )
                )
                self._association_changed(conn, row[0], row[1], row[2], row[3], False)

    def dissociate(
        self, conn: Connection, from_type: str, from_id: int, to_type: str, to_id: int
    ) -> None:
        """Remove every association between two records, both directions."""
        for a_type, a_id, b_type, b_id in (
            (from_type, from_id, to_type, to_id),
            (to_type, to_id, from_type, from_id),
        ):
            removed = conn.execute(
                sa.delete(association_table).where(
                    association_table.c.from_type == a_type,
                    association_table.c.from_id == a_id,
                    association_table.c.to_type == b_type,
                    association_table.c.to_id == b_id,
                )
            )
            if removed.rowcount:
                self._association_changed(conn, a_type, a_id, b_type, b_id, True)

    def _association_changed(
        self,
        conn: Connection,
        from_type: str,
        from_id: int,
        to_type: str,
        to_id: int,
        removed: bool,
    ) -> None:
        """An associationChange event, from each side an app can subscribe to (deals)."""
        if from_type == "deals":
            detail = {
                "fromObjectId": from_id,
                **association_detail(from_type, to_type, to_id, removed),
            }
            self._changed(conn, Change("associationChange", from_type, from_id, now_ms(), detail))

    def associations_of(
        self, conn: Connection, from_type: str, from_ids: Iterable[int], to_type: str
    ) -> dict[int, list[tuple[int, int, str]]]:
        """(to_id, type_id, category) per from id, to active records only, ordered by to_id."""
        ids = list(from_ids)
        result: dict[int, list[tuple[int, int, str]]] = {i: [] for i in ids}
        if not ids:
            return result
        rows = conn.execute(
            sa.select(association_table)
            .join(object_table, object_table.c.id == association_table.c.to_id)
            .where(
                association_table.c.from_type == from_type,
                association_table.c.from_id.in_(ids),
                association_table.c.to_type == to_type,
                object_table.c.archived.is_(False),
            )
            .order_by(association_table.c.to_id, association_table.c.type_id)
        )
        for row in rows:
            result[row.from_id].append((row.to_id, row.type_id, row.category))
        return result

    # ---- files -----------------------------------------------------------------------------
    def add_file(
        self, conn: Connection, name: str, folder_path: str, access: str, content: bytes
    ) -> int:
        """Store an uploaded file and return its id."""
        (file_id,) = self.next_ids(conn, 1)
        stem, _, extension = name.rpartition(".")
        stamp = now_ms()
        conn.execute(
            sa.insert(file_table).values(
                id=file_id,
                name=stem or name,
                extension=extension if stem else "",
                folder_path=folder_path,
                access=access,
                size=len(content),
                content=content,
                archived=False,
                created_ms=stamp,
                updated_ms=stamp,
            )
        )
        return file_id

    def file_row(self, conn: Connection, file_id: str, with_content: bool = False):
        """A file's row (active only), or None."""
        if not str(file_id).isdigit():
            return None
        columns = [c for c in file_table.c if with_content or c.name != "content"]
        return conn.execute(
            sa.select(*columns).where(
                file_table.c.id == int(file_id), file_table.c.archived.is_(False)
            )
        ).first()

    def delete_file(self, conn: Connection, file_id: str) -> bool:
        """Archive a file; False when it did not exist."""
        if not str(file_id).isdigit():
            return False
        result = conn.execute(
            sa.update(file_table)
            .where(file_table.c.id == int(file_id), file_table.c.archived.is_(False))
            .values(archived=True, updated_ms=now_ms())
        )
        return bool(result.rowcount)

    # ---- bulk seeding ----------------------------------------------------------------------
    def bulk_insert(
        self,
        conn: Connection,
        object_type: str,
        rows: list[dict[str, str]],
        stamp: int,
        step: int = 0,
    ) -> list[int]:
        """Insert many records with coerced values, the n-th stamped `stamp + n * step` (seeding, benchmarks)."""
        ids = self.next_ids(conn, len(rows))
        written = now_ms()
        conn.execute(
            sa.insert(object_table),
            [
                {
                    "id": object_id,
                    "object_type": object_type,
                    "archived": False,
                    "created_ms": stamp + n * step,
                    "updated_ms": stamp + n * step,
                    "written_ms": written,
                    "props": json.dumps({k: v for k, v in values.items() if v is not None}),
                }
                for n, (object_id, values) in enumerate(zip(ids, rows, strict=True))
            ],
        )
        return ids


_CHANGES = "sandbox_changes"  # a connection's uncommitted changes, in its info


def _problem(name: str, code: str, message: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": code, "name": name}


__all__ = ["Store", "WriteError", "instant_ms_or_none", "make_engine", "now_ms", "object_table"]
