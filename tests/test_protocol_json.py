"""kwire.protocol.json: Kafka's JsonConverter form of generated messages."""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import pkgutil
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

import kwire.protocol.messages
from kwire.protocol._codec import FieldInfo, Message
from kwire.protocol.json import (
    JsonConversionError,
    camel_case,
    dumps,
    from_json,
    metadata_record_from_json,
    metadata_record_json,
    metadata_record_type_name,
    to_json,
    to_json_text,
)
from kwire.protocol.messages.control.voters_record import VotersRecord
from kwire.protocol.messages.fetch_snapshot import FetchSnapshotResponse
from kwire.protocol.messages.index import CONTROL_RECORDS, METADATA_RECORDS
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.user_scram_credential_record import (
    UserScramCredentialRecord,
)

# A topic id from the captured Kafka log, and its Uuid.toString() form.
TOPIC_ID_TEXT = "1cVOjHnlSiOJJf37onEVPA"
TOPIC_ID = uuid.UUID(bytes=base64.urlsafe_b64decode(TOPIC_ID_TEXT + "=="))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BrokerId", "brokerId"),
        ("KRaftVersionFeature", "kRaftVersionFeature"),
        ("Version", "version"),
        ("isr", "isr"),
    ],
)
def test_camel_case(name: str, expected: str) -> None:
    assert camel_case(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ZkMigrationStateRecord", "ZK_MIGRATION_STATE_RECORD"),
        ("FeatureLevelRecord", "FEATURE_LEVEL_RECORD"),
        ("NoOpRecord", "NO_OP_RECORD"),
        ("BrokerRegistrationChangeRecord", "BROKER_REGISTRATION_CHANGE_RECORD"),
        ("KRaftVersionRecord", "KRAFT_VERSION_RECORD"),
        ("AccessControlEntryRecord", "ACCESS_CONTROL_ENTRY_RECORD"),
    ],
)
def test_metadata_record_type_name(name: str, expected: str) -> None:
    assert metadata_record_type_name(name) == expected


def test_every_metadata_record_type_name_is_distinct() -> None:
    names = [metadata_record_type_name(cls) for cls in METADATA_RECORDS.values()]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Z_]+_RECORD", n) for n in names)


def _partition(**changes: Any) -> PartitionRecord:
    base = PartitionRecord(
        partition_id=0,
        topic_id=TOPIC_ID,
        replicas=[2],
        isr=[2],
        leader=2,
        leader_epoch=0,
        partition_epoch=0,
        directories=[uuid.UUID(int=0x1234)],
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("message", "version", "expected"),
    [
        # Directories arrives in v1; the tagged LeaderRecoveryState is left out at its default.
        (
            _partition(),
            0,
            '{"partitionId":0,"topicId":"1cVOjHnlSiOJJf37onEVPA","replicas":[2],"isr":[2],'
            '"removingReplicas":[],"addingReplicas":[],"leader":2,"leaderEpoch":0,"partitionEpoch":0}',
        ),
        (
            _partition(leader_recovery_state=1),
            1,
            '{"partitionId":0,"topicId":"1cVOjHnlSiOJJf37onEVPA","replicas":[2],"isr":[2],'
            '"removingReplicas":[],"addingReplicas":[],"leader":2,"leaderRecoveryState":1,'
            '"leaderEpoch":0,"partitionEpoch":0,"directories":["AAAAAAAAAAAAAAAAAAASNA"]}',
        ),
        # Nullable tagged arrays: null (the default) is omitted, [] is written.
        (
            _partition(eligible_leader_replicas=[], last_known_elr=None),
            2,
            '{"partitionId":0,"topicId":"1cVOjHnlSiOJJf37onEVPA","replicas":[2],"isr":[2],'
            '"removingReplicas":[],"addingReplicas":[],"leader":2,"leaderEpoch":0,'
            '"partitionEpoch":0,"directories":["AAAAAAAAAAAAAAAAAAASNA"],"eligibleLeaderReplicas":[]}',
        ),
        (
            FeatureLevelRecord(name="metadata.version", feature_level=21),
            0,
            '{"name":"metadata.version","featureLevel":21}',
        ),
        # bytes are standard base64 with padding; int32 iterations a plain number.
        (
            UserScramCredentialRecord(
                name="alice",
                mechanism=1,
                salt=b"\xfb\xff",
                stored_key=b"pw",
                server_key=b"",
                iterations=8192,
            ),
            0,
            '{"name":"alice","mechanism":1,"salt":"+/8=","storedKey":"cHc=","serverKey":"",'
            '"iterations":8192}',
        ),
    ],
)
def test_to_json_text(message: Message, version: int, expected: str) -> None:
    assert to_json_text(message, version) == expected


def test_nullable_string_and_int64() -> None:
    record = RegisterBrokerRecord(broker_id=2, broker_epoch=2**62 + 1, rack=None)
    node = to_json(record, 3)
    assert node["rack"] is None
    assert node["brokerEpoch"] == 2**62 + 1
    assert '"brokerEpoch":4611686018427387905' in to_json_text(record, 3)
    assert "isMigratingZkBroker" not in to_json(record, 1)  # added in v2


def test_struct_and_struct_array() -> None:
    voter = VotersRecord.Voter(voter_id=1, voter_directory_id=uuid.UUID(int=1))
    voter.endpoints = [VotersRecord.Endpoint(name="CONTROLLER", host="h", port=9093)]
    voter.kraft_version_feature.max_supported_version = 1
    text = to_json_text(VotersRecord(version=0, voters=[voter]), 0)
    assert text == (
        '{"version":0,"voters":[{"voterId":1,"voterDirectoryId":"AAAAAAAAAAAAAAAAAAAAAQ",'
        '"endpoints":[{"name":"CONTROLLER","host":"h","port":9093}],'
        '"kRaftVersionFeature":{"minSupportedVersion":0,"maxSupportedVersion":1}}]}'
    )


def test_records_fields_are_not_serialized() -> None:
    response = FetchSnapshotResponse()
    partition = FetchSnapshotResponse.PartitionSnapshot(index=0, unaligned_records=b"abc")
    response.topics = [FetchSnapshotResponse.TopicSnapshot(name="t", partitions=[partition])]
    node = to_json(response, 0)
    assert node["topics"][0]["partitions"][0]["unalignedRecords"] == ""
    sized = to_json(response, 0, records_as_size=True)
    assert sized["topics"][0]["partitions"][0]["unalignedRecordsSizeInBytes"] == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1.0"),
        (0.5, "0.5"),
        (1e7, "1.0E7"),
        (12345678.9, "1.23456789E7"),
        (1e-3, "0.001"),
        (1.5e-4, "1.5E-4"),
        (-2.5e20, "-2.5E20"),
        (0.0, "0.0"),
        (float("nan"), '"NaN"'),
        ('a"b\\c\n\t\x01é/', '"a\\"b\\\\c\\n\\t\\u0001é/"'),
        ({"a": [1, None, True, False]}, '{"a":[1,null,true,false]}'),
    ],
)
def test_dumps_matches_jackson(value: object, expected: str) -> None:
    assert dumps(value) == expected


def test_metadata_envelope() -> None:
    envelope = metadata_record_json(FeatureLevelRecord(name="x", feature_level=1), 0)
    assert (
        dumps(envelope)
        == '{"type":"FEATURE_LEVEL_RECORD","version":0,"data":{"name":"x","featureLevel":1}}'
    )
    message, version = metadata_record_from_json(envelope)
    assert (message, version) == (FeatureLevelRecord(name="x", feature_level=1), 0)


@pytest.mark.parametrize(
    ("node", "error"),
    [
        ({"name": "x"}, "unable to locate field 'featureLevel'"),
        ({"name": "x", "featureLevel": "1"}, "expected an integer"),
        ({"name": "x", "featureLevel": 70000}, "out of range"),
        ({"name": None, "featureLevel": 1}, "not nullable"),
        ([1], "expected a JSON object"),
    ],
)
def test_from_json_rejects(node: object, error: str) -> None:
    with pytest.raises(JsonConversionError, match=re.escape(error)):
        from_json(FeatureLevelRecord, node, 0)


def test_from_json_rejects_field_absent_in_version() -> None:
    node = to_json(_partition(), 1)
    with pytest.raises(JsonConversionError, match="'directories' is not supported in version 0"):
        from_json(PartitionRecord, node, 0)


def test_from_json_bad_uuid() -> None:
    node = to_json(_partition(), 1)
    node["topicId"] = "AAAA"
    with pytest.raises(JsonConversionError, match="decodes to 3 bytes"):
        from_json(PartitionRecord, node, 1)


# -- round trip over every generated message ------------------------------------------------


def _all_message_classes() -> list[type[Message]]:
    found: dict[str, type[Message]] = {}
    package = kwire.protocol.messages
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, Message) and obj is not Message:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return sorted(found.values(), key=lambda c: c.__name__)


_SAMPLES: dict[str, Any] = {
    "bool": True,
    "int8": -7,
    "int16": 300,
    "uint16": 65000,
    "int32": -100000,
    "uint32": 4000000000,
    "int64": -(2**40),
    "float64": 2.5e-7,
    "string": 'héllo "x"\n',
    "uuid": uuid.UUID(int=(1 << 127) | 12345),
    "bytes": b"\x00\xffbin",
    "records": b"",  # Kafka's JSON never carries record data, so only b"" survives
}


def _populated(cls: type, version: int) -> Any:
    obj = cls()
    for info in cls.FIELDS:  # type: ignore[attr-defined]
        if info.present_in(version):
            setattr(obj, info.attribute, _value(info, version))
    return obj


def _value(info: FieldInfo, version: int) -> Any:
    if info.type.startswith("[]"):
        if info.struct is not None:
            return [_populated(info.struct, version)]
        return [_SAMPLES[info.type[2:]], _SAMPLES[info.type[2:]]]
    if info.struct is not None:
        return _populated(info.struct, version)
    return _SAMPLES[info.type]


_PAIRS = [
    (cls, v)
    for cls in _all_message_classes()
    for v in range(cls.LOWEST_VERSION, cls.HIGHEST_VERSION + 1)
]


@pytest.mark.parametrize(("cls", "version"), _PAIRS, ids=[f"{c.__name__}-v{v}" for c, v in _PAIRS])
def test_round_trip_every_message_version(cls: type[Message], version: int) -> None:
    message = _populated(cls, version)
    text = to_json_text(message, version)
    back = from_json(cls, json.loads(text), version)
    assert to_json_text(back, version) == text
    assert back.encode(version) == message.encode(version)


def test_control_records_are_covered() -> None:
    assert {cls.__name__ for cls in CONTROL_RECORDS.values()} <= {c.__name__ for c, _ in _PAIRS}


# -- the genuine dump ------------------------------------------------------------------------


def test_every_payload_in_kafka_dumps_round_trips(kafka_captures: Path) -> None:
    payloads = []
    for name in ("metadata-log-dump.txt", "metadata-log-checkpoints-dump.txt"):
        for line in (kafka_captures / name).read_text().splitlines():
            if " payload: " in line:
                payloads.append(line.split(" payload: ", 1)[1])
    assert len(payloads) > 100
    for text in payloads:
        message, version = metadata_record_from_json(json.loads(text))
        assert dumps(metadata_record_json(message, version)) == text
