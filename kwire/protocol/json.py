"""Kafka's JSON form of generated messages, as its generated ``*JsonConverter`` classes
write it (the form ``kafka-dump-log.sh`` and request logging print).

The rules, all driven by each class's ``FIELDS``:

* keys are the schema names with a lower-case first letter (``BrokerId`` -> ``brokerId``),
  in schema order, and only for fields present at the version;
* a tagged field is written only when it differs from its default;
* uuids are Kafka's ``Uuid.toString()`` (URL-safe base64, unpadded); ``bytes`` are
  standard base64 (Jackson's ``BinaryNode``); int64 is a JSON number;
* ``records`` fields are written as ``""``: Kafka's converter deliberately drops the
  record bytes (or, with ``records_as_size``, writes ``<name>SizeInBytes`` instead);
* text is compact, as Jackson's ``JsonNode.toString()`` prints it (see :func:`dumps`).

:func:`from_json` reverses the mapping with the same checks Kafka's readers make.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from kwire.protocol._codec import FieldInfo, Message

__all__ = [
    "JsonConversionError",
    "camel_case",
    "dumps",
    "from_json",
    "metadata_record_from_json",
    "metadata_record_json",
    "metadata_record_type_name",
    "to_json",
    "to_json_text",
]

JsonValue = Any  # dict / list / str / int / float / bool / None
M = TypeVar("M")


class JsonConversionError(ValueError):
    """A value cannot be converted to or from Kafka's JSON form."""


# -- naming ------------------------------------------------------------------------------


def camel_case(name: str) -> str:
    """Kafka's JSON key for a schema field name: only the first letter is lowered."""
    return name[:1].lower() + name[1:]


def _snake_case(name: str) -> str:
    # Kafka's generator inserts '_' only before a capital that follows a lower-case
    # letter, so runs of capitals stay together: KRaftVersion -> kraft_version.
    out: list[str] = []
    previous_was_upper = True
    for ch in name:
        if ch.isupper():
            if not previous_was_upper:
                out.append("_")
            out.append(ch.lower())
            previous_was_upper = True
        else:
            out.append(ch)
            previous_was_upper = False
    return "".join(out)


def metadata_record_type_name(message: type[Message] | Message | str) -> str:
    """The ``MetadataRecordType`` constant, e.g. ``ZK_MIGRATION_STATE_RECORD``."""
    name = message if isinstance(message, str) else message.NAME
    return _snake_case(name).upper()


# -- defaults ----------------------------------------------------------------------------


@cache
def _defaults(cls: type) -> dict[str, Any]:
    """Attribute -> a factory result or default, for the 'non-default' test of tagged fields."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _default_of(cls: type, info: FieldInfo) -> Any:
    defaults = _defaults(cls)
    value = defaults.get(info.attribute)
    # Mutable defaults are handed out fresh so callers cannot alter the cached one.
    if isinstance(value, list):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value)()
    return value


# -- writing -----------------------------------------------------------------------------


def _element_type(info: FieldInfo) -> str:
    return info.type[2:]


def _scalar_to_json(type_name: str, value: Any, where: str) -> JsonValue:
    if type_name == "uuid":
        if not isinstance(value, uuid.UUID):
            raise JsonConversionError(f"{where}: expected a UUID, got {type(value).__name__}")
        return base64.urlsafe_b64encode(value.bytes).decode("ascii").rstrip("=")
    if type_name == "bytes":
        return base64.b64encode(bytes(value)).decode("ascii")
    if type_name == "records":
        # Kafka's converters never serialize record data; they write empty bytes.
        return ""
    if type_name == "float64":
        return float(value)
    if type_name == "bool":
        return bool(value)
    if type_name == "string":
        return str(value)
    return int(value)


def _struct_to_json(obj: Any, version: int, records_as_size: bool) -> dict[str, JsonValue]:
    cls = type(obj)
    node: dict[str, JsonValue] = {}
    for info in cls.FIELDS:
        if not info.present_in(version):
            continue
        key = camel_case(info.name)
        value = getattr(obj, info.attribute)
        if info.tagged_in(version) and value == _default_of(cls, info):
            continue
        if value is None:
            node[key] = None
        elif info.type.startswith("[]"):
            element = _element_type(info)
            if info.struct is not None:
                node[key] = [_struct_to_json(item, version, records_as_size) for item in value]
            else:
                node[key] = [_scalar_to_json(element, item, key) for item in value]
        elif info.struct is not None:
            node[key] = _struct_to_json(value, version, records_as_size)
        elif info.type == "records" and records_as_size:
            node[key + "SizeInBytes"] = len(value)
        else:
            node[key] = _scalar_to_json(info.type, value, key)
    return node


def to_json(message: Any, version: int, *, records_as_size: bool = False) -> dict[str, JsonValue]:
    """``message`` at ``version`` as JSON-ready Python objects, keys in Kafka's order."""
    if isinstance(message, Message):
        message._check_version(version)
    return _struct_to_json(message, version, records_as_size)


def to_json_text(message: Any, version: int, *, records_as_size: bool = False) -> str:
    return dumps(to_json(message, version, records_as_size=records_as_size))


def metadata_record_json(message: Message, version: int) -> dict[str, JsonValue]:
    """The envelope ``kafka-dump-log.sh --cluster-metadata-decoder`` prints per record."""
    return {
        "type": metadata_record_type_name(message),
        "version": version,
        "data": to_json(message, version),
    }


# -- text --------------------------------------------------------------------------------

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _quote(text: str) -> str:
    # Jackson escapes only quote, backslash and control characters (upper-case hex);
    # everything else, non-ASCII included, is written as is.
    parts = ['"']
    for ch in text:
        escaped = _SHORT_ESCAPES.get(ch)
        if escaped is not None:
            parts.append(escaped)
        elif ch < " ":
            parts.append(f"\\u{ord(ch):04X}")
        else:
            parts.append(ch)
    parts.append('"')
    return "".join(parts)


def _java_double(value: float) -> str:
    """Java's ``Double.toString``: plain between 1e-3 and 1e7, else ``d.dddE<n>``."""
    if math.isnan(value):
        return '"NaN"'  # Jackson quotes non-numeric numbers by default
    if math.isinf(value):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        return repr(value)  # Python is positional in this range, with a '.'
    # Both languages print the shortest digits that round-trip; only the layout differs.
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    scientific_exponent = len(digits) - 1 + int(exponent)
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{scientific_exponent}"


def dumps(value: JsonValue) -> str:
    """Compact JSON exactly as Jackson's ``JsonNode.toString()`` writes it."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_quote(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# -- reading -----------------------------------------------------------------------------

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def _scalar_from_json(type_name: str, node: JsonValue, where: str) -> Any:
    if type_name in _INT_RANGES:
        if isinstance(node, bool) or not isinstance(node, int | float):
            raise JsonConversionError(f"{where} expected an integer, got {node!r}")
        if isinstance(node, float) and not node.is_integer():
            raise JsonConversionError(f"{where} expected an integer, got {node!r}")
        low, high = _INT_RANGES[type_name]
        if not low <= int(node) <= high:
            raise JsonConversionError(f"{where}: {node} is out of range for {type_name}")
        return int(node)
    if type_name == "bool":
        if not isinstance(node, bool):
            raise JsonConversionError(f"{where} expected Boolean type, got {node!r}")
        return node
    if type_name == "float64":
        if isinstance(node, str) and node in ("NaN", "Infinity", "-Infinity"):
            return float(node)
        if isinstance(node, bool) or not isinstance(node, int | float):
            raise JsonConversionError(f"{where} expected a number, got {node!r}")
        return float(node)
    if not isinstance(node, str):
        raise JsonConversionError(f"{where} expected a string type, got {node!r}")
    if type_name == "string":
        return node
    if type_name == "uuid":
        try:
            raw = base64.urlsafe_b64decode(node + "=" * (-len(node) % 4))
        except (binascii.Error, ValueError):
            raise JsonConversionError(f"{where}: {node!r} is not a base64 uuid") from None
        if len(raw) != 16:
            raise JsonConversionError(f"{where}: {node!r} decodes to {len(raw)} bytes, not 16")
        return uuid.UUID(bytes=raw)
    if type_name in ("bytes", "records"):
        try:
            return base64.b64decode(node, validate=True)
        except (binascii.Error, ValueError):
            raise JsonConversionError(f"{where}: {node!r} is not base64") from None
    raise JsonConversionError(f"{where}: unsupported type {type_name}")


def _struct_from_json(cls: type[M], node: JsonValue, version: int, where: str) -> M:
    if not isinstance(node, Mapping):
        raise JsonConversionError(f"{where} expected a JSON object, got {node!r}")
    obj = cls()
    fields: tuple[FieldInfo, ...] = cls.FIELDS  # type: ignore[attr-defined]
    for info in fields:
        key = camel_case(info.name)
        path = f"{where}.{key}" if where else key
        if key not in node:
            if info.present_in(version) and not info.tagged_in(version):
                raise JsonConversionError(
                    f"{cls.__name__}: unable to locate field '{key}', "
                    f"which is mandatory in version {version}"
                )
            continue
        if not info.present_in(version):
            raise JsonConversionError(
                f"{cls.__name__}: field '{key}' is not supported in version {version}"
            )
        setattr(obj, info.attribute, _field_from_json(info, node[key], version, path))
    return obj


def _field_from_json(info: FieldInfo, node: JsonValue, version: int, where: str) -> Any:
    if (
        node is None
        and info.type not in _INT_RANGES
        and info.type not in ("bool", "float64", "uuid")
    ):
        if not info.nullable_in(version):
            raise JsonConversionError(f"{where} is null, but not nullable in version {version}")
        return None
    if info.type.startswith("[]"):
        if not isinstance(node, list):
            raise JsonConversionError(f"{where} expected a JSON array, got {node!r}")
        if info.struct is not None:
            return [
                _struct_from_json(info.struct, item, version, f"{where}[{i}]")
                for i, item in enumerate(node)
            ]
        element = _element_type(info)
        return [_scalar_from_json(element, item, f"{where}[{i}]") for i, item in enumerate(node)]
    if info.struct is not None:
        return _struct_from_json(info.struct, node, version, where)
    return _scalar_from_json(info.type, node, where)


def from_json(cls: type[M], node: JsonValue, version: int) -> M:
    """Build a ``cls`` from its JSON form at ``version`` (the reverse of :func:`to_json`)."""
    if isinstance(cls, type) and issubclass(cls, Message):
        cls._check_version(version)
    return _struct_from_json(cls, node, version, "")


def metadata_record_from_json(node: JsonValue) -> tuple[Message, int]:
    """Parse the dump envelope ``{"type":..,"version":..,"data":{..}}``."""
    from kwire.protocol.messages.index import METADATA_RECORDS

    if not isinstance(node, Mapping) or not {"type", "version", "data"} <= node.keys():
        raise JsonConversionError("expected an object with type, version and data")
    by_name = {metadata_record_type_name(c): c for c in METADATA_RECORDS.values()}
    cls = by_name.get(node["type"])
    if cls is None:
        raise JsonConversionError(f"unknown metadata record type {node['type']!r}")
    version = node["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise JsonConversionError(f"version expected an integer, got {version!r}")
    return from_json(cls, node["data"], version), version
