"""The replay's named rules that shape what is fed (not only what is compared), and the
configuration of a kwire node in place of a genuine one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_response
from quorum_replay.capture import (
    APPROXIMATE,
    CLUSTER_ID,
    FETCH,
    Exchange,
    QuorumCapture,
    is_served,
)


def answer_fetch_as_peer(
    capture: QuorumCapture, peer: int, request: Message, ms: int, *, before: bool = False
) -> tuple[Message, str]:
    """A genuine peer's answer to a Fetch it was never sent, for a peer that does not lead
    the epoch asked (rule BOOTSTRAP_FETCH): the shape of a genuine Fetch error answer of the
    capture, with the epoch and leader the peer showed at `ms` (`QuorumCapture.view_of`;
    strictly before `ms` if `before`) and the error of KafkaRaftClient's
    validateLeaderOnlyRequest."""
    epoch, leader = capture.view_of(peer, ms, before=before)
    asked = request.topics[0].partitions[0]  # type: ignore[attr-defined]
    approximate = ""
    if leader == peer and asked.current_leader_epoch == epoch:
        # The genuine leader would have served it from its log, which the replay does not
        # hold: the answer tells who leads, and the replay notes the approximation.
        approximate = f" ({APPROXIMATE}: that peer led this epoch)"
    if asked.current_leader_epoch < epoch:
        error = ErrorCode.FENCED_LEADER_EPOCH
    elif asked.current_leader_epoch > epoch:
        error = ErrorCode.UNKNOWN_LEADER_EPOCH
    else:
        error = ErrorCode.NOT_LEADER_OR_FOLLOWER
    template = next(
        e
        for e in capture.exchanges
        if e.api == "Fetch"
        and e.response is not None
        and e.response.responses  # type: ignore[attr-defined]
        and e.response.responses[0].partitions[0].error_code  # type: ignore[attr-defined]
    )
    assert template.response_raw is not None
    _, answer = decode_response(template.response_raw, FETCH, template.api_version)
    partition = answer.responses[0].partitions[0]  # type: ignore[attr-defined]
    partition.error_code = error
    partition.current_leader.leader_id = leader
    partition.current_leader.leader_epoch = epoch
    answer.node_endpoints = [  # type: ignore[attr-defined]
        type(answer).NodeEndpoint(node_id=leader, host=host, port=port, rack=None)  # type: ignore[attr-defined]
        for node, (host, port) in capture.endpoints.items()
        if node == leader
    ]
    return answer, (
        f"answered as node {peer} (epoch {epoch}, leader {leader}): {error.name}{approximate}"
    )


def raft_config(capture: QuorumCapture, node: int, **overrides: Any) -> Any:
    """A RaftConfig for `node` of the capture's static quorum: the capture's voters and
    endpoints, the node's own directory id, Kafka's default timers, and fast failover off
    (Kafka has none)."""
    from kwire.raft.state import RaftConfig, Voter

    settings: dict[str, Any] = {
        "node_id": node,
        "cluster_id": CLUSTER_ID,
        "voters": tuple(
            Voter(node_id=n, host=host, port=port) for n, (host, port) in capture.endpoints.items()
        ),
        "directory_id": capture.directory_id_of(node),
        "fast_failover": False,
    }
    return RaftConfig(**(settings | overrides))


def begin_quorum_epoch_repeats(capture: QuorumCapture, node: int) -> set[int]:
    """Rule KAFKA_3_9_BEGIN_QUORUM_EPOCH_REPEATS: Kafka 3.9's leader sends BeginQuorumEpoch
    to every voter each fetch.timeout.ms / 2 (3.9's maybeSendBeginQuorumEpochRequests);
    Kafka 4.x, whose semantics kwire's core follows, only to the voters that have not
    fetched within that time (LeaderState.needToSendBeginQuorumRequests). The transcript
    lines of `node`'s BeginQuorumEpoch requests after its first to each voter in an epoch."""
    seen: set[tuple[int, int]] = set()
    repeats = set()
    for e in capture.sent_by(node):
        if e.api == "BeginQuorumEpoch":
            key = (e.receiver, e.request.topics[0].partitions[0].leader_epoch)  # type: ignore[attr-defined]
            if key in seen:
                repeats.add(e.index)
            seen.add(key)
    return repeats


def bootstrap_fetches(capture: QuorumCapture, node: int) -> Callable[[Exchange], str | None]:
    """Rule BOOTSTRAP_FETCH, for `Replay(skip=...)` of `node`: its genuine Fetches to itself
    or to a voter it did not know as its leader are Kafka 4.x's fetches to any bootstrap
    server while no leader answers (KafkaRaftClient.maybeSendFetchToAnyBootstrap). Which
    server it picks and when is the request manager's round of ready connections, not the
    consensus: those genuine requests are not replayed, and kwire's own Fetches to a voter
    it does not follow are answered as the genuine peer then would (`Replay`). One the
    peer served (it had just become leader: records) is replayed as any Fetch: kwire's
    next Fetch to that peer is paired with it."""

    def skip(exchange: Exchange) -> str | None:
        if exchange.sender != node or not capture.is_bootstrap_fetch(exchange):
            return None
        if is_served(exchange):
            return None  # the peer led by then and sent records: replayed as any Fetch
        return "BOOTSTRAP_FETCH"

    return skip
