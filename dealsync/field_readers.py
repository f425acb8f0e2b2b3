"""Read a record's mapped fields fast: each distinct raw text of a field is parsed once per run."""

from __future__ import annotations

from collections.abc import Mapping

from dealsync.model import BadValue, FieldRule, FieldType, Side, Value

# Dates, numbers, flags and options repeat across records; free texts rarely do, and are cheap.
MEMO_LIMIT = 4096
_UNSEEN = BadValue("not read yet")  # a marker: never stored, never raised


class FieldReader:
    """One field's reader on one side, remembering the canonical value of each text it parsed."""

    __slots__ = ("_memo", "_remembers", "_rule", "_side", "name", "prop")

    def __init__(self, rule: FieldRule, side: Side) -> None:
        self.name = rule.name
        self.prop = rule.prop(side)
        self._rule, self._side = rule, side
        self._memo: dict[str, Value | BadValue] = {}
        self._remembers = rule.type is not FieldType.STRING or bool(rule.value_map)

    def read(self, raw: Mapping[str, str | None]) -> Value:
        """The field's canonical value in a record's raw properties; raises BadValue."""
        text = raw.get(self.prop) if self.prop else None
        if text is None:
            return None
        if not self._remembers:
            return self._rule.read_text(self._side, text)
        found = self._memo.get(text, _UNSEEN)
        if found is _UNSEEN:
            found = self._parse(text)
        if isinstance(found, BadValue):
            raise BadValue(str(found))
        return found

    def _parse(self, text: str) -> Value | BadValue:
        try:
            found: Value | BadValue = self._rule.read_text(self._side, text)
        except BadValue as exc:
            found = exc
        if len(self._memo) >= MEMO_LIMIT:
            self._memo.clear()
        self._memo[text] = found
        return found
