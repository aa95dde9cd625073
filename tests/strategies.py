"""Hypothesis strategies and helpers for kwire's generated protocol codecs.

Everything here is built from the generated classes' `FIELDS` tables, never from a
hand-written list of messages, so a new message or field is covered without edits:

- `MESSAGE_CLASSES` / `CLASS_VERSIONS`: every top-level class (each module's `__all__`)
  and every valid (class, version) pair.
- `messages(cls, version)`: a strategy for instances that are valid at `version`.
- `populated(cls, version)`: a deterministic instance with every present field set.
- `normalise(value)`: plain data (memoryviews as bytes) for equality and readable diffs.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from functools import cache
from typing import Any
from uuid import UUID

from hypothesis import strategies as st

import kwire.protocol.messages
from kwire.protocol._codec import (
    FieldInfo,
    Message,
    RawTaggedField,
    compiled_readers_available,
)
from kwire.protocol.errors import DecodeError

__all__ = [
    "CLASS_VERSIONS",
    "INT_RANGES",
    "MAX_ARRAY",
    "MAX_TAG",
    "MAX_TEXT",
    "MESSAGE_CLASSES",
    "Override",
    "decode_with_every_reader",
    "default_of",
    "has_unknown_tagged_fields",
    "is_flexible",
    "messages",
    "non_default_value",
    "normalise",
    "pair_id",
    "populated",
]

MAX_ARRAY = 3  # elements per array: enough to see several, small enough to stay fast
MAX_TEXT = 20  # characters per string, bytes per bytes field

INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
}

MAX_TAG = 2**31 - 1  # tags are unsigned varints; Kafka keeps them within an int32


def _discover_message_classes() -> tuple[type[Message], ...]:
    found: dict[str, type[Message]] = {}
    package = kwire.protocol.messages
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, Message):
                found[f"{module.__name__}.{name}"] = value
    return tuple(found[key] for key in sorted(found))


MESSAGE_CLASSES: tuple[type[Message], ...] = _discover_message_classes()

CLASS_VERSIONS: tuple[tuple[type[Message], int], ...] = tuple(
    (cls, version)
    for cls in MESSAGE_CLASSES
    for version in range(cls.LOWEST_VERSION, cls.HIGHEST_VERSION + 1)
)


def pair_id(cls: type, version: int) -> str:
    return f"{cls.__name__}-v{version}"


def is_flexible(message_cls: type[Message], version: int) -> bool:
    first = message_cls.FIRST_FLEXIBLE_VERSION
    return first is not None and version >= first


def has_unknown_tagged_fields(struct_cls: type) -> bool:
    return any(f.name == "unknown_tagged_fields" for f in dataclasses.fields(struct_cls))


def default_of(struct_cls: type, attribute: str) -> Any:
    """The dataclass default of one field (a fresh object for default factories)."""
    for f in dataclasses.fields(struct_cls):
        if f.name == attribute:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise AssertionError(f"{struct_cls.__name__}.{attribute} has no default")
    raise AssertionError(f"{struct_cls.__name__} has no field {attribute}")


# -- normalising decoded values ------------------------------------------------------------


def normalise(value: Any) -> Any:
    """Plain, comparable data: structs as dicts (with their class name), bytes for views."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, RawTaggedField):
        return ("tagged", value.tag, bytes(value.data))
    names = _dataclass_field_names(kind)
    if names is not None:
        out: dict[str, Any] = {"__class__": kind.__name__}
        for name in names:
            item = getattr(value, name)
            out[name] = item if type(item) in _PLAIN_TYPES else normalise(item)
        return out
    if isinstance(value, list | tuple):
        return [item if type(item) in _PLAIN_TYPES else normalise(item) for item in value]
    return value


# Values of these exact types come back from `normalise` as they are.
_PLAIN_TYPES = frozenset({int, str, bytes, bool, float, type(None), UUID})


@cache
def _dataclass_field_names(kind: type) -> tuple[str, ...] | None:
    """The field names `dataclasses.fields` gives for an instance of `kind`, or None when
    its instances are not dataclass instances (a class itself is not one)."""
    if issubclass(kind, type) or not dataclasses.is_dataclass(kind):
        return None
    return tuple(f.name for f in dataclasses.fields(kind))


# -- strategies ------------------------------------------------------------------------------

# An override sees (struct class owning the field, the field, version) and may return a
# strategy for the whole field value (nullability included) or None for the default one.
Override = Callable[[type, FieldInfo, int], "st.SearchStrategy[Any] | None"]


def _scalar(type_name: str) -> st.SearchStrategy[Any]:
    if type_name in INT_RANGES:
        low, high = INT_RANGES[type_name]
        return st.integers(low, high)
    if type_name == "bool":
        return st.booleans()
    if type_name == "float64":
        return st.floats(allow_nan=False, allow_infinity=False)
    if type_name == "string":
        return st.text(max_size=MAX_TEXT)
    if type_name in ("bytes", "records"):
        return st.binary(max_size=MAX_TEXT)
    if type_name == "uuid":
        return st.one_of(st.just(UUID(int=0)), st.uuids())
    raise AssertionError(f"no strategy for schema type {type_name!r}")


def _unknown_tagged_fields(known_tags: frozenset[int]) -> st.SearchStrategy[Any]:
    tags = st.one_of(st.integers(0, 40), st.integers(0, MAX_TAG)).filter(
        lambda tag: tag not in known_tags
    )
    entries = st.lists(
        st.tuples(tags, st.binary(max_size=MAX_TEXT)),
        max_size=MAX_ARRAY,
        unique_by=lambda entry: entry[0],
    )
    # The decoder hands them back in wire order, which is by tag.
    return entries.map(
        lambda items: tuple(RawTaggedField(tag, data) for tag, data in sorted(items))
    )


def _field_value(
    owner: type,
    info: FieldInfo,
    message_cls: type[Message],
    version: int,
    unknown_tagged: bool,
    override: Override | None,
) -> st.SearchStrategy[Any]:
    if override is not None:
        chosen = override(owner, info, version)
        if chosen is not None:
            return chosen
    if info.type.startswith("[]"):
        element_type = info.type[2:]
        element = (
            _struct(info.struct, message_cls, version, unknown_tagged, override)
            if info.struct is not None
            else _scalar(element_type)
        )
        value: st.SearchStrategy[Any] = st.lists(element, max_size=MAX_ARRAY)
    elif info.struct is not None:
        value = _struct(info.struct, message_cls, version, unknown_tagged, override)
    else:
        value = _scalar(info.type)
    if info.nullable_in(version):
        value = st.one_of(st.none(), value)
    return value


@cache
def _struct(
    struct_cls: type,
    message_cls: type[Message],
    version: int,
    unknown_tagged: bool,
    override: Override | None,
) -> st.SearchStrategy[Any]:
    """Instances of one struct at one version; absent fields keep their defaults."""
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for info in struct_cls.FIELDS:  # type: ignore[attr-defined]
        if info.present_in(version):
            kwargs[info.attribute] = _field_value(
                struct_cls, info, message_cls, version, unknown_tagged, override
            )
    if (
        unknown_tagged
        and is_flexible(message_cls, version)
        and has_unknown_tagged_fields(struct_cls)
    ):
        known = frozenset(
            info.tag
            for info in struct_cls.FIELDS  # type: ignore[attr-defined]
            if info.tag is not None and info.present_in(version) and info.tagged_in(version)
        )
        kwargs["unknown_tagged_fields"] = _unknown_tagged_fields(known)
    return st.fixed_dictionaries(kwargs).map(lambda values: struct_cls(**values))


def messages(
    cls: type[Message],
    version: int,
    *,
    unknown_tagged: bool = True,
    override: Override | None = None,
) -> st.SearchStrategy[Any]:
    """Instances of `cls` that version `version` can carry.

    Fields absent at `version` keep their defaults; nulls only where nullable; unknown
    tagged fields (sorted, with tags no known tagged field uses) only in flexible versions.
    """
    return _struct(cls, cls, version, unknown_tagged, override)


# -- deterministic values ------------------------------------------------------------------


def _scalar_sample(type_name: str, index: int) -> Any:
    if type_name in INT_RANGES:
        low, high = INT_RANGES[type_name]
        return (low, high, 7)[index] if index < 3 else index % high
    if type_name == "bool":
        return index % 2 == 0
    if type_name == "float64":
        return 1.5 + index
    if type_name == "string":
        return f"s{index}-é"
    if type_name in ("bytes", "records"):
        return bytes([index % 256]) * (index % 5 + 1)
    if type_name == "uuid":
        return UUID(int=index + 1)
    raise AssertionError(f"no sample for schema type {type_name!r}")


def populated(cls: type, version: int, *, seed: int = 0, elements: int = 2) -> Any:
    """An instance with every field present at `version` set, arrays holding `elements`."""
    kwargs: dict[str, Any] = {}
    for position, info in enumerate(cls.FIELDS):  # type: ignore[attr-defined]
        if not info.present_in(version):
            continue
        index = seed + position
        if info.type.startswith("[]"):
            if info.struct is not None:
                kwargs[info.attribute] = [
                    populated(info.struct, version, seed=index + n, elements=elements)
                    for n in range(elements)
                ]
            else:
                kwargs[info.attribute] = [
                    _scalar_sample(info.type[2:], index + n) for n in range(elements)
                ]
        elif info.struct is not None:
            kwargs[info.attribute] = populated(info.struct, version, seed=index, elements=elements)
        else:
            kwargs[info.attribute] = _scalar_sample(info.type, index)
    return cls(**kwargs)


def non_default_value(owner: type, info: FieldInfo, version: int) -> Any:
    """A value for `info` that differs from its default; structs are filled at `version`.

    Pass a version where the field is present, so that a struct value holds something.
    """
    default = default_of(owner, info.attribute)
    if info.type.startswith("[]"):
        element = (
            populated(info.struct, version, elements=1)
            if info.struct is not None
            else _scalar_sample(info.type[2:], 1)
        )
        candidate: Any = [element]
    elif info.struct is not None:
        candidate = populated(info.struct, version, seed=3, elements=1)
    elif info.type in INT_RANGES:
        low, high = INT_RANGES[info.type]
        base = 0 if default is None else default
        candidate = base + 1 if base < high else base - 1
        assert low <= candidate <= high
    elif info.type == "bool":
        candidate = not default
    elif info.type == "float64":
        candidate = (default or 0.0) + 1.0
    elif info.type == "string":
        candidate = (default or "") + "x"
    elif info.type in ("bytes", "records"):
        candidate = bytes(default or b"") + b"x"
    elif info.type == "uuid":
        candidate = UUID(int=(default.int if default is not None else 0) + 1)
    else:
        raise AssertionError(f"no non-default value for schema type {info.type!r}")
    assert normalise(candidate) != normalise(default), (owner, info, candidate)
    return candidate


def decode_with_every_reader(cls: type[Message], data: bytes | bytearray, version: int) -> Any:
    """Decode with the Python readers and, where built, the compiled ones.

    Both must agree: the same message, or a DecodeError with the same text (then raised).
    """
    outcomes: list[tuple[str, Any]] = []
    for compiled in (False, True) if compiled_readers_available() else (False,):
        # What `use_accelerator(compiled)` sets for `cls`, set for `cls` alone: a message's
        # readers call no other message class's, and switching every class costs a pass
        # over them all, twice per decode.
        cls._READERS = cls._COMPILED_READERS if compiled else cls._PYTHON_READERS
        try:
            outcomes.append(("message", cls.decode(data, version)))
        except DecodeError as error:
            outcomes.append(("error", error))
        finally:
            cls._READERS = cls._COMPILED_READERS
    (kind, first), *others = outcomes
    for other_kind, other in others:
        assert other_kind == kind, (
            f"the readers disagree on {bytes(data).hex()}: {first!r} vs {other!r}"
        )
        if kind == "error":
            assert str(other) == str(first), (str(first), str(other))
        else:  # repr, so that a NaN read from the wire equals itself
            assert repr(normalise(other)) == repr(normalise(first)), bytes(data).hex()
    if kind == "error":
        raise first
    return first
