"""What the shared steps need of any object's plan (deals and notes plans both have it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from dealsync.model import Adopt, Conflict, Delete, FieldChange, Side, Skip, Value


class PlannedCreate(Protocol):
    """A create: of a twin on `target`, from `source_id`, by `key`, with the base both will hold."""

    @property
    def target(self) -> Side: ...
    @property
    def source_id(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def base(self) -> Mapping[str, Value]: ...


class PlannedUpdate(Protocol):
    """An update of a record of a link, with what changed."""

    @property
    def target(self) -> Side: ...
    @property
    def record_id(self) -> str: ...
    @property
    def link_id(self) -> int | None: ...
    @property
    def changes(self) -> tuple[FieldChange, ...]: ...


class ObjectPlan(Protocol):
    """What the shared commit needs of any object's plan."""

    @property
    def creates(self) -> Sequence[PlannedCreate]: ...
    @property
    def updates(self) -> Sequence[PlannedUpdate]: ...
    @property
    def deletes(self) -> Sequence[Delete]: ...
    @property
    def adopts(self) -> Sequence[Adopt]: ...
    @property
    def conflicts(self) -> Sequence[Conflict]: ...
    @property
    def skips(self) -> Sequence[Skip]: ...
    @property
    def new_bases(self) -> Mapping[int, dict[str, Value]]: ...
