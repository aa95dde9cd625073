"""Replaying the genuine quorum captures against one kwire RaftCore.

The captures (../shared/captures/kafka-3.9/quorum-election, ../shared/captures/kafka-4.3/
quorum-prevote) hold every frame of three genuine controllers' ports. `load_capture` turns a
transcript into `Exchange`s (a request, its answer, who sent it to whom, and when), from
which each node's timeline follows: the requests it got and what it answered
(`received_by`), the requests it sent and what came back (`sent_by`).

`Replay` puts a kwire `RaftCore` in place of one genuine node, on a virtual clock that is
the capture's own (now_ms = the frame's capture time in ms):

- a request the genuine node got is handed to kwire at the time the genuine node answered
  it: Kafka's one raft thread may handle a request well after it arrives (a candidate's
  Fetch answered as the leader it became meanwhile), and the answer shows the state it had
  then. A long-polled Fetch is thus answered with what the log held when the genuine
  leader answered (new records, or nothing at MaxWaitMs);
- a request kwire asks to send (`SendRequest`) is paired with the genuine node's next
  request of that API to that destination, in order; the genuine answer to it is handed to
  kwire at the genuine answer's time (or when kwire sent, if later). A send the genuine
  node never made gets CONNECTION_REFUSED if that peer is down then (`Outage`), or TIMEOUT
  after request_timeout_ms otherwise (nobody answers it); in-flight requests to a peer
  that goes down get CONNECTION_LOST;
- rule BOOTSTRAP_FETCH (`bootstrap_fetches`): Kafka 4.x fetches from any bootstrap voter
  while no leader answers; genuine such Fetches are not replayed, and kwire's Fetches to a
  voter it does not follow are answered as that genuine peer then would have
  (`answer_fetch_as_peer`, checked against every genuine one);
- the log is a `ReplayLog`: what kwire appends (the batches of the genuine Fetch answers
  it gets) grows it as the replay goes. When kwire leads, its log is the genuine leader's
  (`genuine_log`): kwire's LeaderChange is compared with the genuine one of that epoch,
  whose batch is appended (its timestamp and CRC come from the genuine leader's clock), and
  the genuine controller's batches are appended when the genuine leader first sent them
  to a follower (the controller above the raft is not replayed, its writes are);
- `shutdown_ms` (SIGTERM) calls `resign`; the replay ends when the shutdown completes as
  KafkaRaftClient.pollShutdown has it: once a remote leader is known.

Each kwire answer and each kwire request is compared with the genuine one field by field
(after encoding at the genuine version and decoding back, so that fields a version lacks
do not count) and byte for byte. Values that differ by nature are excused only by a named
`Rule` (what, where, why); a test passes a replay's rules explicitly.

The rules, and why each is narrow (where a rule is for one moment it names the frames):

- when, not what: a kwire request is compared with the genuine request it is paired with,
  whatever its time; answers are computed at the genuine answer's time. ELECTION_TIMER
  (a seed, and a start 2 x election.timeout.ms before a node's first Vote) only places
  kwire's randomized timers where the genuine node's fell.
- RESPONSE_LAG (two frames: quorum-prevote #59 and #562): the genuine node answered a
  request from the state it had before an answer that had already reached it.
- HANDLING_WINDOW: a kwire send made between the arrival and the answer of a Vote,
  BeginQuorumEpoch or EndQuorumEpoch that the genuine node was already acting on.
- PORT_UP_BOUND, NODE_12_EXIT, SIGTERM_TIME: the capture's times of a process's life
  where the notes give none (a listener is up from the first request it takes; a node is
  gone after its last frame; a resignation 1 ms before the first answer showing it).
- BOOTSTRAP_FETCH: Kafka 4.x's Fetches to any bootstrap voter (above).
- KAFKA_3_9_BEGIN_QUORUM_EPOCH_REPEATS: 3.9's leader repeats BeginQuorumEpoch to every
  voter; 4.x's (kwire's) only to voters that do not fetch.
- GRANTING_VOTERS_ORDER: LeaderChangeMessage's granting voters as a set. Kafka 4.x's
  LeaderState keeps them in Set.copyOf(...), whose iteration order is salted per JVM
  (java.util.ImmutableCollections.SALT): the three 4.3.1 JVMs wrote [1, 2], [3, 1] and
  [2, 1]. 3.9 keeps a HashSet<Integer> (ascending for small ids), as kwire writes them.
- DYNAMIC_QUORUM_VOTER_DIRECTORY_IDS: quorum-prevote is a kraft.version 1 quorum; kwire's
  core runs the static one (a strict xfail test shows the fields).
"""

from __future__ import annotations

from quorum_replay.capture import (
    API_VERSIONS,
    APPROXIMATE,
    CAPTURES,
    CLUSTER_ID,
    FETCH,
    KAFKA_3_9_MAX_FETCH_SIZE_BYTES,
    QUORUM_ELECTION,
    QUORUM_ELECTION_SEGMENT,
    QUORUM_PREVOTE,
    RAFT_APIS,
    Exchange,
    QuorumCapture,
    core_has_landed,
    directory_id,
    load_capture,
)
from quorum_replay.compare import Comparison, Difference, Rule, compare, differences
from quorum_replay.driver import Outage, Replay, ReplayResult, Sent, ShutdownComplete, fits
from quorum_replay.log import ReplayDiverged, ReplayLog, StoredBatch, read_segment
from quorum_replay.rules import (
    answer_fetch_as_peer,
    begin_quorum_epoch_repeats,
    bootstrap_fetches,
    raft_config,
)

__all__ = [
    "API_VERSIONS",
    "APPROXIMATE",
    "CAPTURES",
    "CLUSTER_ID",
    "FETCH",
    "KAFKA_3_9_MAX_FETCH_SIZE_BYTES",
    "QUORUM_ELECTION",
    "QUORUM_ELECTION_SEGMENT",
    "QUORUM_PREVOTE",
    "RAFT_APIS",
    "Comparison",
    "Difference",
    "Exchange",
    "Outage",
    "QuorumCapture",
    "Replay",
    "ReplayDiverged",
    "ReplayLog",
    "ReplayResult",
    "Rule",
    "Sent",
    "ShutdownComplete",
    "StoredBatch",
    "answer_fetch_as_peer",
    "begin_quorum_epoch_repeats",
    "bootstrap_fetches",
    "compare",
    "core_has_landed",
    "differences",
    "directory_id",
    "fits",
    "load_capture",
    "raft_config",
    "read_segment",
]
