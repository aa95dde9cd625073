"""Cross-checks kwire's codecs against kio 0.6.2, an independent implementation.

For every (message, version) pair both define: kio reads what kwire writes and finds the
same values, and kwire reads what kio writes (from the same values) and gets back the
message it started from, byte for byte.

kio represents some values differently; each difference is normalised explicitly:

- kio drops the `_ms` suffix of fields it types as `timedelta_i32`, `timedelta_i64` or
  `datetime_i64`, and holds `datetime.timedelta` / aware `datetime.datetime` values
  (a nullable datetime is None where the wire holds -1);
- `error_code` fields are `kio.schema.errors.ErrorCode` members, so only codes kio knows
  can cross; `timedelta_i64` values stay within what `timedelta` holds exactly;
- kio's all-zero uuid is None (it reads zeros as None; a tagged uuid defaults to None);
- arrays are tuples, integers are kio's int subclasses, records are `Records` (bytes);
- kio does not keep unknown tagged fields, so none are generated here.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pkgutil
import re
import types
import typing
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from kio.schema.index import schema_name_map
from kio.serial import entity_reader, entity_writer
from strategies import CLASS_VERSIONS, decode_with_every_reader, messages, normalise

from kwire.protocol._codec import ZERO_UUID, FieldInfo, Message

KIO_SETTINGS = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TIME_TYPES = frozenset({"timedelta_i32", "timedelta_i64", "datetime_i64"})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
# datetime ends at 9999-12-31T23:59:59.999; kio's TZAware starts at the epoch.
MAX_DATETIME_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - EPOCH) // ONE_MS
# timedelta is exact to the microsecond up to ~10**9 days, but kio writes
# round(total_seconds() * 1000), a float, exact only below 2**53 microseconds.
MAX_TIMEDELTA_I64_MS = 2**50 // 1000
ERROR_CODES = sorted(code.value for code in ErrorCode)

# kio 0.6.2 has no schema for these, by design: it covers the client protocol's messages,
# headers and the records Kafka writes into its logs as data, not KRaft metadata records
# or the controller's quorum-state file.
KIO_OMITS_NAMES = frozenset({"QuorumStateData"})
KIO_OMITS_KINDS = frozenset({"metadata"})


def _kio_classes() -> dict[tuple[str, int], type]:
    found = {}
    for versions in schema_name_map.values():
        for version, entities in versions.items():
            for path in entities.values():
                cls = pkgutil.resolve_name(path)
                found[(cls.__name__, version)] = cls
    return found


# kio 0.6.2 codes Kafka 3.9.0; kwire codes a version both 3.9.0 and 4.3.1 define as 4.3.1
# does (codegen/merge.py). Where 4.3.1 only renamed fields, the pairs are still compared,
# through this map (kio's attribute -> kwire's); where 4.3.1 changed the bytes of a
# version 3.9.0 had marked unstable, kwire cannot read kio's 3.9.0 form by design.
RENAMED_IN_4_3 = {
    ("VoteRequest", "candidate_epoch"): "replica_epoch",
    ("VoteRequest", "candidate_id"): "replica_id",
    ("VoteRequest", "candidate_directory_id"): "replica_directory_id",
}
RECODED_IN_4_3 = frozenset({("ReadShareGroupStateSummaryResponse", 0)})  # + LeaderEpoch

SCHEMAS_39 = Path(__file__).resolve().parents[2] / "shared" / "kafka-schemas" / "3.9"


def _pairs_of_3_9() -> set[tuple[str, int]] | None:
    """Every (message, version) Kafka 3.9.0's schemas define, or None without them."""
    if not SCHEMAS_39.is_dir():
        return None
    pairs = set()
    for path in SCHEMAS_39.glob("*/*.json"):
        if path.parent.name == "test-only":
            continue
        schema = json.loads(re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.MULTILINE))
        low, _, high = schema["validVersions"].partition("-")
        if low != "none":
            pairs |= {(schema["name"], v) for v in range(int(low), int(high or low) + 1)}
    return pairs


KIO = _kio_classes()
KWIRE: dict[tuple[str, int], type[Message]] = {(c.NAME, v): c for c, v in CLASS_VERSIONS}
BOTH = sorted((set(KIO) & set(KWIRE)) - RECODED_IN_4_3)
KIO_LACKS = sorted(set(KWIRE) - set(KIO))
KWIRE_LACKS = sorted(set(KIO) - set(KWIRE))
BOTH_IDS = [f"{name}-v{version}" for name, version in BOTH]

CHECKED: dict[str, set[tuple[str, int]]] = {"kio reads kwire": set(), "kwire reads kio": set()}


# -- matching kio's fields to kwire's --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldPair:
    kio: dataclasses.Field[Any]
    info: FieldInfo
    kafka_type: str | None  # kio's: None for structs, else int32, error_code, ...
    optional: bool  # kio's annotation admits None (the field, not an array element)
    entity: type | None  # kio's struct class, for struct and struct-array fields


def _squash(name: str) -> str:
    return name.lower().replace("_", "")


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        assert len(rest) == 1, annotation
        return rest[0], True
    return annotation, False


def _entity_of(annotation: Any) -> type | None:
    inner, _ = _split_optional(annotation)
    if typing.get_origin(inner) is tuple:
        inner, _ = _split_optional(typing.get_args(inner)[0])
    return inner if dataclasses.is_dataclass(inner) else None


def field_pairs(kio_cls: type, kwire_cls: type, version: int) -> list[FieldPair]:
    """Pair each kio field with the kwire field of the same name present at `version`."""
    fields: tuple[FieldInfo, ...] = kwire_cls.FIELDS  # type: ignore[attr-defined]
    present = {_squash(info.attribute): info for info in fields if info.present_in(version)}
    message = kwire_cls.__qualname__.split(".")[0]
    pairs = []
    for field in dataclasses.fields(kio_cls):
        kafka_type = field.metadata.get("kafka_type")
        name = RENAMED_IN_4_3.get((message, field.name), field.name)
        key = _squash(name) + ("ms" if kafka_type in TIME_TYPES else "")
        info = present.pop(key, None)
        assert info is not None, (
            f"kio's {kio_cls.__name__}.{field.name} has no kwire field at v{version}"
        )
        pairs.append(
            FieldPair(
                field, info, kafka_type, _split_optional(field.type)[1], _entity_of(field.type)
            )
        )
    assert not present, (
        f"kwire's {kwire_cls.__name__} v{version} fields unknown to kio: {sorted(present)}"
    )
    return pairs


def _kio_types() -> dict[tuple[type, str, int], FieldPair]:
    """(kwire struct class, attribute, version) -> its kio counterpart, for every pair."""
    table: dict[tuple[type, str, int], FieldPair] = {}

    def walk(kio_cls: type, kwire_cls: type, version: int) -> None:
        for pair in field_pairs(kio_cls, kwire_cls, version):
            table[(kwire_cls, pair.info.attribute, version)] = pair
            if pair.info.struct is not None:
                assert pair.entity is not None, (kio_cls, pair.kio.name)
                walk(pair.entity, pair.info.struct, version)

    for key in BOTH:
        # A mismatch is reported by test_kio_and_kwire_fields_match_one_to_one.
        with suppress(AssertionError):
            walk(KIO[key], KWIRE[key], key[1])
    return table


KIO_TYPES = _kio_types()


def kio_compatible(owner: type, info: FieldInfo, version: int) -> st.SearchStrategy[Any] | None:
    """Values kio can represent, for the fields whose kio type is narrower than the wire."""
    pair = KIO_TYPES[(owner, info.attribute, version)]
    if pair.kafka_type == "error_code":
        assert info.type == "int16" and not info.nullable_in(version), info
        return st.sampled_from(ERROR_CODES)
    if pair.kafka_type == "timedelta_i64":
        return st.integers(-MAX_TIMEDELTA_I64_MS, MAX_TIMEDELTA_I64_MS)
    if pair.kafka_type == "datetime_i64":
        instants = st.integers(0, MAX_DATETIME_MS)
        return st.one_of(st.just(-1), instants) if pair.optional else instants
    return None


def kio_messages(cls: type[Message], version: int) -> st.SearchStrategy[Any]:
    return messages(cls, version, unknown_tagged=False, override=kio_compatible)


# -- converting between the two --------------------------------------------------------------


def _ms(delta: timedelta) -> int:
    assert delta % ONE_MS == timedelta(0), f"{delta!r} is not a whole number of milliseconds"
    return delta // ONE_MS


def _instant_ms(instant: datetime) -> int:
    """Milliseconds since the epoch, rounded to the nearest: kio's reader builds datetimes
    through a float, so past ~2**53 microseconds (year 2255) it is a few microseconds off."""
    micros = (instant - EPOCH) // timedelta(microseconds=1)
    return (micros + 500) // 1000


def _from_kio_scalar(value: Any, pair: FieldPair) -> Any:
    kind = pair.kafka_type
    if value is None:
        if kind == "uuid":
            return ZERO_UUID  # kio reads the zero uuid as None
        if kind == "datetime_i64" and pair.optional:
            return -1
        return None
    if kind == "error_code":
        assert isinstance(value, ErrorCode), value
        return value.value
    if kind in ("timedelta_i32", "timedelta_i64"):
        assert isinstance(value, timedelta), value
        return _ms(value)
    if kind == "datetime_i64":
        assert isinstance(value, datetime) and value.tzinfo is not None, value
        return _instant_ms(value)
    if kind in ("bytes", "records"):
        return bytes(value)
    if kind == "string":
        return str(value)
    if kind == "bool":
        return bool(value)
    if kind == "float64":
        return float(value)
    if kind == "uuid":
        return value
    return int(value)


def from_kio(kio_obj: Any, kwire_cls: type, version: int) -> dict[str, Any]:
    """kio's struct as kwire-shaped plain data: kwire attribute names and value types."""
    out: dict[str, Any] = {}
    for pair in field_pairs(type(kio_obj), kwire_cls, version):
        value = getattr(kio_obj, pair.kio.name)
        struct = pair.info.struct
        if pair.info.type.startswith("[]"):
            if value is not None:
                assert isinstance(value, tuple), (pair.kio.name, value)
                if struct is not None:
                    value = [from_kio(item, struct, version) for item in value]
                else:
                    value = [_from_kio_scalar(item, pair) for item in value]
        elif struct is not None:
            value = None if value is None else from_kio(value, struct, version)
        else:
            value = _from_kio_scalar(value, pair)
        out[pair.info.attribute] = value
    return out


def present_fields(obj: Any, cls: type, version: int) -> dict[str, Any]:
    """kwire's struct as plain data, fields present at `version` only."""
    out: dict[str, Any] = {}
    for info in cls.FIELDS:  # type: ignore[attr-defined]
        if not info.present_in(version):
            continue
        value = getattr(obj, info.attribute)
        if info.struct is not None and value is not None:
            if info.type.startswith("[]"):
                value = [present_fields(item, info.struct, version) for item in value]
            else:
                value = present_fields(value, info.struct, version)
        else:
            value = normalise(value)
        out[info.attribute] = value
    return out


def _to_kio_scalar(value: Any, pair: FieldPair) -> Any:
    kind = pair.kafka_type
    if value is None:
        return None
    if kind == "error_code":
        return ErrorCode(value)
    if kind == "uuid" and value == ZERO_UUID:
        # kio's zero uuid is None: it reads zeros as None, and a tagged uuid field's
        # default is None, so only None is left out as Kafka leaves out the zero uuid.
        return None
    if kind in ("timedelta_i32", "timedelta_i64"):
        return timedelta(milliseconds=value)
    if kind == "datetime_i64":
        return None if value == -1 and pair.optional else EPOCH + timedelta(milliseconds=value)
    if kind in ("bytes", "records"):
        return bytes(value)
    return value


def to_kio(obj: Any, kio_cls: type, version: int) -> Any:
    """The kio instance holding the same values as kwire's `obj`."""
    kwargs = {}
    for pair in field_pairs(kio_cls, type(obj), version):
        value = getattr(obj, pair.info.attribute)
        if pair.info.type.startswith("[]"):
            if value is not None:
                if pair.entity is not None:
                    value = tuple(to_kio(item, pair.entity, version) for item in value)
                else:
                    value = tuple(_to_kio_scalar(item, pair) for item in value)
        elif pair.entity is not None:
            value = None if value is None else to_kio(value, pair.entity, version)
        else:
            value = _to_kio_scalar(value, pair)
        kwargs[pair.kio.name] = value
    return kio_cls(**kwargs)


def kio_encode(kio_obj: Any) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(kio_obj))(buffer, kio_obj)
    return buffer.getvalue()


def test_the_normalisation_handles_each_kio_representation() -> None:
    """The helpers above on hand-picked values, so that a broken helper cannot hide."""
    pair = FieldPair(
        dataclasses.field(),
        FieldInfo("X", "x", "uuid", (0, 0), (1, 0), (1, 0), None, None),
        "uuid",
        False,
        None,
    )
    assert _from_kio_scalar(None, pair) == ZERO_UUID
    assert _from_kio_scalar(UUID(int=5), pair) == UUID(int=5)
    assert _to_kio_scalar(ZERO_UUID, pair) is None
    assert _to_kio_scalar(UUID(int=5), pair) == UUID(int=5)
    stamp = dataclasses.replace(pair, kafka_type="datetime_i64", optional=True)
    assert _from_kio_scalar(None, stamp) == -1
    assert _from_kio_scalar(EPOCH + timedelta(milliseconds=1500), stamp) == 1500
    assert _from_kio_scalar(EPOCH + timedelta(milliseconds=1500, microseconds=-1), stamp) == 1500
    assert _to_kio_scalar(-1, stamp) is None
    assert _to_kio_scalar(1500, stamp) == datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)
    delta = dataclasses.replace(pair, kafka_type="timedelta_i32")
    assert _from_kio_scalar(timedelta(seconds=-2), delta) == -2000
    with pytest.raises(AssertionError):
        _from_kio_scalar(timedelta(microseconds=1), delta)
    code = dataclasses.replace(pair, kafka_type="error_code")
    assert _from_kio_scalar(ErrorCode(-1), code) == -1
    assert _to_kio_scalar(3, code) is ErrorCode(3)


# -- the pairs -----------------------------------------------------------------------------


def test_kio_lacks_only_metadata_records_and_quorum_state_and_kwire_lacks_nothing() -> None:
    lacking_names = sorted({name for name, _ in KIO_LACKS})
    print(
        f"\nkio and kwire both define {len(BOTH)} (message, version) pairs; "
        f"kwire defines {len(KWIRE)}, kio {len(KIO)}.\n"
        f"kio lacks {len(KIO_LACKS)} pairs of {len(lacking_names)} messages: "
        + ", ".join(f"{name} v{version}" for name, version in KIO_LACKS)
        + f"\nkwire lacks {len(KWIRE_LACKS)} pairs: {KWIRE_LACKS}"
    )
    assert KWIRE_LACKS == []
    of_3_9 = _pairs_of_3_9()
    if of_3_9 is None:
        pytest.skip(f"Kafka 3.9.0's schemas are not at {SCHEMAS_39} (../shared is absent)")
    unexpected = [
        (name, version)
        for name, version in KIO_LACKS
        if name not in KIO_OMITS_NAMES
        and KWIRE[(name, version)].KIND not in KIO_OMITS_KINDS
        and (name, version) in of_3_9  # kio codes 3.9.0: it cannot have 4.3.1's additions
    ]
    assert unexpected == [], "kio lacks pairs it was expected to have"
    kinds = {KWIRE[key].KIND for key in BOTH}
    assert kinds == {"request", "response", "header", "data"}


@pytest.mark.parametrize(("name", "version"), BOTH, ids=BOTH_IDS)
def test_kio_and_kwire_fields_match_one_to_one(name: str, version: int) -> None:
    def walk(kio_cls: type, kwire_cls: type) -> None:
        for pair in field_pairs(kio_cls, kwire_cls, version):
            info = pair.info
            assert (pair.kio.metadata.get("tag") is not None) == info.tagged_in(version), (
                f"{kwire_cls.__name__}.{info.attribute}: tagged in one only"
            )
            if info.tagged_in(version):
                assert pair.kio.metadata["tag"] == info.tag
            if info.struct is not None:
                assert pair.entity is not None, f"{info.attribute}: a struct only in kwire"
                walk(pair.entity, info.struct)
            elif pair.kafka_type not in TIME_TYPES | {"error_code"}:
                assert pair.kafka_type == info.type.removeprefix("[]"), info

    walk(KIO[(name, version)], KWIRE[(name, version)])


@pytest.mark.parametrize(("name", "version"), BOTH, ids=BOTH_IDS)
@KIO_SETTINGS
@given(data=st.data())
def test_kio_reads_what_kwire_writes(name: str, version: int, data: st.DataObject) -> None:
    kwire_cls, kio_cls = KWIRE[(name, version)], KIO[(name, version)]
    message = data.draw(kio_messages(kwire_cls, version), label="message")
    encoded = message.encode(version)

    read, size = entity_reader(kio_cls)(encoded, 0)
    assert size == len(encoded)
    assert type(read) is kio_cls
    assert from_kio(read, kwire_cls, version) == present_fields(message, kwire_cls, version)
    assert kio_encode(read) == encoded, "kio writes back different bytes"
    CHECKED["kio reads kwire"].add((name, version))


@pytest.mark.parametrize(("name", "version"), BOTH, ids=BOTH_IDS)
@KIO_SETTINGS
@given(data=st.data())
def test_kwire_reads_what_kio_writes(name: str, version: int, data: st.DataObject) -> None:
    kwire_cls, kio_cls = KWIRE[(name, version)], KIO[(name, version)]
    message = data.draw(kio_messages(kwire_cls, version), label="message")
    encoded = kio_encode(to_kio(message, kio_cls, version))

    decoded = decode_with_every_reader(kwire_cls, encoded, version)
    assert normalise(decoded) == normalise(message)
    assert decoded.encode(version) == encoded, "kwire writes different bytes than kio"
    CHECKED["kwire reads kio"].add((name, version))


def test_every_pair_both_define_was_checked_both_ways(request: pytest.FixtureRequest) -> None:
    """Runs last in this file: counts the pairs the two tests above checked."""
    wanted = {test_kio_reads_what_kwire_writes.__name__, test_kwire_reads_what_kio_writes.__name__}
    collected = [
        item
        for item in request.session.items
        if getattr(item, "originalname", None) in wanted and item.path == request.path
    ]
    if len(collected) < 2 * len(BOTH):
        pytest.skip("only part of the cross-checks was selected; run the whole file to count")
    print(
        f"\nchecked {len(CHECKED['kio reads kwire'])} pairs kwire -> kio and "
        f"{len(CHECKED['kwire reads kio'])} pairs kio -> kwire, of {len(BOTH)} both define "
        f"({len(KIO_LACKS)} kwire pairs kio lacks)"
    )
    for direction, checked in CHECKED.items():
        missing = sorted(set(BOTH) - checked)
        assert not missing, f"{direction}: {len(missing)} pairs not checked: {missing[:20]}"
    assert len(CHECKED["kio reads kwire"]) == len(CHECKED["kwire reads kio"]) == len(BOTH)
