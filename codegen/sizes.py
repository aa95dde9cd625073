"""The fewest bytes each struct, field and array element can take on the wire, per version.

Readers use these to reject an array whose claimed count cannot fit in the bytes left
before they reserve or read anything: a count of n elements of at least m bytes each needs
n * m bytes. Kafka's own readers only demand one byte per element (MessageDataGenerator's
"Tried to allocate a collection of size ..."); the tighter bound rejects the same inputs
sooner and keeps what a C reader reserves proportional to the bytes it was given.

Minimums, at a version where the field is present and not tagged:
- a fixed-width value: its width (int32 = 4, uuid = 16);
- a string, bytes or records value, or an array: its length prefix (2 for a rigid string,
  4 for rigid bytes, records and arrays, 1 for any compact length); null costs the same;
- a nullable struct: its one-byte marker; a struct: the sum of its fields' minimums,
  plus one byte for its tagged-field count where the version is flexible.
Absent and tagged fields cost nothing.
"""

from __future__ import annotations

from codegen.plan import MessagePlan
from codegen.schema import FieldSpec, FieldType, Primitive

_RIGID_LENGTH = {Primitive.STRING: 2, Primitive.BYTES: 4, Primitive.RECORDS: 4}


class MinimumSizes:
    """Minimum encoded sizes for one message's structs, computed once per (struct, version)."""

    def __init__(self, message: MessagePlan) -> None:
        self.message = message
        self._structs: dict[tuple[str | None, int], int] = {}

    def field_flexible(self, f: FieldSpec, version: int) -> bool:
        if f.flexible_override is not None:
            return version in f.flexible_override
        return version in self.message.spec.flexible_versions

    def struct(self, name: str | None, version: int) -> int:
        """The minimum size of struct `name` (None: the message itself) at `version`."""
        key = (name, version)
        known = self._structs.get(key)
        if known is not None:
            return known
        plan = self.message.root if name is None else self.message.structs[name]
        total = sum(self.field(f.spec, version) for f in plan.fields)
        if version in self.message.spec.flexible_versions:
            total += 1  # the tagged-field count
        self._structs[key] = total
        return total

    def field(self, f: FieldSpec, version: int) -> int:
        """The minimum size of field `f` as its struct carries it at `version`."""
        if version not in f.versions or version in f.tagged_versions:
            return 0
        t = f.type
        if t.array:
            return 1 if self.field_flexible(f, version) else 4
        if t.struct is not None:
            if version in f.nullable_versions:
                return 1
            return self.struct(t.struct, version)
        return self.value(t, f, version)

    def element(self, f: FieldSpec, version: int) -> int:
        """The minimum size of one element of array field `f` at `version`."""
        t = f.type
        assert t.array, f.name
        element = t.element
        if element.struct is not None:
            return self.struct(element.struct, version)
        return self.value(element, f, version)

    def value(self, t: FieldType, f: FieldSpec, version: int) -> int:
        prim = t.primitive
        assert prim is not None
        if prim.fixed_width is not None:
            return prim.fixed_width
        return 1 if self.field_flexible(f, version) else _RIGID_LENGTH[prim]

    def array_bound(self, f: FieldSpec, version: int) -> int:
        """What readers multiply a claimed count by: the element minimum, at least 1.

        At least 1 so that an array of empty elements is still held to Kafka's bound of
        one byte per element, and a hostile count cannot make a reader loop for nothing.
        """
        return max(self.element(f, version), 1)
