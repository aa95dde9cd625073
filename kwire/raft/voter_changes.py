"""Answers and texts of the KIP-853 voter-change RPCs, as Kafka 4.3.1 builds them.

Kafka 4.3.1's RaftUtil.addVoterResponse / removeVoterResponse (a missing message is the
error's default message, and NONE has none: 3.9 sent "NONE" there), updateVoterResponse
(the leader and epoch, and the leader's endpoint on the listener the request came by), and
the Java `toString`s that Kafka's error messages print: ReplicaKey, a HashSet of them
(VoterSet.voterKeys), Endpoints (a HashMap of ListenerName to an unresolved
InetSocketAddress), Optional<Long>. Their iteration orders are Java's, so that a message
with several voters or listeners reads as Kafka's.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar
from uuid import UUID

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest, AddRaftVoterResponse
from kwire.protocol.messages.remove_raft_voter import RemoveRaftVoterResponse
from kwire.protocol.messages.update_raft_voter import (
    UpdateRaftVoterRequest,
    UpdateRaftVoterResponse,
)
from kwire.raft.state import CompleteVoterChange, Leader
from kwire.raft.voter_set import ZERO_UUID, ReplicaKey, VoterEndpoint

K = TypeVar("K")


def add_voter_response(error: ErrorCode, message: str | None = None) -> AddRaftVoterResponse:
    """RaftUtil.addVoterResponse (4.3.1): no message falls back to the error's default;
    NONE carries null."""
    if message is None and error is not ErrorCode.NONE:
        message = error.message
    return AddRaftVoterResponse(error_code=error, error_message=message)


def remove_voter_response(error: ErrorCode, message: str | None = None) -> RemoveRaftVoterResponse:
    """RaftUtil.removeVoterResponse (4.3.1), as add_voter_response."""
    if message is None and error is not ErrorCode.NONE:
        message = error.message
    return RemoveRaftVoterResponse(error_code=error, error_message=message)


def update_voter_response(
    error: ErrorCode, *, leader_id: int, epoch: int, leader_endpoint: VoterEndpoint | None
) -> UpdateRaftVoterResponse:
    """RaftUtil.updateVoterResponse: CurrentLeader names the leader (-1: none) and epoch,
    with the host and port of its endpoint on the request's listener when known."""
    current = UpdateRaftVoterResponse.CurrentLeader(leader_id=leader_id, leader_epoch=epoch)
    if leader_endpoint is not None:
        current.host = leader_endpoint.host
        current.port = leader_endpoint.port
    return UpdateRaftVoterResponse(error_code=error, current_leader=current)


# -- request fields ---------------------------------------------------------------------------


def request_voter_key(voter_id: int, directory_id: UUID) -> ReplicaKey | None:
    """RaftUtil.*RequestVoterKey: None for a negative id."""
    return None if voter_id < 0 else ReplicaKey(voter_id, directory_id)


def request_endpoints(
    listeners: Sequence[AddRaftVoterRequest.Listener | UpdateRaftVoterRequest.Listener],
) -> tuple[VoterEndpoint, ...]:
    """Endpoints.fromAddVoterRequest / fromUpdateVoterRequest: names upper-cased
    (ListenerName.normalised), a repeated name keeps its last address, in the order Kafka's
    HashMap<ListenerName, _> iterates (which is the order of the VotersRecord it writes)."""
    by_name: dict[str, VoterEndpoint] = {}
    for listener in listeners:
        name = listener.name.upper()
        by_name[name] = VoterEndpoint(name, listener.host, listener.port)
    order = java_hash_map_order(list(by_name), java_string_hash, sized_for=len(listeners))
    return tuple(by_name[name] for name in order)


def endpoint_named(endpoints: Iterable[VoterEndpoint], name: str) -> VoterEndpoint | None:
    upper = name.upper()
    return next((e for e in endpoints if e.name == upper), None)


# -- Java's toString ----------------------------------------------------------------------------


def kafka_uuid(value: UUID) -> str:
    """org.apache.kafka.common.Uuid.toString: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(value.bytes).decode("ascii").rstrip("=")


def replica_key_text(key: ReplicaKey) -> str:
    directory = "<undefined>" if key.directory_id == ZERO_UUID else kafka_uuid(key.directory_id)
    return f"ReplicaKey(id={key.id}, directoryId={directory})"


def replica_keys_text(keys: Iterable[ReplicaKey]) -> str:
    """A HashSet<ReplicaKey> printed (VoterSet.voterKeys collects into one)."""
    items = list(keys)
    ordered = java_hash_map_order(items, _replica_key_hash, sized_for=None)
    return "[" + ", ".join(replica_key_text(k) for k in ordered) + "]"


def endpoints_text(endpoints: Sequence[VoterEndpoint]) -> str:
    """Endpoints.toString: `Endpoints(endpoints={ListenerName(N)=host/<unresolved>:port})`
    (Java 17 prints an unresolved InetSocketAddress so)."""
    inner = ", ".join(f"ListenerName({e.name})={e.host}/<unresolved>:{e.port}" for e in endpoints)
    return f"Endpoints(endpoints={{{inner}}})"


def optional_offset_text(offset: int | None) -> str:
    return "Optional.empty" if offset is None else f"Optional[{offset}]"


# -- Java hashing ------------------------------------------------------------------------------


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def java_string_hash(text: str) -> int:
    """String.hashCode over UTF-16 code units."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return _int32(h)


def _uuid_hash(value: UUID) -> int:
    """Kafka's Uuid.hashCode: the two halves xored, then folded to 32 bits."""
    raw = value.int
    h = (raw >> 64) ^ (raw & 0xFFFFFFFFFFFFFFFF)
    return _int32((h >> 32) ^ h)


def _replica_key_hash(key: ReplicaKey) -> int:
    """ReplicaKey.hashCode: Objects.hash(id, directoryId), an empty Optional hashing to 0."""
    directory = 0 if key.directory_id == ZERO_UUID else _uuid_hash(key.directory_id)
    return _int32(31 * (31 + key.id) + directory)


def java_hash_map_order(
    keys: list[K], hasher: Callable[[K], int], *, sized_for: int | None
) -> list[K]:
    """The iteration order of a java.util.HashMap (or HashSet) filled with `keys` in this
    order: `sized_for` is the constructor's initial capacity (None: the default 16); the
    table doubles past 0.75 of its size. Buckets in order, insertion order within one
    (treeified buckets are not modelled)."""
    capacity = 16
    if sized_for is not None:
        capacity = 1
        while capacity < sized_for:
            capacity <<= 1
    while len(keys) > int(capacity * 0.75):
        capacity <<= 1

    def bucket(key: K) -> int:
        h = hasher(key) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    position = {id(k): i for i, k in enumerate(keys)}
    return sorted(keys, key=lambda k: (bucket(k), position[id(k)]))


def abandoned_voter_changes(leader: Leader) -> list[CompleteVoterChange]:
    """LeaderState.close: the changes of a leader that stops leading are answered
    NOT_LEADER_OR_FOLLOWER (its default message), unless already answered."""
    answers: list[CompleteVoterChange] = []
    added, leader.add_voter = leader.add_voter, None
    if added is not None and not added.answered:
        response = add_voter_response(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        answers.append(CompleteVoterChange(ticket=added.ticket, response=response))
    removal, leader.remove_voter = leader.remove_voter, None
    if removal is not None:
        answers.append(
            CompleteVoterChange(
                ticket=removal.ticket,
                response=remove_voter_response(ErrorCode.NOT_LEADER_OR_FOLLOWER),
            )
        )
    return answers
