"""Kafka's JSON message schema language: loading, validation and a typed model.

A schema file is JSON with `//` line comments. Each names a message (request, response,
header, metadata record or plain data), its valid and flexible versions, and a tree of
fields. Validation follows the rules Kafka's own generator enforces; every failure is a
`SchemaError` naming the file and the field, raised before any code is written.
"""

from __future__ import annotations

import base64
import enum
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_VERSION = 0x7FFF  # an open-ended range ("3+") reaches Short.MAX_VALUE, as in Kafka

_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_STRUCT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)


class SchemaError(Exception):
    """A schema file breaks a rule of the schema language."""

    def __init__(self, path: Path | str, where: str, problem: str) -> None:
        super().__init__(f"{path}: {where}: {problem}")
        self.path = str(path)
        self.where = where
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Versions:
    """An inclusive range of versions; empty when `lowest > highest`."""

    lowest: int
    highest: int

    @classmethod
    def parse(cls, text: str) -> Versions:
        text = text.strip()
        if text == "none":
            return NO_VERSIONS
        if text.endswith("+"):
            lowest = _parse_version(text[:-1], text)
            return cls(lowest, MAX_VERSION)
        if "-" in text:
            low, _, high = text.partition("-")
            lowest, highest = _parse_version(low, text), _parse_version(high, text)
            if lowest > highest:
                raise ValueError(f"invalid version range {text!r}: {lowest} is above {highest}")
            return cls(lowest, highest)
        version = _parse_version(text, text)
        return cls(version, version)

    @property
    def empty(self) -> bool:
        return self.lowest > self.highest

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and self.lowest <= version <= self.highest

    def intersect(self, other: Versions) -> Versions:
        lowest, highest = max(self.lowest, other.lowest), min(self.highest, other.highest)
        return Versions(lowest, highest) if lowest <= highest else NO_VERSIONS

    def contains_all(self, other: Versions) -> bool:
        return other.empty or (self.lowest <= other.lowest and other.highest <= self.highest)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(range(self.lowest, self.highest + 1))

    def __str__(self) -> str:
        if self.empty:
            return "none"
        if self.highest == MAX_VERSION:
            return f"{self.lowest}+"
        if self.lowest == self.highest:
            return str(self.lowest)
        return f"{self.lowest}-{self.highest}"


NO_VERSIONS = Versions(1, 0)


def _parse_version(text: str, whole: str) -> int:
    if not text.isdigit():
        raise ValueError(f"invalid version range {whole!r}")
    version = int(text)
    if version > MAX_VERSION:
        raise ValueError(f"invalid version range {whole!r}: {version} is above {MAX_VERSION}")
    return version


class Primitive(enum.Enum):
    BOOL = "bool"
    INT8 = "int8"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    FLOAT64 = "float64"
    UUID = "uuid"
    STRING = "string"
    BYTES = "bytes"
    RECORDS = "records"

    @property
    def fixed_width(self) -> int | None:
        return _FIXED_WIDTH.get(self)

    @property
    def struct_code(self) -> str:
        return _STRUCT_CODE[self]


_FIXED_WIDTH = {
    Primitive.BOOL: 1,
    Primitive.INT8: 1,
    Primitive.INT16: 2,
    Primitive.UINT16: 2,
    Primitive.INT32: 4,
    Primitive.UINT32: 4,
    Primitive.INT64: 8,
    Primitive.FLOAT64: 8,
    Primitive.UUID: 16,
}
_STRUCT_CODE = {
    Primitive.BOOL: "?",
    Primitive.INT8: "b",
    Primitive.INT16: "h",
    Primitive.UINT16: "H",
    Primitive.INT32: "i",
    Primitive.UINT32: "I",
    Primitive.INT64: "q",
    Primitive.FLOAT64: "d",
    Primitive.UUID: "16s",
}
_NULLABLE_PRIMITIVES = {Primitive.STRING, Primitive.BYTES, Primitive.RECORDS}


@dataclass(frozen=True, slots=True)
class FieldType:
    """A field's type: a primitive, a struct, or an array of either."""

    primitive: Primitive | None = None
    struct: str | None = None
    array: bool = False

    @classmethod
    def parse(cls, text: str) -> FieldType:
        array = text.startswith("[]")
        name = text[2:] if array else text
        if name.startswith("[]"):
            raise ValueError("nested arrays are not supported; use an array of structs")
        try:
            return cls(primitive=Primitive(name), array=array)
        except ValueError:
            pass
        if not _STRUCT_NAME.match(name):
            raise ValueError(f"unknown type {text!r}")
        return cls(struct=name, array=array)

    @property
    def is_struct(self) -> bool:
        return self.struct is not None and not self.array

    @property
    def element(self) -> FieldType:
        return FieldType(primitive=self.primitive, struct=self.struct)

    @property
    def fixed_width(self) -> int | None:
        if self.array or self.primitive is None:
            return None
        return self.primitive.fixed_width

    @property
    def can_be_nullable(self) -> bool:
        return self.array or self.struct is not None or self.primitive in _NULLABLE_PRIMITIVES

    def __str__(self) -> str:
        name = self.struct if self.struct is not None else self.primitive.value  # type: ignore[union-attr]
        return f"[]{name}" if self.array else name


ENTITY_TYPES = {
    "brokerId": Primitive.INT32,
    "topicName": Primitive.STRING,
    "groupId": Primitive.STRING,
    "producerId": Primitive.INT64,
    "transactionalId": Primitive.STRING,
}


@dataclass(slots=True)
class FieldSpec:
    name: str
    type: FieldType
    versions: Versions
    nullable_versions: Versions
    tagged_versions: Versions
    tag: int | None
    default: str
    ignorable: bool
    map_key: bool
    entity_type: str | None
    zero_copy: bool
    flexible_override: Versions | None  # a field-level "flexibleVersions" (strings and bytes only)
    fields: list[FieldSpec] = field(default_factory=list)

    @property
    def snake_name(self) -> str:
        return to_snake_case(self.name)


@dataclass(slots=True)
class StructSpec:
    name: str
    versions: Versions
    fields: list[FieldSpec]
    common: bool = False


@dataclass(slots=True)
class MessageSpec:
    path: Path
    name: str
    type: str  # request, response, header, metadata or data
    api_key: int | None
    valid_versions: Versions
    flexible_versions: Versions
    fields: list[FieldSpec]
    structs: dict[str, StructSpec]  # every struct the message uses, by name, in definition order
    listeners: list[str]
    latest_version_unstable: bool
    deprecated_versions: Versions

    @property
    def root(self) -> StructSpec:
        return StructSpec(self.name, self.valid_versions, self.fields)


MESSAGE_TYPES = {"request", "response", "header", "metadata", "data"}
LISTENERS = {"controller", "broker", "zkBroker"}


def to_snake_case(name: str) -> str:
    """Kafka's rule: an underscore before a capital that follows a lower-case letter."""
    out: list[str] = []
    previous_was_capital = True
    for char in name:
        if char.isupper():
            if not previous_was_capital:
                out.append("_")
            out.append(char.lower())
            previous_was_capital = True
        else:
            out.append(char)
            previous_was_capital = False
    return "".join(out)


def strip_comments(text: str) -> str:
    return _COMMENT.sub("", text)


def load_schema(path: Path) -> MessageSpec:
    try:
        raw = json.loads(strip_comments(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise SchemaError(path, "file", f"not valid JSON: {exc}") from None
    return parse_message(raw, path)


def parse_message(raw: dict[str, object], path: Path) -> MessageSpec:
    if not isinstance(raw, dict):
        raise SchemaError(path, "file", "a schema must be a JSON object")
    name = _required_str(raw, "name", path, "message")
    where = f"message {name}"
    kind = _required_str(raw, "type", path, where)
    if kind not in MESSAGE_TYPES:
        raise SchemaError(path, where, f"unknown message type {kind!r}")
    valid = _versions(raw.get("validVersions"), path, where, "validVersions", required=True)
    if "flexibleVersions" not in raw and not valid.empty:
        # A message whose every version was removed ("validVersions": "none") needs none.
        raise SchemaError(path, where, "flexibleVersions is required (use 0+ for new messages)")
    flexible = _versions(raw.get("flexibleVersions"), path, where, "flexibleVersions")
    if not flexible.empty and flexible.highest != MAX_VERSION:
        raise SchemaError(path, where, f"flexibleVersions {flexible} must be open-ended or none")
    api_key = raw.get("apiKey")
    if api_key is not None and (not isinstance(api_key, int) or not 0 <= api_key <= MAX_VERSION):
        raise SchemaError(path, where, f"invalid apiKey {api_key!r}")
    if kind in ("request", "response", "metadata") and api_key is None:
        raise SchemaError(path, where, f"a {kind} needs an apiKey")
    listeners = raw.get("listeners") or []
    if not isinstance(listeners, list) or any(x not in LISTENERS for x in listeners):
        raise SchemaError(path, where, f"invalid listeners {listeners!r}")
    if listeners and kind != "request":
        raise SchemaError(path, where, "listeners are only valid for requests")
    unstable = bool(raw.get("latestVersionUnstable", False))
    if unstable and kind != "request":
        raise SchemaError(path, where, "latestVersionUnstable is only valid for requests")
    deprecated = _versions(raw.get("deprecatedVersions"), path, where, "deprecatedVersions")

    structs: dict[str, StructSpec] = {}
    for common in raw.get("commonStructs", []) or []:  # type: ignore[attr-defined]
        struct_name = _required_str(common, "name", path, where + " commonStructs")
        if not _STRUCT_NAME.match(struct_name):
            raise SchemaError(
                path, f"common struct {struct_name}", "struct names start with a capital"
            )
        if struct_name in structs:
            raise SchemaError(path, f"common struct {struct_name}", "specified twice")
        versions = _versions(common.get("versions"), path, struct_name, "versions", required=True)
        fields = _parse_fields(common.get("fields", []), path, struct_name, flexible)
        structs[struct_name] = StructSpec(struct_name, versions, fields, common=True)
    fields = _parse_fields(raw.get("fields", []), path, name, flexible)
    for f in fields:
        if f.map_key:
            raise SchemaError(path, f"field {f.name}", "mapKey cannot be set on top-level fields")
    register_inline_structs(fields, structs, path)
    for f in _all_fields(fields, structs):
        if f.type.struct is not None and f.type.struct not in structs:
            raise SchemaError(path, f"field {f.name}", f"unknown type {f.type}")
    return MessageSpec(
        path=path,
        name=name,
        type=kind,
        api_key=api_key,
        valid_versions=valid,
        flexible_versions=flexible,
        fields=fields,
        structs=structs,
        listeners=list(listeners),
        latest_version_unstable=unstable,
        deprecated_versions=deprecated,
    )


def _all_fields(fields: list[FieldSpec], structs: dict[str, StructSpec]) -> list[FieldSpec]:
    out: list[FieldSpec] = []
    stack = list(fields) + [f for s in structs.values() for f in s.fields]
    while stack:
        f = stack.pop()
        out.append(f)
        stack.extend(f.fields)
    return out


def register_inline_structs(
    fields: list[FieldSpec], structs: dict[str, StructSpec], path: Path
) -> None:
    for f in fields:
        name = f.type.struct
        if name is None:
            if f.fields:
                raise SchemaError(
                    path, f"field {f.name}", "only struct and struct-array fields have fields"
                )
            continue
        existing = structs.get(name)
        if existing is not None and existing.common:
            if f.fields:
                raise SchemaError(
                    path, f"field {f.name}", f"cannot re-specify common struct {name} inline"
                )
        elif existing is not None:
            raise SchemaError(path, f"field {f.name}", f"struct {name} was specified twice")
        elif not f.fields:
            raise SchemaError(path, f"field {f.name}", f"unknown type {f.type}")
        else:
            structs[name] = StructSpec(name, f.versions, f.fields)
        register_inline_structs(f.fields, structs, path)


def _parse_fields(
    raw_fields: object, path: Path, owner: str, flexible: Versions
) -> list[FieldSpec]:
    if not isinstance(raw_fields, list):
        raise SchemaError(path, owner, "fields must be a list")
    fields = [_parse_field(raw, path, owner, flexible) for raw in raw_fields]
    seen_names: set[str] = set()
    tags: dict[int, str] = {}
    for f in fields:
        if f.name in seen_names:
            raise SchemaError(path, f"field {f.name}", f"duplicate field name in {owner}")
        seen_names.add(f.name)
        if f.tag is not None:
            if f.tag in tags:
                raise SchemaError(
                    path, f"field {f.name}", f"duplicate tag {f.tag} (also used by {tags[f.tag]})"
                )
            tags[f.tag] = f.name
    for expected in range(len(tags)):
        if expected not in tags:
            raise SchemaError(path, owner, f"tags are not contiguous: tag {expected} is unused")
    return fields


def _parse_field(raw: object, path: Path, owner: str, flexible: Versions) -> FieldSpec:
    if not isinstance(raw, dict):
        raise SchemaError(path, owner, "a field must be a JSON object")
    name = _required_str(raw, "name", path, f"a field of {owner}")
    where = f"field {name}"
    if not _FIELD_NAME.match(name):
        raise SchemaError(path, where, "invalid field name")
    try:
        field_type = FieldType.parse(_required_str(raw, "type", path, where))
    except ValueError as exc:
        raise SchemaError(path, where, str(exc)) from None
    tagged = _versions(raw.get("taggedVersions"), path, where, "taggedVersions")
    if raw.get("versions") is None and tagged.empty:
        raise SchemaError(path, where, "versions is required")
    versions = (
        _versions(raw.get("versions"), path, where, "versions")
        if raw.get("versions") is not None
        else tagged
    )
    nullable = _versions(raw.get("nullableVersions"), path, where, "nullableVersions")
    if not nullable.empty and not field_type.can_be_nullable:
        raise SchemaError(path, where, f"type {field_type} cannot be nullable")
    tag = raw.get("tag")
    if isinstance(tag, str) and tag.isdigit():
        tag = int(tag)  # Kafka's JSON reader takes "0" for 0, and some schemas say so
    if tag is not None:
        if not isinstance(tag, int) or isinstance(tag, bool) or tag < 0:
            raise SchemaError(path, where, f"invalid tag {tag!r}: tags are non-negative integers")
        if tagged.empty:
            raise SchemaError(path, where, f"tag {tag} given without taggedVersions")
        if tagged.highest != MAX_VERSION:
            raise SchemaError(path, where, f"taggedVersions {tagged} must be open-ended")
        if not versions.contains_all(tagged):
            raise SchemaError(
                path, where, f"taggedVersions {tagged} are not within versions {versions}"
            )
        overlap = nullable.intersect(tagged)
        if not overlap.empty and overlap != tagged:
            raise SchemaError(path, where, "either all tagged versions are nullable or none are")
        if not flexible.contains_all(tagged):
            raise SchemaError(
                path, where, f"tagged field outside flexible versions: {tagged} vs {flexible}"
            )
        if raw.get("mapKey"):
            raise SchemaError(path, where, "mapKey misuse: a tagged field cannot be a key")
    elif not tagged.empty:
        raise SchemaError(path, where, "taggedVersions given without a tag")
    flexible_override = None
    if raw.get("flexibleVersions"):
        if field_type.array or field_type.primitive not in (Primitive.STRING, Primitive.BYTES):
            raise SchemaError(
                path, where, "only string and bytes fields may override flexibleVersions"
            )
        flexible_override = _versions(raw.get("flexibleVersions"), path, where, "flexibleVersions")
    zero_copy = bool(raw.get("zeroCopy", False))
    if zero_copy and (field_type.array or field_type.primitive is not Primitive.BYTES):
        raise SchemaError(path, where, "zeroCopy is only valid for bytes fields")
    entity = raw.get("entityType")
    if entity is not None:
        if entity not in ENTITY_TYPES:
            raise SchemaError(path, where, f"unknown entityType {entity!r}")
        if field_type.primitive is not ENTITY_TYPES[entity]:
            raise SchemaError(path, where, f"entityType {entity} does not fit type {field_type}")
    default = raw.get("default", "")
    default = str(default) if not isinstance(default, bool) else str(default).lower()
    children = _parse_fields(raw.get("fields", []), path, name, flexible) if "fields" in raw else []
    spec = FieldSpec(
        name=name,
        type=field_type,
        versions=versions,
        nullable_versions=nullable,
        tagged_versions=tagged,
        tag=tag,
        default=default,
        ignorable=bool(raw.get("ignorable", False)),
        map_key=bool(raw.get("mapKey", False)),
        entity_type=entity,
        zero_copy=zero_copy,
        flexible_override=flexible_override,
        fields=children,
    )
    _check_default(spec, path)
    return spec


_INT_RANGES = {
    Primitive.INT8: (-(2**7), 2**7 - 1),
    Primitive.INT16: (-(2**15), 2**15 - 1),
    Primitive.UINT16: (0, 2**16 - 1),
    Primitive.INT32: (-(2**31), 2**31 - 1),
    Primitive.UINT32: (0, 2**32 - 1),
    Primitive.INT64: (-(2**63), 2**63 - 1),
}


def parse_int_default(text: str) -> int:
    negative = text.startswith("-")
    body = text[1:] if negative else text
    value = int(body[2:], 16) if body.lower().startswith("0x") else int(body, 10)
    return -value if negative else value


def _check_default(f: FieldSpec, path: Path) -> None:
    where = f"field {f.name}"
    text = f.default
    if text == "null":
        if not f.nullable_versions.contains_all(f.versions):
            raise SchemaError(
                path,
                where,
                "null cannot be the default: not all versions of the field are nullable",
            )
        return
    t = f.type
    if t.array or t.struct is not None:
        if text:
            raise SchemaError(
                path, where, f"invalid default {text!r}: only empty or null is allowed"
            )
        return
    prim = t.primitive
    if prim is None or not text:
        return
    if prim in _INT_RANGES:
        try:
            value = parse_int_default(text)
        except ValueError:
            raise SchemaError(path, where, f"invalid default {text!r} for {prim.value}") from None
        low, high = _INT_RANGES[prim]
        if not low <= value <= high:
            raise SchemaError(path, where, f"default {text} is out of range for {prim.value}")
    elif prim is Primitive.BOOL:
        if text.lower() not in ("true", "false"):
            raise SchemaError(path, where, f"invalid default {text!r} for bool")
    elif prim is Primitive.FLOAT64:
        try:
            float(text)
        except ValueError:
            raise SchemaError(path, where, f"invalid default {text!r} for float64") from None
    elif prim is Primitive.UUID:
        try:
            if len(base64.urlsafe_b64decode(text + "==")) != 16:
                raise ValueError
        except ValueError:
            raise SchemaError(path, where, f"invalid default {text!r} for uuid") from None
    elif prim in (Primitive.BYTES, Primitive.RECORDS):
        raise SchemaError(path, where, f"invalid default {text!r}: bytes default to empty or null")


def _required_str(raw: dict[str, object], key: str, path: Path, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise SchemaError(path, where, f"{key} is required")
    return value


def _versions(
    value: object, path: Path, where: str, key: str, *, required: bool = False
) -> Versions:
    if value is None or value == "":
        if required:
            raise SchemaError(path, where, f"{key} is required")
        return NO_VERSIONS
    if not isinstance(value, str):
        raise SchemaError(path, where, f"bad version range in {key}: {value!r}")
    try:
        return Versions.parse(value)
    except ValueError as exc:
        raise SchemaError(path, where, f"bad version range in {key}: {exc}") from None
