"""``quorum-state``: QuorumStateData as one line of compact JSON, exactly as Kafka 3.9's
and 4.3.1's FileQuorumStateStore write it (generated JSON converter field order, then
``data_version``; no trailing newline), via temp file + fsync + atomic rename.

The ``data_version`` follows kraft.version (KRaftVersion.quorumStateVersion): 0 for a
static quorum (cluster id, applied offset and the voter ids, as 3.9 writes them), 1 for a
KIP-853 quorum (the voted replica's directory id; no voters). Reading is as strict as
Kafka's generated QuorumStateDataJsonConverter: every field of the file's version must be
present; fields of the other version are ignored."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kwire.log.checkpoints import uuid_from_kafka_string, uuid_to_kafka_string
from kwire.log.files import atomic_write

LOWEST_SUPPORTED_VERSION = 0
HIGHEST_SUPPORTED_VERSION = 1
NO_DIRECTORY_ID = uuid.UUID(int=0)  # Kafka's ReplicaKey.NO_DIRECTORY_ID (Uuid.ZERO_UUID)


class QuorumStateFormatError(ValueError):
    """quorum-state does not parse or has an unsupported data_version."""


@dataclass(frozen=True, slots=True)
class QuorumStateData:
    """Version 0 (kraft.version 0) carries cluster id, applied offset and the static
    voter ids; version 1 drops them and adds the voted-for replica's directory id."""

    leader_id: int = -1
    leader_epoch: int = -1
    voted_id: int = -1
    voted_directory_id: uuid.UUID = uuid.UUID(int=0)  # v1+
    cluster_id: str = ""  # v0
    applied_offset: int = 0  # v0
    current_voters: tuple[int, ...] | None = field(default=())  # v0, nullable
    data_version: int = 0


def format_quorum_state(state: QuorumStateData) -> bytes:
    v = state.data_version
    if not LOWEST_SUPPORTED_VERSION <= v <= HIGHEST_SUPPORTED_VERSION:
        raise ValueError(f"unsupported quorum state data version {v}")
    obj: dict[str, Any] = {}
    if v == 0:
        obj["clusterId"] = state.cluster_id
    obj["leaderId"] = state.leader_id
    obj["leaderEpoch"] = state.leader_epoch
    obj["votedId"] = state.voted_id
    if v >= 1:
        obj["votedDirectoryId"] = uuid_to_kafka_string(state.voted_directory_id)
    if v == 0:
        obj["appliedOffset"] = state.applied_offset
        voters = state.current_voters
        obj["currentVoters"] = None if voters is None else [{"voterId": i} for i in voters]
    obj["data_version"] = v
    # Jackson's compact output: no spaces, non-ASCII left as UTF-8.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def election_quorum_state(
    kraft_version: int,
    *,
    leader_id: int,
    leader_epoch: int,
    voted_id: int,
    voted_directory_id: uuid.UUID = NO_DIRECTORY_ID,
    voter_ids: tuple[int, ...] = (),
) -> QuorumStateData:
    """ElectionState.toQuorumStateData at ``kraft_version``'s data version: version 0
    lists ``voter_ids`` (in the voter set's order) and drops the directory id; version 1
    keeps the directory id and lists no voters. Raises ValueError for another level."""
    if kraft_version == 0:
        return QuorumStateData(
            leader_id=leader_id,
            leader_epoch=leader_epoch,
            voted_id=voted_id,
            current_voters=tuple(voter_ids),
            data_version=0,
        )
    if kraft_version == 1:
        return QuorumStateData(
            leader_id=leader_id,
            leader_epoch=leader_epoch,
            voted_id=voted_id,
            voted_directory_id=voted_directory_id,
            data_version=1,
        )
    raise ValueError(f"Unsupported KRaft feature level: {kraft_version}")


_MANDATORY = {
    0: ("clusterId", "leaderId", "leaderEpoch", "votedId", "appliedOffset", "currentVoters"),
    1: ("leaderId", "leaderEpoch", "votedId", "votedDirectoryId"),
}


def parse_quorum_state(data: bytes, where: str = "quorum-state") -> QuorumStateData:
    """Parse the first line, as FileQuorumStateStore does. Raises QuorumStateFormatError
    with Kafka's reason when a field of the file's version is missing."""
    try:
        line = data.decode("utf-8").split("\n", 1)[0]
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise QuorumStateFormatError(f"{where}: not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise QuorumStateFormatError(f"{where}: not a JSON object")
    if "data_version" not in obj:
        raise QuorumStateFormatError(f"{where}: no data_version field")
    try:
        v = int(obj["data_version"])
        if not LOWEST_SUPPORTED_VERSION <= v <= HIGHEST_SUPPORTED_VERSION:
            raise QuorumStateFormatError(
                f"{where}: data_version ({v}) is not within the min ({LOWEST_SUPPORTED_VERSION}) "
                f"and max ({HIGHEST_SUPPORTED_VERSION}) supported version"
            )
        for name in _MANDATORY[v]:
            if name not in obj:
                raise QuorumStateFormatError(
                    f"{where}: QuorumStateData: unable to locate field '{name}', which is "
                    f"mandatory in version {v}"
                )
        voters_raw = obj.get("currentVoters", []) if v == 0 else []
        voters = None if voters_raw is None else tuple(int(x["voterId"]) for x in voters_raw)
        return QuorumStateData(
            leader_id=int(obj.get("leaderId", -1)),
            leader_epoch=int(obj.get("leaderEpoch", -1)),
            voted_id=int(obj.get("votedId", -1)),
            voted_directory_id=(
                uuid_from_kafka_string(obj["votedDirectoryId"]) if v >= 1 else uuid.UUID(int=0)
            ),
            cluster_id=str(obj.get("clusterId", "")) if v == 0 else "",
            applied_offset=int(obj.get("appliedOffset", 0)) if v == 0 else 0,
            current_voters=voters,
            data_version=v,
        )
    except QuorumStateFormatError:
        raise
    except (TypeError, ValueError, KeyError) as e:
        raise QuorumStateFormatError(f"{where}: bad field: {e}") from None


def read_quorum_state(path: Path) -> QuorumStateData | None:
    """None when the file does not exist (a fresh node)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse_quorum_state(data, str(path))


def write_quorum_state(path: Path, state: QuorumStateData) -> None:
    atomic_write(path, format_quorum_state(state))
