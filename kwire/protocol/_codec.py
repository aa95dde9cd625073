"""Run-time support for the generated codecs: errors, varints, uuids, tagged fields.

Generated read and write functions are straight-line code; they call into this module
only off the hot path (a varint longer than one byte, an error) or for a cached value
(`struct.Struct` objects for arrays of fixed-width values).
"""

from __future__ import annotations

import builtins
import dataclasses
import os
import struct
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Self
from uuid import UUID, SafeUUID

from kwire.protocol.errors import DecodeError, EncodeError, UnsupportedVersionError

__all__ = [
    "DEFAULT",
    "ZERO_UUID",
    "Buffer",
    "DecodeError",
    "EncodeError",
    "FieldInfo",
    "Message",
    "RawTaggedField",
    "StructBase",
    "slot_defaults",
    "uuid_from_bytes",
    "read_uvarint",
    "read_uvarint_tail",
    "write_uvarint",
    "write_tagged_fields",
]

ZERO_UUID = UUID(int=0)

# What generated readers read from: bytes (fastest) or a view of a larger buffer.
Buffer = bytes | memoryview

# Generated readers make instances without running __init__ and then fill every slot.
new_instance: Callable[[type[Any]], Any] = object.__new__


class RawTaggedField(NamedTuple):
    """A tagged field this release does not know, kept so it is written back unchanged."""

    tag: int
    data: bytes


class FieldInfo(NamedTuple):
    """One field of a generated struct, as its schema declares it.

    Ranges are inclusive (lowest, highest); (1, 0) is empty. Tools that need the schema
    at run time (JSON output like Kafka's, test strategies) read these.
    """

    name: str  # Kafka's name, as in the schema and Kafka's JSON output (BrokerId)
    attribute: str  # the Python attribute (broker_id)
    type: str  # the schema type: int32, string, []int32, []FetchTopic, ...
    versions: tuple[int, int]
    nullable_versions: tuple[int, int]
    tagged_versions: tuple[int, int]
    tag: int | None
    struct: builtins.type | None  # the class of a struct or struct-array element
    zero_copy: bool = False

    def present_in(self, version: int) -> bool:
        return self.versions[0] <= version <= self.versions[1]

    def nullable_in(self, version: int) -> bool:
        return self.nullable_versions[0] <= version <= self.nullable_versions[1]

    def tagged_in(self, version: int) -> bool:
        return self.tagged_versions[0] <= version <= self.tagged_versions[1]


# -- errors raised from generated code ---------------------------------------------------


def eof(field: str, offset: int) -> DecodeError:
    return DecodeError(field, offset, "the buffer ends before the field does")


def too_short(field: str, offset: int, needed: int, remaining: int) -> DecodeError:
    return DecodeError(field, offset, f"needs {needed} bytes but only {max(remaining, 0)} remain")


def run_too_short(layout: tuple[tuple[str, int], ...], offset: int, remaining: int) -> DecodeError:
    """Name the first field of a run of fixed-width fields that the buffer cuts short."""
    start = offset
    for name, width in layout:
        if remaining < width:
            return DecodeError(
                name, start, f"needs {width} bytes but only {max(remaining, 0)} remain"
            )
        remaining -= width
        start += width
    return DecodeError(layout[-1][0], start, "the buffer ends before the field does")


def bad_count(field: str, offset: int, count: int, size: int, remaining: int) -> DecodeError:
    """An array claims more elements (of at least `size` bytes each) than the bytes left hold."""
    needed = "" if size == 1 else f" of at least {size} bytes each"
    return DecodeError(
        field,
        offset,
        f"claims {count} elements{needed} but only {max(remaining, 0)} bytes remain",
    )


def bad_start(offset: int, size: int) -> DecodeError:
    """A read asked to start before the buffer or past its end."""
    return DecodeError("(start)", offset, f"the read starts outside the {size}-byte buffer")


def null_value(field: str, offset: int) -> DecodeError:
    return DecodeError(field, offset, "is null, but the field is not nullable in this version")


def bad_string_length(field: str, offset: int, length: int) -> DecodeError:
    return DecodeError(field, offset, f"string length {length} is above 32767")


def bad_tagged_size(field: str, offset: int, declared: int, used: int) -> DecodeError:
    return DecodeError(field, offset, f"tagged field declares {declared} bytes but holds {used}")


def null_on_write(field: str) -> EncodeError:
    return EncodeError(field, "is None, but the field is not nullable in this version")


def non_default_on_write(field: str, version: int) -> EncodeError:
    return EncodeError(
        field, f"holds a non-default value, but version {version} does not have the field"
    )


def string_too_long(field: str, length: int) -> EncodeError:
    return EncodeError(field, f"encodes to {length} bytes, above the 32767 a string may hold")


def tagged_in_rigid_version(field: str, version: int) -> EncodeError:
    return EncodeError(field, f"tagged fields are set, but version {version} has none")


# -- varints ------------------------------------------------------------------------------


def read_uvarint_tail(buf: Buffer, pos: int, first: int, field: str) -> tuple[int, int]:
    """Finish an unsigned varint whose first byte (`first`, already consumed) had bit 7 set.

    Returns (value, next offset); raises DecodeError for a varint that is cut short, longer
    than 5 bytes or above 2**32 - 1, or a `pos` outside `buf`.
    """
    if pos < 1:  # the first byte came before pos; a negative pos would index from the end
        raise bad_start(pos, len(buf))
    value = first & 0x7F
    for shift in (7, 14, 21, 28):
        if pos >= len(buf):
            raise eof(field, pos)
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value > 0xFFFFFFFF:
                raise DecodeError(field, pos - 5, "unsigned varint does not fit 32 bits")
            return value, pos
    raise DecodeError(field, pos - 5, "unsigned varint is longer than 5 bytes")


def read_uvarint(buf: Buffer, pos: int, field: str) -> tuple[int, int]:
    """Read an unsigned varint (Kafka's ByteUtils.readUnsignedVarint) at `buf[pos]`.

    Returns (value, next offset); raises DecodeError as `read_uvarint_tail` does.
    """
    if pos < 0:
        raise bad_start(pos, len(buf))
    if pos >= len(buf):
        raise eof(field, pos)
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    return read_uvarint_tail(buf, pos + 1, first, field)


def write_uvarint(out: bytearray, value: int) -> None:
    if value < 0 or value > 0xFFFFFFFF:
        raise EncodeError("varint", f"{value} does not fit an unsigned 32-bit varint")
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def uvarint_bytes(value: int) -> bytes:
    out = bytearray()
    write_uvarint(out, value)
    return bytes(out)


# -- uuids ---------------------------------------------------------------------------------

_UUID_CACHE: dict[bytes, UUID] = {}
_new_object = object.__new__
_set_attribute = object.__setattr__
# An enum member read through its class costs a descriptor call each time (0.5 us in
# CPython 3.11, a third of a UUID's decoding): read once.
_UNKNOWN_SAFETY = SafeUUID.unknown


def uuid_from_bytes(raw: bytes) -> UUID:
    """A UUID from its 16 bytes, cached: topic ids repeat across every message."""
    cached = _UUID_CACHE.get(raw)
    if cached is not None:
        return cached
    # UUID.__init__ validates every argument form; with exactly 16 bytes in hand the two
    # slots can be set directly, several times faster.
    value: UUID = _new_object(UUID)
    _set_attribute(value, "int", int.from_bytes(raw, "big"))
    _set_attribute(value, "is_safe", _UNKNOWN_SAFETY)
    if len(_UUID_CACHE) >= 4096:
        _UUID_CACHE.clear()
    _UUID_CACHE[raw] = value
    return value


# -- arrays of fixed-width values ----------------------------------------------------------


class ArrayStructs(dict[int, struct.Struct]):
    """`structs[n]` packs or unpacks n values of one code; small sizes are cached."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code

    def __missing__(self, count: int) -> struct.Struct:
        compiled = struct.Struct(f">{count}{self.code}")
        if count <= 1024:
            self[count] = compiled
        return compiled


INT32_ARRAY = ArrayStructs("i")
INT64_ARRAY = ArrayStructs("q")
INT16_ARRAY = ArrayStructs("h")
INT8_ARRAY = ArrayStructs("b")
UINT16_ARRAY = ArrayStructs("H")
UINT32_ARRAY = ArrayStructs("I")
FLOAT64_ARRAY = ArrayStructs("d")
BOOL_ARRAY = ArrayStructs("?")


# -- tagged fields ---------------------------------------------------------------------------


def write_tagged_fields(out: bytearray, fields: list[tuple[int, bytes | bytearray]]) -> None:
    """Write a tagged-field section: the count, then tag, size and data, sorted by tag."""
    fields.sort(key=_tag_of)
    write_uvarint(out, len(fields))
    previous = -1
    for tag, data in fields:
        if tag == previous:
            raise EncodeError("unknown_tagged_fields", f"tag {tag} is written twice")
        previous = tag
        write_uvarint(out, tag)
        write_uvarint(out, len(data))
        out += data


def _tag_of(entry: tuple[int, bytes | bytearray]) -> int:
    return entry[0]


# -- naming the field behind an encoding failure (the slow path, after one) -----------------

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool, int),
    "float64": (float, int),
    "uuid": (UUID,),
    "string": (str,),
    "bytes": (bytes, bytearray, memoryview),
    "records": (bytes, bytearray, memoryview),
}


def _value_problem(kind: str, value: object) -> str | None:
    if kind in _INT_RANGES:
        if not isinstance(value, int) or isinstance(value, bool) and kind != "int8":
            return f"holds {type(value).__name__} {value!r}, expected an integer ({kind})"
        low, high = _INT_RANGES[kind]
        if not low <= value <= high:
            return f"holds {value}, outside the {kind} range {low}..{high}"
        return None
    expected = _PYTHON_TYPES.get(kind)
    if expected is not None and not isinstance(value, expected):
        return f"holds {type(value).__name__} {value!r}, expected {kind}"
    return None


def find_unencodable(
    struct_value: object, version: int, prefix: str = ""
) -> tuple[str, str | None]:
    """The path of the first field whose value its schema type cannot carry, and why."""
    for info in getattr(type(struct_value), "FIELDS", ()):
        if not info.present_in(version):
            continue
        path = prefix + info.attribute
        value = getattr(struct_value, info.attribute, None)
        if value is None:
            continue
        kind = info.type
        if kind.startswith("[]"):
            if not isinstance(value, list | tuple):
                return path, f"holds {type(value).__name__}, expected a list"
            for item in value:
                if info.struct is not None:
                    found = find_unencodable(item, version, path + "[].")
                    if found[1] is not None:
                        return found
                elif (problem := _value_problem(kind[2:], item)) is not None:
                    return path + "[]", problem
        elif info.struct is not None:
            if not isinstance(value, info.struct):
                return path, f"holds {type(value).__name__}, expected {info.struct.__qualname__}"
            found = find_unencodable(value, version, path + ".")
            if found[1] is not None:
                return found
        elif (problem := _value_problem(kind, value)) is not None:
            return path, problem
    return "?", None


# -- the base of every generated struct -------------------------------------------------------


class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT"


# A generated __init__'s default for a field whose default is built afresh per instance
# (a list, a struct): the class's ``_FACTORIES`` names what builds it.
DEFAULT: Any = _Default()


def _no_values(_: object) -> tuple[()]:
    return ()


def slot_defaults(cls: type) -> dict[str, tuple[Any, Any]]:
    """Attribute -> (default, factory) of a generated struct class, in field order, one of
    the two ``dataclasses.MISSING``: what its ``__init__`` fills in for an absent argument.
    The C readers bind their defaults from this."""
    init = cls.__dict__["__init__"]
    code = init.__code__
    names = code.co_varnames[1 : code.co_argcount]
    factories = cls._FACTORIES  # type: ignore[attr-defined]
    missing = dataclasses.MISSING
    return {
        name: (missing, factories[name]) if default is DEFAULT else (default, missing)
        for name, default in zip(names, init.__defaults__ or (), strict=True)
    }


class _DataclassFields:
    """``__dataclass_fields__`` of a generated class, built on first use (``dataclasses
    .fields``, ``replace``, ``asdict`` and ``is_dataclass`` read it) and then kept on the
    class. Classes without a generated ``__init__`` (the bases) have none."""

    def __get__(self, instance: object, owner: type) -> dict[str, dataclasses.Field[Any]]:
        if "__init__" not in owner.__dict__:
            raise AttributeError("__dataclass_fields__")
        hints = owner.__dict__.get("__annotations__", {})
        specs = [
            (
                name,
                hints.get(name, Any),
                dataclasses.field(default=default)
                if factory is dataclasses.MISSING
                else dataclasses.field(default_factory=factory),
            )
            for name, (default, factory) in slot_defaults(owner).items()
        ]
        shape = dataclasses.make_dataclass(owner.__name__, specs, eq=False, repr=False)
        fields: dict[str, dataclasses.Field[Any]] = vars(shape)["__dataclass_fields__"]
        type.__setattr__(owner, "__dataclass_fields__", fields)
        return fields


class StructBase:
    """What every generated struct shares (a message, its nested structs, a record): what
    ``@dataclass(slots=True)`` gave them, without the decorator's run-time code generation
    (which cost most of importing the server).

    A subclass declares ``__slots__`` and ``__match_args__`` (its fields in order), an
    ``__init__`` taking each field by position or keyword with its default, and
    ``_FACTORIES`` for the fields whose default is built per instance. Instances compare
    equal when they are of the same class and every field is equal (else NotImplemented);
    they are unhashable (mutable, as a dataclass with ``eq``); ``repr`` names each field as
    the dataclass repr does; ``dataclasses.fields``, ``replace`` and ``asdict`` work through
    a ``__dataclass_fields__`` built on first use.
    """

    __slots__ = ()

    __match_args__: ClassVar[tuple[str, ...]] = ()
    _FACTORIES: ClassVar[dict[str, Any]] = {}
    _VALUES: ClassVar[Callable[[Any], Any]] = _no_values
    __hash__: ClassVar[None] = None  # type: ignore[assignment]
    if TYPE_CHECKING:
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    else:
        __dataclass_fields__ = _DataclassFields()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = cls.__match_args__
        cls._VALUES = attrgetter(*names) if names else _no_values

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        values = type(self)._VALUES  # a plain function stays unbound when read off the class
        return bool(values(self) == values(other))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__qualname__}({fields})"


# -- the base of every generated message -----------------------------------------------------


class Message(StructBase):
    """What every generated top-level message shares: dispatch by version.

    Generated classes fill `_READERS` and `_WRITERS`: one function per version, indexed by
    version (None where the version is not valid).
    """

    __slots__ = ()

    NAME: ClassVar[str]
    LOWEST_VERSION: ClassVar[int]
    HIGHEST_VERSION: ClassVar[int]
    _READERS: ClassVar[tuple[Any, ...]]
    _WRITERS: ClassVar[tuple[Any, ...]]
    _PYTHON_READERS: ClassVar[tuple[Any, ...]]
    _COMPILED_READERS: ClassVar[tuple[Any, ...]]

    @classmethod
    def _check_version(cls, version: int) -> None:
        if not cls.LOWEST_VERSION <= version <= cls.HIGHEST_VERSION:
            raise UnsupportedVersionError(
                f"{cls.NAME} has no version {version} "
                f"(valid: {cls.LOWEST_VERSION}-{cls.HIGHEST_VERSION})"
            )

    def write(self, out: bytearray, version: int) -> None:
        """Append this message's body at `version` to `out`."""
        try:
            writer = self._WRITERS[version]
        except IndexError:
            writer = None
        if writer is None or version < 0:
            self._check_version(version)
        try:
            writer(self, out)
        except EncodeError as exc:
            raise exc.located(self.NAME, version) from None
        except (struct.error, TypeError, AttributeError, ValueError, OverflowError) as exc:
            field, problem = find_unencodable(self, version)
            raise EncodeError(field, problem or f"cannot be encoded: {exc}").located(
                self.NAME, version
            ) from exc

    def encode(self, version: int) -> bytes:
        out = bytearray()
        self.write(out, version)
        return bytes(out)

    @classmethod
    def read(cls, buf: Buffer, pos: int, version: int) -> tuple[Self, int]:
        """Decode one message at `version` from `buf[pos:]`; return it and the next offset.

        `pos` must lie in 0..len(buf): a negative one is a DecodeError, never a read from
        the end. Raises UnsupportedVersionError for a version the schema lacks.
        """
        try:
            reader = cls._READERS[version]
        except IndexError:
            reader = None
        if reader is None or version < 0:
            cls._check_version(version)
        if not 0 <= pos <= len(buf):
            raise bad_start(pos, len(buf)).located(cls.NAME, version)
        try:
            return reader(buf, pos)  # type: ignore[no-any-return,unused-ignore]
        except DecodeError as exc:
            raise exc.located(cls.NAME, version) from None
        except (struct.error, IndexError, ValueError, OverflowError, RecursionError) as exc:
            # Generated code checks every bound; this is a safety net, never the plan.
            raise DecodeError("?", pos, f"malformed: {exc!r}").located(cls.NAME, version) from exc

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, version: int) -> Self:
        """Decode a whole buffer holding exactly one message body."""
        # Generated readers take bytes or a memoryview; bytes index and slice faster.
        buf = data if type(data) is bytes else memoryview(data)
        try:
            reader = cls._READERS[version]
        except IndexError:
            reader = None
        if reader is None or version < 0:
            cls._check_version(version)
        try:
            message, end = reader(buf, 0)
        except DecodeError as exc:
            raise exc.located(cls.NAME, version) from None
        except (struct.error, IndexError, ValueError, OverflowError, RecursionError) as exc:
            raise DecodeError("?", 0, f"malformed: {exc!r}").located(cls.NAME, version) from exc
        if end != len(buf):
            raise DecodeError(
                "(end)", end, f"{len(buf) - end} trailing bytes after the message"
            ).located(cls.NAME, version)
        return message  # type: ignore[no-any-return,unused-ignore]


# -- the optional compiled readers ---------------------------------------------------------

# Every generated message class, as it binds; `use_accelerator` switches them all.
_MESSAGE_CLASSES: list[type[Message]] = []
_speedups: Any = None
if not os.environ.get("KWIRE_PURE_PYTHON"):
    try:
        from kwire.protocol.messages import _speedups  # type: ignore[attr-defined,no-redef]
    except ImportError:  # built without a C compiler: the Python readers serve alone
        _speedups = None


def accelerate(namespace: dict[str, Any]) -> None:
    """Called by each generated module: bind its compiled readers, when there are any."""
    classes = [
        value
        for value in namespace.values()
        if isinstance(value, type)
        and issubclass(value, Message)
        and value is not Message
        and value.__module__ == namespace["__name__"]
    ]
    compiled: dict[str, Any] = {}
    if _speedups is not None:
        compiled = _speedups.bind(namespace["__name__"], namespace)
    for cls in classes:
        cls._PYTHON_READERS = cls._READERS
        cls._COMPILED_READERS = tuple(
            None if reader is None else compiled.get(reader.__name__, reader)
            for reader in cls._READERS
        )
        cls._READERS = cls._COMPILED_READERS
        _MESSAGE_CLASSES.append(cls)


def compiled_readers_available() -> bool:
    """Whether the C accelerator was built (and not disabled by KWIRE_PURE_PYTHON)."""
    return _speedups is not None


def use_accelerator(enabled: bool) -> None:
    """Switch every message class to the compiled readers (where built) or the Python ones."""
    for cls in _MESSAGE_CLASSES:
        cls._READERS = cls._COMPILED_READERS if enabled else cls._PYTHON_READERS
