"""One schema per message for both release lines: Kafka 3.9.0's and 4.3.1's, merged.

kwire speaks to brokers of both lines, so each generated class covers every version either
release defines. The rule for a version both define is that the newer release decides:
4.3.1 dropped old versions of some APIs (kept here from 3.9.0) and added versions, fields,
records and APIs (taken from 4.3.1); a version 3.9.0 marked unstable and 4.3.1 later
settled differently (the share-group APIs' v0) is coded as 4.3.1 codes it.

:func:`merge_specs` builds the merged :class:`MessageSpec` field by field, each field's
version ranges being the union of the ranges it has in the versions each release decides,
and then proves the result: for every version, the merged schema's projection (the fields
present at that version, with everything that shapes their bytes) must equal the
projection of the release that decides that version. A merge that a version range cannot
express raises :class:`SchemaError` instead of generating wrong code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from codegen.schema import (
    MAX_VERSION,
    NO_VERSIONS,
    FieldSpec,
    MessageSpec,
    SchemaError,
    StructSpec,
    Versions,
    register_inline_structs,
)

__all__ = ["merge_specs", "projection", "version_owner"]


def version_owner(old: MessageSpec, new: MessageSpec, version: int) -> MessageSpec | None:
    """The spec that decides how ``version`` is coded: the newer release wherever it has it."""
    if version in new.valid_versions:
        return new
    if version in old.valid_versions:
        return old
    return None


def merge_specs(old: MessageSpec, new: MessageSpec) -> MessageSpec:
    """One spec coding ``old``'s versions that ``new`` dropped and every version of ``new``.

    Raises SchemaError when the two cannot be one message (different type or api key),
    when a merged range would have a hole, or when the proof by projection fails.
    """
    where = f"message {new.name}"
    if old.type != new.type or old.api_key != new.api_key:
        raise SchemaError(new.path, where, f"{old.path} is a different message")
    old_only = _minus(old.valid_versions, new.valid_versions)
    merger = _Merger(old, new, old_only)
    valid = merger.union(old.valid_versions, new.valid_versions, "validVersions")
    flexible = merger.union(old.flexible_versions, new.flexible_versions, "flexibleVersions")
    if not flexible.empty:
        flexible = Versions(flexible.lowest, MAX_VERSION)
    new_live = not new.valid_versions.empty
    common: dict[str, StructSpec] = {}
    for name in _ordered_union(
        [n for n, s in new.structs.items() if s.common],
        [n for n, s in old.structs.items() if s.common],
    ):
        a, b = old.structs.get(name), new.structs.get(name)
        versions = merger.union(
            a.versions if a else NO_VERSIONS, b.versions if b else NO_VERSIONS, name
        )
        fields = merger.fields(a.fields if a else [], b.fields if b else [], name, versions)
        common[name] = StructSpec(name, versions, fields, common=True)
    fields = merger.fields(old.fields, new.fields, new.name, valid)
    structs = dict(common)
    register_inline_structs(fields, structs, new.path)
    merged = MessageSpec(
        path=new.path,
        name=new.name,
        type=new.type,
        api_key=new.api_key,
        valid_versions=valid,
        flexible_versions=flexible,
        fields=fields,
        structs=structs,
        listeners=sorted(set(old.listeners) | set(new.listeners)),
        latest_version_unstable=(
            new.latest_version_unstable if new_live else old.latest_version_unstable
        ),
        deprecated_versions=new.deprecated_versions if new_live else old.deprecated_versions,
    )
    for version in valid:
        owner = version_owner(old, new, version)
        assert owner is not None
        ours, theirs = projection(merged, version), projection(owner, version)
        # The merged class may hold fields the deciding release does not know at all: they
        # are absent from that version, so they read as their default and are not written.
        if ours[:3] != theirs[:3] or any(ours[3].get(k) != v for k, v in theirs[3].items()):
            raise SchemaError(
                new.path, where, f"merging with {old.path} changes version {version}'s coding"
            )
    return merged


Projection = tuple[bool, bool, tuple[object, ...], dict[str, object]]


def projection(spec: MessageSpec, version: int) -> Projection:
    """Everything that shapes ``version``'s bytes and decoded values, as a comparable tuple."""
    flexible = version in spec.flexible_versions
    absent: dict[str, object] = {}
    present = _project(spec, spec.fields, version, flexible, absent, "")
    return (version in spec.valid_versions, flexible, present, absent)


def _project(
    spec: MessageSpec,
    fields: list[FieldSpec],
    version: int,
    flexible: bool,
    absent: dict[str, object],
    path: str,
) -> tuple[object, ...]:
    """The present fields in order; ``absent`` collects the others, by path."""
    out: list[object] = []
    for f in fields:
        if version not in f.versions:
            # An absent field still reads as its default and refuses other values on write.
            absent[path + f.name] = (str(f.type), f.default, f.ignorable)
            continue
        children: tuple[object, ...] = ()
        if f.type.struct is not None:
            struct_fields = spec.structs[f.type.struct].fields
            children = _project(spec, struct_fields, version, flexible, absent, f"{path}{f.name}.")
        field_flexible = (
            version in f.flexible_override if f.flexible_override is not None else flexible
        )
        tagged = version in f.tagged_versions
        out.append(
            (
                f.name,
                str(f.type),
                version in f.nullable_versions,
                tagged,
                f.tag if tagged else None,
                f.default,
                field_flexible,
                children,
            )
        )
    return tuple(out)


class _Merger:
    def __init__(self, old: MessageSpec, new: MessageSpec, old_only: set[int]) -> None:
        self.old = old
        self.new = new
        self.old_only = old_only
        self.new_versions = set(new.valid_versions)
        self.highest = max(self.old_only | self.new_versions, default=-1)

    def union(self, old: Versions, new: Versions, what: str) -> Versions:
        """``old`` where the old release decides, ``new`` where the new one does, as one range."""
        versions = {v for v in self.old_only if v in old} | {
            v for v in self.new_versions if v in new
        }
        if not versions:
            return NO_VERSIONS
        low, high = min(versions), max(versions)
        if len(versions) != high - low + 1:
            raise SchemaError(
                self.new.path, what, f"merged versions {sorted(versions)} have a hole"
            )
        # Keep an open end ("5+") where it reaches the newest version and the deciding
        # release has one.
        top = new if high in self.new_versions else old
        if top.highest == MAX_VERSION and high == self.highest:
            high = MAX_VERSION
        return Versions(low, high)

    def fields(
        self, old: list[FieldSpec], new: list[FieldSpec], owner: str, parent: Versions
    ) -> list[FieldSpec]:
        old_by_name = {f.name: f for f in old}
        new_by_name = {f.name: f for f in new}
        merged: list[FieldSpec] = []
        for name in _ordered_union([f.name for f in new], [f.name for f in old]):
            a, b = old_by_name.get(name), new_by_name.get(name)
            f = self.field(a, b, f"{owner}.{name}", parent)
            if f is not None:
                merged.append(f)
        return merged

    def field(
        self, old: FieldSpec | None, new: FieldSpec | None, where: str, parent: Versions
    ) -> FieldSpec | None:
        def part(f: FieldSpec | None, attribute: str) -> Versions:
            return getattr(f, attribute) if f is not None else NO_VERSIONS

        versions = self.union(part(old, "versions"), part(new, "versions"), where)
        if versions.empty:
            return None
        # Attributes that are not per-version come from the release that uses the field
        # in the newest version; the projection proof catches a disagreement.
        uses_new = new is not None and not new.versions.intersect(self.new.valid_versions).empty
        base = new if uses_new else old
        assert base is not None
        old_override = old.flexible_override if old is not None else None
        new_override = new.flexible_override if new is not None else None
        override = None
        if old_override is not None or new_override is not None:
            override = self.union(old_override or NO_VERSIONS, new_override or NO_VERSIONS, where)
        return dataclasses.replace(
            base,
            versions=versions,
            ignorable=self.ignorable(old, new, versions, parent, where),
            nullable_versions=self.union(
                part(old, "nullable_versions"), part(new, "nullable_versions"), where
            ),
            tagged_versions=self.union(
                part(old, "tagged_versions"), part(new, "tagged_versions"), where
            ),
            flexible_override=override,
            fields=self.fields(
                old.fields if old else [], new.fields if new else [], where, versions
            ),
        )

    def ignorable(
        self,
        old: FieldSpec | None,
        new: FieldSpec | None,
        versions: Versions,
        parent: Versions,
        where: str,
    ) -> bool:
        """Whether a non-default value may be dropped where the field is absent: each
        release decides for the versions it owns (RequestHeader's ClientId in v0)."""
        flags = set()
        for version in set(self.old_only) | self.new_versions:
            if version in parent and version not in versions:
                f = old if version in self.old_only else new
                if f is not None:  # a release without the field has no say
                    flags.add(f.ignorable)
        if len(flags) > 1:
            raise SchemaError(self.new.path, where, "ignorable differs between the releases")
        if flags:
            return flags.pop()
        base = new if new is not None else old
        assert base is not None
        return base.ignorable


def _minus(a: Versions, b: Versions) -> set[int]:
    return {v for v in a if v not in b}


def _ordered_union(first: Iterable[str], second: Iterable[str]) -> list[str]:
    """``first`` in order, with each name only ``second`` has placed after its predecessor there."""
    out = list(first)
    previous: str | None = None
    for name in second:
        if name not in out:
            out.insert(out.index(previous) + 1 if previous is not None else 0, name)
        previous = name
    return out
