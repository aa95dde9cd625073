"""Round trips of every generated codec at every version, plus tagged and absent fields.

The instances come from `strategies.messages`, which reads each class's FIELDS; whether
a field is ignorable is read straight from Kafka's JSON schemas, independently of the
generator, to check what the encoder does with a value a version cannot carry.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    CLASS_VERSIONS,
    MAX_TAG,
    MESSAGE_CLASSES,
    decode_with_every_reader,
    default_of,
    is_flexible,
    messages,
    non_default_value,
    normalise,
    pair_id,
)

from kwire.protocol._codec import FieldInfo, Message, RawTaggedField
from kwire.protocol.errors import EncodeError, UnsupportedVersionError
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.index import APIS, CONTROL_RECORDS, METADATA_RECORDS

ROUND_TRIP_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCHEMA_ROOT = Path(
    os.environ.get(
        "KWIRE_KAFKA_SCHEMAS", Path(__file__).resolve().parents[2] / "shared/kafka-schemas"
    )
)
# Oldest first: where both releases define a version, the newer one decides how it is coded.
RELEASES = ("3.9", "4.3")
needs_schemas = pytest.mark.skipif(
    not all((SCHEMA_ROOT / release).is_dir() for release in RELEASES),
    reason=f"Kafka's JSON schemas not found at {SCHEMA_ROOT} (set KWIRE_KAFKA_SCHEMAS)",
)


# -- discovery ------------------------------------------------------------------------------


def test_discovery_finds_every_class_the_index_names() -> None:
    indexed = {spec.request for spec in APIS.values()} | {spec.response for spec in APIS.values()}
    indexed |= set(METADATA_RECORDS.values()) | set(CONTROL_RECORDS.values())
    missing = sorted(cls.__name__ for cls in indexed - set(MESSAGE_CLASSES))
    assert not missing, f"classes in the index but not found by walking the package: {missing}"
    for spec in APIS.values():
        for cls in (spec.request, spec.response):
            versions = (cls.LOWEST_VERSION, cls.HIGHEST_VERSION)
            assert versions == (spec.lowest_version, spec.highest_version), cls.NAME
    assert len(CLASS_VERSIONS) == sum(
        cls.HIGHEST_VERSION - cls.LOWEST_VERSION + 1 for cls in MESSAGE_CLASSES
    )
    print(f"{len(MESSAGE_CLASSES)} top-level classes, {len(CLASS_VERSIONS)} (class, version) pairs")


# -- the round trip -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "version"), CLASS_VERSIONS, ids=[pair_id(c, v) for c, v in CLASS_VERSIONS]
)
@ROUND_TRIP_SETTINGS
@given(data=st.data())
def test_every_message_round_trips_at_every_version(
    cls: type[Message], version: int, data: st.DataObject
) -> None:
    message = data.draw(messages(cls, version), label="message")
    encoded = message.encode(version)
    decoded = decode_with_every_reader(cls, encoded, version)
    assert type(decoded) is cls
    assert normalise(decoded) == normalise(message)
    assert decoded.encode(version) == encoded
    assert normalise(decode_with_every_reader(cls, bytearray(encoded), version)) == normalise(
        message
    )

    # `read` from the middle of a larger buffer stops exactly at the message's end.
    before, after = b"\xaa" * 3, b"\xbb" * 5
    read, end = cls.read(memoryview(before + encoded + after), len(before), version)
    assert end == len(before) + len(encoded)
    assert normalise(read) == normalise(message)


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda c: c.__name__)
def test_encoding_at_a_version_outside_the_schema_raises_unsupported_version(
    cls: type[Message],
) -> None:
    for version in sorted({-1, cls.LOWEST_VERSION - 1, cls.HIGHEST_VERSION + 1, 32767}):
        with pytest.raises(UnsupportedVersionError, match=cls.NAME):
            cls().encode(version)


def _first_string_field(cls: type[Message], version: int) -> FieldInfo | None:
    for info in cls.FIELDS:
        if info.type == "string" and info.present_in(version):
            return info
    return None


STRING_CASES = [
    (cls, version, info)
    for cls in MESSAGE_CLASSES
    for version in sorted({cls.LOWEST_VERSION, cls.HIGHEST_VERSION})
    if (info := _first_string_field(cls, version)) is not None
]


@pytest.mark.parametrize(
    ("cls", "version", "info"),
    STRING_CASES,
    ids=[f"{pair_id(c, v)}-{i.attribute}" for c, v, i in STRING_CASES],
)
def test_strings_hold_up_to_32767_utf8_bytes(
    cls: type[Message], version: int, info: FieldInfo
) -> None:
    longest = "é" * 16383 + "a"  # 32767 bytes
    message = cls(**{info.attribute: longest})
    decoded = decode_with_every_reader(cls, message.encode(version), version)
    assert getattr(decoded, info.attribute) == longest
    for too_long in ("a" * 32768, "é" * 16384):
        with pytest.raises(EncodeError) as caught:
            cls(**{info.attribute: too_long}).encode(version)
        assert info.attribute in str(caught.value)
        assert f"{cls.NAME} v{version}" in str(caught.value)


# -- unknown tagged fields ------------------------------------------------------------------


def _top_level_tagged(cls: type[Message], version: int) -> list[FieldInfo]:
    return [f for f in cls.FIELDS if f.present_in(version) and f.tagged_in(version)]


TAGGED_PAIRS = [
    (cls, version)
    for cls, version in CLASS_VERSIONS
    if is_flexible(cls, version) and _top_level_tagged(cls, version)
]


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _tagged_section(data: bytes, start: int) -> list[tuple[int, bytes]]:
    """Parse the tagged-field section that starts at `start` and must end the buffer."""
    count, pos = _read_uvarint(data, start)
    entries = []
    for _ in range(count):
        tag, pos = _read_uvarint(data, pos)
        size, pos = _read_uvarint(data, pos)
        entries.append((tag, data[pos : pos + size]))
        pos += size
    assert pos == len(data), "the top-level tagged fields must end the message"
    return entries


def test_the_unknown_tagged_field_cases_cover_messages_with_known_tagged_fields() -> None:
    assert len(TAGGED_PAIRS) >= 20, TAGGED_PAIRS
    print(f"{len(TAGGED_PAIRS)} (class, version) pairs with top-level known tagged fields")


@pytest.mark.parametrize(
    ("cls", "version"), TAGGED_PAIRS, ids=[pair_id(c, v) for c, v in TAGGED_PAIRS]
)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_unknown_tagged_fields_survive_in_sorted_position_among_known_ones(
    cls: type[Message], version: int, data: st.DataObject
) -> None:
    known = _top_level_tagged(cls, version)
    known_tags = {f.tag for f in known}
    message = data.draw(messages(cls, version, unknown_tagged=False), label="message")
    # Without known tagged fields or unknown ones the section is the single byte 0.
    bare = dataclasses.replace(
        message, **{f.attribute: default_of(cls, f.attribute) for f in known}
    )
    bare_encoded = bare.encode(version)
    assert bare_encoded[-1] == 0
    start = len(bare_encoded) - 1

    for f in known:  # every known tagged field holds a value, so every one is written
        setattr(message, f.attribute, non_default_value(cls, f, version))
    # Unknown tags around, between and far above the known ones, given out of order.
    candidates = {t + d for t in known_tags for d in (-1, 1)} | {max(known_tags) + 100, MAX_TAG}
    pool = sorted(t for t in candidates if t >= 0 and t not in known_tags)
    unknown_tags = data.draw(
        st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique=True).map(
            lambda tags: sorted(tags, reverse=True)
        ),
        label="unknown tags",
    )
    message.unknown_tagged_fields = tuple(RawTaggedField(tag, b"u%d" % tag) for tag in unknown_tags)

    encoded = message.encode(version)
    assert encoded[:start] == bare_encoded[:start]
    section = _tagged_section(encoded, start)
    tags = [tag for tag, _ in section]
    assert tags == sorted(known_tags | set(unknown_tags)), "tags on the wire must be sorted"
    for tag, payload in section:
        if tag not in known_tags:
            assert payload == b"u%d" % tag

    decoded = decode_with_every_reader(cls, encoded, version)
    assert decoded.unknown_tagged_fields == tuple(
        RawTaggedField(tag, b"u%d" % tag) for tag in sorted(unknown_tags)
    )
    for f in known:
        assert normalise(getattr(decoded, f.attribute)) == normalise(getattr(message, f.attribute))
    assert decoded.encode(version) == encoded


def test_unknown_tagged_fields_interleave_with_a_known_one_on_the_wire() -> None:
    log_dir = UUID(int=0x1234)
    message = BrokerHeartbeatRequest(
        broker_id=3,
        offline_log_dirs=[log_dir],
        unknown_tagged_fields=(RawTaggedField(7, b"seven"), RawTaggedField(1, b"one")),
    )
    encoded = message.encode(1)
    bare = BrokerHeartbeatRequest(broker_id=3).encode(1)
    section = _tagged_section(encoded, len(bare) - 1)
    assert section == [(0, b"\x02" + log_dir.bytes), (1, b"one"), (7, b"seven")]
    decoded = decode_with_every_reader(BrokerHeartbeatRequest, encoded, 1)
    assert decoded.offline_log_dirs == [log_dir]
    assert decoded.unknown_tagged_fields == (RawTaggedField(1, b"one"), RawTaggedField(7, b"seven"))


def test_unknown_tagged_fields_in_a_version_without_tagged_fields_raise() -> None:
    from kwire.protocol.messages.fetch import FetchRequest

    message = FetchRequest(unknown_tagged_fields=(RawTaggedField(5, b"x"),))
    with pytest.raises(EncodeError) as caught:
        message.encode(FetchRequest.FIRST_FLEXIBLE_VERSION - 1)
    assert "FetchRequest" in str(caught.value)


# -- fields a version does not have -----------------------------------------------------------


def _strip_comments(text: str) -> str:
    return re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE)


def _load_schemas(release: str) -> dict[str, dict[str, Any]]:
    schemas = {}
    for path in sorted((SCHEMA_ROOT / release).glob("*/*.json")):
        if path.parent.name == "test-only":
            continue
        schema = json.loads(_strip_comments(path.read_text(encoding="utf-8")))
        schemas[schema["name"]] = schema
    return schemas


def _walk_fields(
    fields: list[dict[str, Any]],
    common: dict[str, list[dict[str, Any]]],
    prefix: tuple[str, ...],
    paths: set[tuple[str, ...]],
    ignorable: set[tuple[str, ...]],
) -> None:
    """Collect every field's Kafka-name path, and those of the fields marked ignorable."""
    for field in fields:
        path = (*prefix, field["name"])
        paths.add(path)
        if field.get("ignorable", False):
            ignorable.add(path)
        nested = field.get("fields")
        if nested is None:
            nested = common.get(field["type"].removeprefix("[]"))
        if nested is not None:
            _walk_fields(nested, common, path, paths, ignorable)


@dataclasses.dataclass(frozen=True)
class _ReleaseSchema:
    valid: range  # the versions this release defines
    ignorable: set[tuple[str, ...]]  # Kafka-name paths of the fields it marks ignorable
    paths: set[tuple[str, ...]]  # every field path it has


def _version_range(text: str) -> range:
    if text == "none":
        return range(0)
    low, _, high = text.partition("-")
    return range(int(low), int(high or low) + 1)


def _release_schemas() -> dict[str, list[_ReleaseSchema]]:
    """Per message name, what each release's schema says, oldest release first."""
    result: dict[str, list[_ReleaseSchema]] = {}
    for release in RELEASES:
        for name, schema in _load_schemas(release).items():
            common = {s["name"]: s["fields"] for s in schema.get("commonStructs", [])}
            ignorable: set[tuple[str, ...]] = set()
            paths: set[tuple[str, ...]] = set()
            _walk_fields(schema.get("fields", []), common, (), paths, ignorable)
            valid = _version_range(schema["validVersions"])
            result.setdefault(name, []).append(_ReleaseSchema(valid, ignorable, paths))
    return result


def _is_ignorable(
    releases: list[_ReleaseSchema], path: tuple[str, ...], absent: tuple[int, ...]
) -> bool:
    """Whether the release deciding each absent version (the newest defining it) marks the
    field ignorable; a release that does not know the field has no say."""
    says = set()
    for version in absent:
        owner = next((r for r in reversed(releases) if version in r.valid), None)
        if owner is not None and path in owner.paths:
            says.add(path in owner.ignorable)
    if not says:
        says = {path in r.ignorable for r in releases if path in r.paths}
    assert len(says) == 1, f"releases disagree on whether {path} is ignorable"
    return says.pop()


@dataclasses.dataclass(frozen=True)
class AbsentFieldCase:
    cls: type[Message]
    chain: tuple[tuple[type, FieldInfo], ...]  # (owner, field) from the top level down
    versions: tuple[int, ...]  # valid versions lacking the field, all its parents present
    present_version: int  # a version that has the field
    ignorable: bool

    @property
    def id(self) -> str:
        path = ".".join(
            info.name + ("[]" if info.type.startswith("[]") else "") for _, info in self.chain
        )
        return f"{self.cls.NAME}.{path.removesuffix('[]')}"


def _absent_field_cases() -> list[AbsentFieldCase]:
    if not all((SCHEMA_ROOT / release).is_dir() for release in RELEASES):
        return []  # the tests that use them skip (needs_schemas)
    schemas = _release_schemas()
    cases = []

    def walk(cls: type[Message], owner: type, chain: tuple[tuple[type, FieldInfo], ...]) -> None:
        for info in owner.FIELDS:  # type: ignore[attr-defined]
            here = (*chain, (owner, info))
            parents_present = [
                v
                for v in range(cls.LOWEST_VERSION, cls.HIGHEST_VERSION + 1)
                if all(parent.present_in(v) for _, parent in chain)
            ]
            absent = tuple(v for v in parents_present if not info.present_in(v))
            present = [v for v in parents_present if info.present_in(v)]
            if absent and present:
                kafka_path = tuple(i.name for _, i in here)
                cases.append(
                    AbsentFieldCase(
                        cls,
                        here,
                        absent,
                        present[-1],
                        _is_ignorable(schemas[cls.NAME], kafka_path, absent),
                    )
                )
            if info.struct is not None:
                walk(cls, info.struct, here)

    for cls in MESSAGE_CLASSES:
        assert cls.NAME in schemas, f"no schema named {cls.NAME} under {SCHEMA_ROOT}"
        walk(cls, cls, ())
    return cases


ABSENT_FIELD_CASES = _absent_field_cases()
NON_IGNORABLE_CASES = [case for case in ABSENT_FIELD_CASES if not case.ignorable]
IGNORABLE_CASES = [case for case in ABSENT_FIELD_CASES if case.ignorable]


def _message_with(case: AbsentFieldCase, value: Any) -> Any:
    """A default message whose one field on `case.chain` holds `value`; parents are
    defaults (structs) or one default element (arrays) so that the field is reachable."""
    message = case.cls()
    holder: Any = message
    for _, info in case.chain[:-1]:
        child = info.struct()  # type: ignore[misc]
        setattr(holder, info.attribute, [child] if info.type.startswith("[]") else child)
        holder = child
    _, info = case.chain[-1]
    setattr(holder, info.attribute, value)
    return message


@needs_schemas
def test_the_schemas_give_both_ignorable_and_non_ignorable_absent_fields() -> None:
    assert len(NON_IGNORABLE_CASES) >= 50
    assert len(IGNORABLE_CASES) >= 20
    print(
        f"{len(NON_IGNORABLE_CASES)} non-ignorable and {len(IGNORABLE_CASES)} ignorable fields "
        "absent from some version"
    )


@needs_schemas
@pytest.mark.parametrize("case", NON_IGNORABLE_CASES, ids=lambda case: case.id)
def test_a_value_in_a_non_ignorable_field_the_version_lacks_raises_naming_field_and_version(
    case: AbsentFieldCase,
) -> None:
    owner, info = case.chain[-1]
    value = non_default_value(owner, info, case.present_version)
    message = _message_with(case, value)
    for version in case.versions:
        with pytest.raises(EncodeError) as caught:
            message.encode(version)
        text = str(caught.value)
        assert info.attribute in text, text
        assert f"{case.cls.NAME} v{version}" in text, text
        assert caught.value.version == version
        # The same message with the field at its default encodes fine.
        _message_with(case, default_of(owner, info.attribute)).encode(version)


@needs_schemas
@pytest.mark.parametrize("case", IGNORABLE_CASES, ids=lambda case: case.id)
def test_a_value_in_an_ignorable_field_the_version_lacks_is_dropped_silently(
    case: AbsentFieldCase,
) -> None:
    owner, info = case.chain[-1]
    value = non_default_value(owner, info, case.present_version)
    message = _message_with(case, value)
    without = _message_with(case, default_of(owner, info.attribute))
    for version in case.versions:
        encoded = message.encode(version)
        assert encoded == without.encode(version)
        assert normalise(decode_with_every_reader(case.cls, encoded, version)) == normalise(without)
