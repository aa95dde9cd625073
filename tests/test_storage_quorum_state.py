"""``quorum-state`` at both data versions, against every genuine file in the captures.

Kafka writes version 0 for kraft.version 0 and version 1 for kraft.version 1
(KRaftVersion.quorumStateVersion, FileQuorumStateStore, ElectionState.toQuorumStateData),
and reads with the generated QuorumStateDataJsonConverter, which requires every field of
the file's version.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kwire.log.checkpoints import uuid_from_kafka_string
from kwire.log.quorum_state import (
    QuorumStateFormatError,
    election_quorum_state,
    format_quorum_state,
    parse_quorum_state,
    read_quorum_state,
    write_quorum_state,
)

CAPTURES = Path(__file__).parents[1].parent / "shared" / "captures"
GENUINE = sorted(CAPTURES.glob("kafka-*/**/__cluster_metadata-0/quorum-state"))


@pytest.mark.skipif(not GENUINE, reason=f"no captures at {CAPTURES}")
@pytest.mark.parametrize("path", GENUINE, ids=lambda p: str(p.relative_to(CAPTURES).parent.parent))
def test_every_genuine_quorum_state_is_rewritten_byte_for_byte(path: Path, tmp_path: Path) -> None:
    raw = path.read_bytes()
    state = parse_quorum_state(raw)
    assert format_quorum_state(state) == raw
    write_quorum_state(tmp_path / "quorum-state", state)
    assert (tmp_path / "quorum-state").read_bytes() == raw


# The final quorum-state of each quorum-prevote node (Kafka 4.3.1, kraft.version 1) and of
# the 3.9 quorum-election node 11 (kraft.version 0), rebuilt from the election they record.
ELECTIONS = [
    (
        "kafka-4.3/quorum-prevote/metadata-log-1",
        election_quorum_state(1, leader_id=1, leader_epoch=4, voted_id=-1),
    ),
    (
        "kafka-4.3/quorum-prevote/metadata-log-2",
        election_quorum_state(
            1,
            leader_id=1,
            leader_epoch=4,
            voted_id=1,
            voted_directory_id=uuid_from_kafka_string("dkuzBlOnSDmSdp3skeoWwA"),
        ),
    ),
    (
        "kafka-3.9/dynamic-quorum/metadata-log-21",
        election_quorum_state(1, leader_id=21, leader_epoch=1, voted_id=-1),
    ),
    (
        "kafka-3.9/quorum-election/metadata-log-11",
        election_quorum_state(
            0,
            leader_id=13,
            leader_epoch=3,
            voted_id=-1,
            voted_directory_id=uuid.UUID(int=9),  # dropped at version 0
            voter_ids=(11, 12, 13),
        ),
    ),
]


@pytest.mark.parametrize(("log_dir", "state"), ELECTIONS, ids=[e[0] for e in ELECTIONS])
def test_an_election_is_written_at_its_kraft_versions_data_version(
    log_dir: str, state: object
) -> None:
    path = CAPTURES / log_dir / "__cluster_metadata-0" / "quorum-state"
    if not path.exists():
        pytest.skip(f"{path} not found")
    assert read_quorum_state(path) == state
    assert format_quorum_state(state) == path.read_bytes()  # type: ignore[arg-type]


def test_an_unknown_kraft_version_has_no_quorum_state() -> None:
    with pytest.raises(ValueError, match="Unsupported KRaft feature level: 2"):
        election_quorum_state(2, leader_id=1, leader_epoch=1, voted_id=-1)


V1 = '"leaderId":1,"leaderEpoch":4,"votedId":1,"votedDirectoryId":"dkuzBlOnSDmSdp3skeoWwA"'
V0 = '"clusterId":"","leaderId":1,"leaderEpoch":4,"votedId":-1,"appliedOffset":0,"currentVoters":[]'


@pytest.mark.parametrize(
    ("text", "missing", "version"),
    [
        ('{"leaderId":1,"leaderEpoch":4,"votedId":1,"data_version":1}', "votedDirectoryId", 1),
        (
            '{"leaderEpoch":4,"votedId":1,"votedDirectoryId":"AAAAAAAAAAAAAAAAAAAAAA","data_version":1}',
            "leaderId",
            1,
        ),
        (V0.replace(',"currentVoters":[]', "") + ',"data_version":0', "currentVoters", 0),
        (V0.replace('"clusterId":"",', "") + ',"data_version":0', "clusterId", 0),
        (
            V1.replace('"votedDirectoryId":"dkuzBlOnSDmSdp3skeoWwA"', '"appliedOffset":0')
            + ',"data_version":0',
            "clusterId",
            0,
        ),
    ],
)
def test_a_field_of_the_files_version_is_mandatory(text: str, missing: str, version: int) -> None:
    with pytest.raises(QuorumStateFormatError) as refused:
        parse_quorum_state(("{" + text.strip("{}") + "}").encode())
    assert str(refused.value).endswith(
        f"QuorumStateData: unable to locate field '{missing}', which is mandatory in version {version}"
    )


def test_fields_of_the_other_version_are_ignored() -> None:
    # A version 1 file with version 0's fields reads as version 1, as Kafka's converter reads it.
    raw = (
        "{"
        + V1
        + ',"clusterId":"x","appliedOffset":7,"currentVoters":[{"voterId":3}],"data_version":1}'
    ).encode()
    state = parse_quorum_state(raw)
    assert (state.cluster_id, state.applied_offset, state.current_voters) == ("", 0, ())
    assert state.voted_directory_id == uuid_from_kafka_string("dkuzBlOnSDmSdp3skeoWwA")


def test_a_data_version_out_of_range_is_refused_with_kafkas_reason() -> None:
    with pytest.raises(
        QuorumStateFormatError,
        match=r"data_version \(2\) is not within the min \(0\) and max \(1\)",
    ):
        parse_quorum_state(("{" + V1 + ',"data_version":2}').encode())
