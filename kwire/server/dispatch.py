"""Answering requests: which layer takes each API, and the answers the edge itself gives.

| API                                       | answered by                               |
|-------------------------------------------|-------------------------------------------|
| ApiVersions (18)                          | here: the listener's APIs and features    |
| DescribeCluster (60)                      | here: the controller quorum's endpoints   |
| SaslHandshake (17), SaslAuthenticate (36) | here: ILLEGAL_SASL_STATE (see below)      |
| Fetch (1), DescribeQuorum (55)            | the raft core                             |
| Vote (52), BeginQuorumEpoch (53),         | the raft core; its actions (the vote      |
| EndQuorumEpoch (54)                       | persisted first) before the answer        |
| FetchSnapshot (59)                        | the raft core, chunks read from the file  |
| AddRaftVoter (80), RemoveRaftVoter (81),  | the raft core, answered when the voter    |
| UpdateRaftVoter (82)                      | change commits (voter_changes.py)         |
| Envelope (58)                             | here: check, unwrap, answer the inner one |
| the controller's HANDLED_REQUESTS         | the controller, once its records commit   |
| everything else                           | here: UNSUPPORTED_VERSION on every item   |

A request the controller must answer gets NOT_CONTROLLER on every item when this node is
not the active controller (not the leader, or a leader still replaying up to its epoch
start), as Kafka's QuorumController answers. Every step that enters the raft core or the
controller runs in the raft driver's turn (`node.driver.call`), so that one task owns
them; the waits (a commit, a fetch's long poll) stay in the connection's task. Error answers come from `kwire.protocol.error_responses`, which fills the
error into every item as Kafka's `getErrorResponse` does.

On a SASL listener the exchange that opens a connection never reaches this module (see
`kwire.server.security`); what does arrive here, on any listener, is a SaslHandshake or
SaslAuthenticate after authentication (or where there is none), which Kafka's
ControllerApis answers with ILLEGAL_SASL_STATE. Requests run as the connection's
principal (User:ANONYMOUS on PLAINTEXT).

An Envelope is checked part by part in the order of Kafka 3.9's EnvelopeUtils (see
`unwrap_envelope`); each failure is answered with Kafka's code and no response data.
Before that, with an authorizer, the envelope's own principal needs CLUSTER_ACTION on the
cluster (CLUSTER_AUTHORIZATION_FAILED otherwise), as in Kafka's ControllerApis.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import struct
import time
from dataclasses import dataclass

import trio

from kwire.controller.authorizer import AclOperation, AuthHelper
from kwire.controller.controller import HANDLED_REQUESTS, RequestContext
from kwire.controller.records import KRAFT_VERSION_FEATURE, MetadataVersion
from kwire.protocol._codec import ZERO_UUID, Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.error_responses import error_response
from kwire.protocol.errors import ProtocolError
from kwire.protocol.framing import encode_response
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.begin_quorum_epoch import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
)
from kwire.protocol.messages.broker_heartbeat import (
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse,
)
from kwire.protocol.messages.data.default_principal_data import DefaultPrincipalData
from kwire.protocol.messages.describe_cluster import DescribeClusterRequest, DescribeClusterResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.protocol.messages.end_quorum_epoch import EndQuorumEpochRequest, EndQuorumEpochResponse
from kwire.protocol.messages.envelope import EnvelopeRequest, EnvelopeResponse
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.fetch_snapshot import FetchSnapshotRequest, FetchSnapshotResponse
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.index import APIS
from kwire.protocol.messages.remove_raft_voter import RemoveRaftVoterRequest
from kwire.protocol.messages.sasl_authenticate import SaslAuthenticateRequest
from kwire.protocol.messages.sasl_handshake import SaslHandshakeRequest
from kwire.protocol.messages.update_raft_voter import UpdateRaftVoterRequest
from kwire.protocol.messages.vote import VoteRequest, VoteResponse
from kwire.raft.core import FetchReady, FetchSnapshotReady
from kwire.raft.state import Action
from kwire.server.faults import event_name
from kwire.server.node import SUPPORTED_FEATURES, AppendFailed, ControllerNode
from kwire.server.snapshots import read_chunk
from kwire.server.voter_changes import answer_voter_change

# Fetch v18's HighWatermark default (Long.MAX_VALUE): the fetcher sent none.
LONG_MAX = 2**63 - 1

log = logging.getLogger("kwire.requests")

CONTROLLER_LISTENER = "controller"
ENVELOPE = 58
CONTROLLER_APIS = sorted(k for k, api in APIS.items() if CONTROLLER_LISTENER in api.listeners)
CONTROLLER_API_KEYS = frozenset(CONTROLLER_APIS)
ENDPOINT_TYPE_CONTROLLER = 2
ENDPOINT_TYPE_NAMES = {1: "BROKER", 2: "CONTROLLER"}
ANONYMOUS = "User:ANONYMOUS"
NOT_IMPLEMENTED = "This controller does not implement this API yet."
SASL_AUTHENTICATE_AFTER_AUTHENTICATION = (
    "SaslAuthenticate request received after successful authentication"
)

# The APIs Kafka 3.9 lets a broker forward inside an Envelope: those constructed with
# forwardable=true in clients/.../protocol/ApiKeys.java (the JSON schemas do not say it).
FORWARDABLE_APIS = frozenset(
    {
        19,  # CreateTopics
        20,  # DeleteTopics
        30,  # CreateAcls
        31,  # DeleteAcls
        33,  # AlterConfigs
        37,  # CreatePartitions
        38,  # CreateDelegationToken
        39,  # RenewDelegationToken
        40,  # ExpireDelegationToken
        43,  # ElectLeaders
        44,  # IncrementalAlterConfigs
        45,  # AlterPartitionReassignments
        46,  # ListPartitionReassignments
        49,  # AlterClientQuotas
        51,  # AlterUserScramCredentials
        55,  # DescribeQuorum
        57,  # UpdateFeatures
        64,  # UnregisterBroker
        67,  # AllocateProducerIds
        80,  # AddRaftVoter
        81,  # RemoveRaftVoter
    }
)

# ApiVersionsRequest.isValid (KIP-511): from v3 the client's software name and version are
# letters and digits, with '-' and '.' allowed only between them.
SOFTWARE_NAME_OR_VERSION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")
_KEY_AND_VERSION = struct.Struct(">hh")
_INET_ADDRESS_LENGTHS = (4, 16)  # IPv4 or IPv6, as InetAddress.getByAddress takes them


# A BrokerHeartbeatResponse frame (no size prefix) at every version (all flexible): the
# response header v1 (correlation id, no tagged fields), then ThrottleTimeMs, ErrorCode,
# IsCaughtUp, IsFenced, ShouldShutDown and no tagged fields. One pack instead of the
# generic header and body writers; a test holds it equal to `encode_response`.
_HEARTBEAT_RESPONSE_FRAME = struct.Struct(">iBih???B")


def encode_heartbeat_response(correlation_id: int, response: BrokerHeartbeatResponse) -> bytes:
    """The frame `encode_response(63, version, correlation_id, response)` gives, for any
    version of BrokerHeartbeat (v0-v2 share one layout); generic when the response
    carries unknown tagged fields."""
    if response.unknown_tagged_fields:
        return encode_response(
            BrokerHeartbeatResponse.API_KEY,  # type: ignore[arg-type]
            BrokerHeartbeatResponse.HIGHEST_VERSION,
            correlation_id,
            response,
        )
    return _HEARTBEAT_RESPONSE_FRAME.pack(
        correlation_id,
        0,
        response.throttle_time_ms,
        response.error_code,
        response.is_caught_up,
        response.is_fenced,
        response.should_shut_down,
        0,
    )


def api_versions_is_valid(request: ApiVersionsRequest, version: int) -> bool:
    """Kafka's ApiVersionsRequest.isValid: below v3 always; from v3 the whole software
    name and version must match `SOFTWARE_NAME_OR_VERSION` (so neither may be empty)."""
    if version < 3:
        return True
    return (
        SOFTWARE_NAME_OR_VERSION.fullmatch(request.client_software_name) is not None
        and SOFTWARE_NAME_OR_VERSION.fullmatch(request.client_software_version) is not None
    )


def api_versions_response(error: ErrorCode, node: ControllerNode) -> ApiVersionsResponse:
    response = ApiVersionsResponse(
        error_code=error,
        api_keys=[
            ApiVersionsResponse.ApiVersion(
                api_key=key,
                min_version=APIS[key].lowest_version,
                max_version=APIS[key].highest_version,
            )
            for key in CONTROLLER_APIS
        ],
        supported_features=[
            ApiVersionsResponse.SupportedFeatureKey(name=name, min_version=low, max_version=high)
            for name, low, high in SUPPORTED_FEATURES
        ],
    )
    epoch, levels = node.controller.finalized_features(node.committed_offset)
    # At 4.x levels, as Kafka 4.3.1's controller, the raft client's kraft.version when
    # above 0 (ControllerServer: FinalizedFeatures.setFinalizedLevel); Kafka 3.9.0's
    # controller reports the image's features only.
    kraft_level = int(node.raft.kraft_version)
    if kraft_level > 0 and node.controller.metadata_version >= MetadataVersion.IBP_4_0_IV0:
        levels[KRAFT_VERSION_FEATURE] = kraft_level
    response.finalized_features_epoch = epoch
    response.finalized_features = [
        ApiVersionsResponse.FinalizedFeatureKey(
            name=name, max_version_level=level, min_version_level=level
        )
        for name, level in sorted(levels.items())
    ]
    return response


# -- Envelope ------------------------------------------------------------------------------


class EnvelopeRejected(Exception):
    """An Envelope Kafka refuses before running its inner request: `code` is Kafka's."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code.name}: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardedRequest:
    """The inner request of a valid Envelope, with the client's principal ("Type:name")."""

    header: RequestHeader
    body: Message
    principal: str


def unwrap_envelope(envelope: EnvelopeRequest) -> ForwardedRequest:
    """Check an Envelope as Kafka 3.9's EnvelopeUtils does, in its order, and unwrap it.

    Raises EnvelopeRejected with Kafka's code for the first part that fails:
    the principal is missing or not DefaultPrincipalData (PRINCIPAL_DESERIALIZATION_FAILURE);
    the client address is not 4 or 16 bytes (INVALID_REQUEST); the inner header does not
    parse or names an unknown API (UNSUPPORTED_VERSION); the inner API is not forwardable
    (INVALID_REQUEST); the inner body does not parse at its version, or the version does
    not exist (UNSUPPORTED_VERSION). Bytes after the inner body are ignored, as Kafka's
    parser ignores them.
    """
    principal = decode_principal(envelope.request_principal)
    if len(envelope.client_host_address) not in _INET_ADDRESS_LENGTHS:
        raise EnvelopeRejected(
            ErrorCode.INVALID_REQUEST, "Failed to parse client address from envelope"
        )
    data = envelope.request_data
    buf = data if type(data) is bytes else memoryview(data)
    try:
        api_key, api_version = _KEY_AND_VERSION.unpack_from(buf, 0)
        api = APIS[api_key]
        header, pos = RequestHeader.read(buf, 0, api.request_header_version(api_version))
    except (struct.error, KeyError, ProtocolError) as exc:
        raise EnvelopeRejected(
            ErrorCode.UNSUPPORTED_VERSION, f"Failed to parse request header from envelope: {exc}"
        ) from None
    if api_key not in FORWARDABLE_APIS:
        raise EnvelopeRejected(
            ErrorCode.INVALID_REQUEST,
            f"API {api.name} is not enabled or is not eligible for forwarding",
        )
    try:
        body, _ = api.request.read(buf, pos, api_version)
    except ProtocolError as exc:
        raise EnvelopeRejected(
            ErrorCode.UNSUPPORTED_VERSION, f"Failed to parse forwarded request: {exc}"
        ) from None
    return ForwardedRequest(header=header, body=body, principal=principal)


def decode_principal(data: bytes | memoryview | None) -> str:
    """Kafka's DefaultKafkaPrincipalBuilder form: an int16 version, then DefaultPrincipalData.

    Returns "Type:name"; raises EnvelopeRejected(PRINCIPAL_DESERIALIZATION_FAILURE) for
    null, short or undecodable bytes (bytes after the data are ignored, as in Kafka).
    """
    failure = EnvelopeRejected(
        ErrorCode.PRINCIPAL_DESERIALIZATION_FAILURE,
        "Failed to deserialize client principal from envelope",
    )
    if data is None or len(data) < 2:
        raise failure
    buf = bytes(data)
    version = int.from_bytes(buf[:2], "big", signed=True)
    try:
        principal, _ = DefaultPrincipalData.read(buf, 2, version)
    except ProtocolError:
        raise failure from None
    return f"{principal.type}:{principal.name}"


def is_not_controller_answer(response: Message) -> bool:
    """Whether an inner answer says "not the active controller", which Kafka's
    RequestChannel turns into an Envelope error (NOT_CONTROLLER) so that the broker looks
    for the new controller: NOT_LEADER_OR_FOLLOWER for DescribeQuorum, else NOT_CONTROLLER."""
    wanted = (
        ErrorCode.NOT_LEADER_OR_FOLLOWER
        if isinstance(response, DescribeQuorumResponse)
        else ErrorCode.NOT_CONTROLLER
    )
    return wanted in error_codes(response)


def error_codes(value: object) -> set[int]:
    """Every error code in a message, at any depth (Kafka's errorCounts, as a set)."""
    found: set[int] = set()
    for info in getattr(type(value), "FIELDS", ()):
        item = getattr(value, info.attribute, None)
        if info.attribute == "error_code":
            found.add(item)  # type: ignore[arg-type]
        elif info.struct is not None and item is not None:
            for element in item if isinstance(item, list) else (item,):
                found |= error_codes(element)
    return found


# -- the handler ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """Who sent a request, as the connection knows it: the authenticated principal
    ("Type:name"), the client's address as text and the listener's security protocol
    (Kafka's SecurityProtocol name); the controller's authorization and delegation token
    checks read them."""

    principal: str = ANONYMOUS
    client_host: str = ""
    security_protocol: str = "PLAINTEXT"


ANONYMOUS_PEER = Peer()
MAX_CONTEXTS = 10_000  # RequestHandler's cache of request contexts


# What ControllerApis requires on the cluster for the APIs answered here (handleFetch,
# handleFetchSnapshot, handleDescribeQuorum, and handleDescribeCluster, which on a
# controller needs ALTER).
FETCH_NEEDS = AclOperation.CLUSTER_ACTION
FETCH_SNAPSHOT_NEEDS = AclOperation.CLUSTER_ACTION
DESCRIBE_QUORUM_NEEDS = AclOperation.DESCRIBE
DESCRIBE_CLUSTER_NEEDS = AclOperation.ALTER
# handleVote, handleBeginQuorumEpoch, handleEndQuorumEpoch
RAFT_NEEDS = AclOperation.CLUSTER_ACTION


class RequestHandler:
    """Turns one decoded request into its response, awaiting commits and long polls."""

    def __init__(self, node: ControllerNode) -> None:
        self.node = node
        # Contexts are immutable and a broker's heartbeats all look alike: one each.
        self._contexts: dict[tuple[str, str, str, int, str | None], RequestContext] = {}

    async def handle(
        self, header: RequestHeader, body: Message, peer: Peer = ANONYMOUS_PEER
    ) -> Message:
        """The answer to one request from `peer`."""
        version = header.request_api_version
        if type(body) is BrokerHeartbeatRequest:
            # The most frequent request by far (every broker, every 2 s): straight to the
            # controller, in this task (see `controller_request`).
            return await self.controller_request(
                body, self.context(header, peer), in_caller_task=True
            )
        match body:
            case ApiVersionsRequest():
                if not api_versions_is_valid(body, version):
                    return error_response(body, version, ErrorCode.INVALID_REQUEST)
                return api_versions_response(ErrorCode.NONE, self.node)
            case SaslHandshakeRequest():
                return error_response(body, version, ErrorCode.ILLEGAL_SASL_STATE)
            case SaslAuthenticateRequest():
                return error_response(
                    body,
                    version,
                    ErrorCode.ILLEGAL_SASL_STATE,
                    SASL_AUTHENTICATE_AFTER_AUTHENTICATION,
                )
            case FetchRequest():
                if self.cluster_denied(peer.principal, peer.client_host, FETCH_NEEDS):
                    return error_response(body, version, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
                return await self.fetch(body)
            case FetchSnapshotRequest():
                if self.cluster_denied(peer.principal, peer.client_host, FETCH_SNAPSHOT_NEEDS):
                    return error_response(body, version, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
                return await self.node.driver.call(lambda _: self.fetch_snapshot(body, version))
            case DescribeQuorumRequest():
                if self.cluster_denied(peer.principal, peer.client_host, DESCRIBE_QUORUM_NEEDS):
                    return error_response(body, version, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
                return await self.node.driver.call(lambda _: self.describe_quorum(body, version))
            case VoteRequest() | BeginQuorumEpochRequest() | EndQuorumEpochRequest():
                if self.cluster_denied(peer.principal, peer.client_host, RAFT_NEEDS):
                    return error_response(body, version, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
                return await self.raft_request(body, version)
            case AddRaftVoterRequest() | RemoveRaftVoterRequest() | UpdateRaftVoterRequest():
                return await answer_voter_change(
                    self.node, body, version, peer.principal, peer.client_host
                )
            case DescribeClusterRequest():
                if self.cluster_denied(peer.principal, peer.client_host, DESCRIBE_CLUSTER_NEEDS):
                    return error_response(body, version, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
                return self.describe_cluster(body, version)
            case EnvelopeRequest():
                return await self.envelope(body, peer)
            case _:
                return await self.controller_request(body, self.context(header, peer))

    def context(self, header: RequestHeader, peer: Peer) -> RequestContext:
        """The controller's view of a request received directly (not in an Envelope),
        made once per (peer, version, client id): at most MAX_CONTEXTS are kept."""
        key = (
            peer.principal,
            peer.client_host,
            peer.security_protocol,
            header.request_api_version,
            header.client_id,
        )
        context = self._contexts.get(key)
        if context is None:
            if len(self._contexts) >= MAX_CONTEXTS:
                self._contexts.clear()
            context = self._contexts[key] = RequestContext(
                api_version=header.request_api_version,
                client_id=header.client_id or "",
                principal=peer.principal,
                listener_name=self.node.settings.listener_name,
                envelope=False,
                client_host=peer.client_host,
                security_protocol=peer.security_protocol,
            )
        return context

    async def controller_request(
        self, body: Message, context: RequestContext, *, in_caller_task: bool = False
    ) -> Message:
        """The controller's answer; NOT_CONTROLLER on every item when this node does not
        lead, UNSUPPORTED_VERSION on every item for an API the controller lacks, and
        UNKNOWN_SERVER_ERROR on every item (no message) when the controller step raised
        an unexpected exception: a fault, which the node logs, counts and, as the active
        controller, renounces after (`kwire.server.faults`) in that same step.

        `in_caller_task`: the controller step runs at once in the calling task instead of
        the raft driver's turn, which saves the two task switches of `node.driver.call`.
        It is the same step, run synchronously (no await inside it) while the driver is
        between events, so the core is still never entered concurrently; the request is
        merely taken before the events already queued in the driver's inbox, as if it had
        arrived a moment sooner (requests of different connections have no order).
        BrokerHeartbeat uses it."""
        node = self.node
        if not isinstance(body, HANDLED_REQUESTS):
            return error_response(
                body, context.api_version, ErrorCode.UNSUPPORTED_VERSION, NOT_IMPLEMENTED
            )

        def write(now_ms: int) -> tuple[Message | None, int, int] | ErrorCode:
            if not node.active or node.raft.resigning:  # (a leader handing over: no writes)
                return ErrorCode.NOT_CONTROLLER
            began = time.perf_counter()
            try:
                result = node.controller.handle(body, context, node.log.end_offset, now_ms)
                end_offset, generation = node.start_write(result, now_ms, body)
            except AppendFailed:
                raise
            except Exception as exc:
                # A fault (kwire.server.faults): logged, counted, renounced in this step.
                name = event_name(type(body).API_KEY)  # type: ignore[attr-defined]
                return node.faults.handle(name, exc, began, now_ms)
            return result.response, end_offset, generation

        try:
            started = (
                write(node.driver.clock()) if in_caller_task else await node.driver.call(write)
            )
            if isinstance(started, ErrorCode):
                # NOT_CONTROLLER: only the active controller changes metadata, brokers
                # retry on the leader; UNKNOWN_SERVER_ERROR: a fault.
                return error_response(body, context.api_version, started)
            response, end_offset, generation = started
            await node.wait_committed(end_offset, generation)
        except AppendFailed as exc:
            log.error("%s failed: %s", body.NAME, exc)
            return error_response(body, context.api_version, exc.code)
        if response is None:
            raise RuntimeError(f"the controller gave no response to {body.NAME}")
        return response

    async def raft_request(
        self, body: VoteRequest | BeginQuorumEpochRequest | EndQuorumEpochRequest, version: int
    ) -> Message:
        """The raft core's answer to a peer's Vote, BeginQuorumEpoch or EndQuorumEpoch;
        its actions are carried out (quorum-state written and fsynced) before it is sent.
        Below v1 the answer has no NodeEndpoints, as Kafka's RaftUtil builds it."""
        node = self.node

        def step(now_ms: int) -> Message:
            response: VoteResponse | BeginQuorumEpochResponse | EndQuorumEpochResponse
            actions: list[Action]
            match body:
                case VoteRequest():
                    response, actions = node.raft.handle_vote(body, now_ms)
                case BeginQuorumEpochRequest():
                    response, actions = node.raft.handle_begin_quorum_epoch(body, now_ms)
                case EndQuorumEpochRequest():
                    response, actions = node.raft.handle_end_quorum_epoch(body, now_ms)
            node.carry_out(actions, now_ms)
            if version < 1:
                response.node_endpoints = []
            return response

        return await node.driver.call(step)

    async def fetch(self, request: FetchRequest) -> Message:
        node = self.node
        deadline = trio.current_time() + request.max_wait_ms / 1000

        def step(now_ms: int) -> tuple[Message, int | None, bool, tuple[int, int]]:
            outcome = node.raft.fetch(request, now_ms)
            if isinstance(outcome, FetchReady):
                return outcome.response, None, False, (0, 0)
            records = node.log.read(outcome.offset, outcome.max_bytes)
            response, actions = node.raft.complete_fetch(request, records, now_ms)
            node.carry_out(actions, now_ms)
            mark = node.writes.wait_mark()  # (in this turn: see WritePath.wait_mark)
            would_wait = node.raft.fetch_would_wait(request, response)
            return response, outcome.offset, would_wait, mark

        while True:
            response, offset, would_wait, mark = await node.driver.call(step)
            if offset is None:
                return response
            if not would_wait or trio.current_time() >= deadline:
                return response
            outcome_offset = offset
            # Long poll, as KafkaRaftClient's fetch purgatory: wait for new records or MaxWaitMs;
            # a v18 fetcher behind the high watermark is also answered when it advances.
            if request.topics[0].partitions[0].high_watermark < LONG_MAX:
                await node.wait_log_growth_or_commit(outcome_offset, deadline, mark)
            else:
                await node.wait_log_growth(outcome_offset, deadline, mark)
            if node.log.end_offset <= outcome_offset and trio.current_time() >= deadline:
                return response
            # Woken by new records, a new high watermark, or a change of state (then the
            # core answers the retry with the error, e.g. NOT_LEADER_OR_FOLLOWER).

    def fetch_snapshot(self, request: FetchSnapshotRequest, version: int) -> FetchSnapshotResponse:
        """The raft core's answer with the chunk read from the snapshot file; below v1
        without the leader's endpoint, as Kafka's RaftUtil."""
        node = self.node
        outcome = node.raft.fetch_snapshot(request, node.driver.clock())
        if isinstance(outcome, FetchSnapshotReady):
            response = outcome.response
        else:
            size, chunk = read_chunk(
                node.log, outcome.snapshot_id, outcome.position, outcome.max_bytes
            )
            response = node.raft.complete_fetch_snapshot(outcome, size, chunk)
        if version < 1:
            response.node_endpoints = []
        return response

    def describe_quorum(
        self, request: DescribeQuorumRequest, version: int
    ) -> DescribeQuorumResponse:
        """The raft core's answer, fitted to `version` as Kafka's RaftUtil does: below v2
        there are no nodes and no replica directory ids."""
        response = self.node.raft.describe_quorum(request, self.node.driver.clock())
        if version < 2:
            response.nodes = []
            for topic in response.topics:
                for partition in topic.partitions:
                    for replica in partition.current_voters + partition.observers:
                        replica.replica_directory_id = ZERO_UUID
        return response

    def describe_cluster(
        self, request: DescribeClusterRequest, version: int
    ) -> DescribeClusterResponse:
        """The controller quorum's endpoints, with Kafka's answers to the wrong endpoint type."""
        node = self.node
        wanted = request.endpoint_type
        if wanted not in ENDPOINT_TYPE_NAMES:
            return DescribeClusterResponse(
                error_code=ErrorCode.INVALID_REQUEST
                if version == 0
                else ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
                error_message=f"Unsupported endpoint type {wanted}",
            )
        if wanted != ENDPOINT_TYPE_CONTROLLER:
            # v0 cannot ask for controllers: it always means brokers, which we are not.
            return DescribeClusterResponse(
                error_code=ErrorCode.INVALID_REQUEST
                if version == 0
                else ErrorCode.MISMATCHED_ENDPOINT_TYPE,
                error_message=(
                    "The request was sent to an endpoint of type CONTROLLER, "
                    f"but we wanted an endpoint of type {ENDPOINT_TYPE_NAMES[wanted]}"
                ),
            )
        return DescribeClusterResponse(
            error_code=ErrorCode.NONE,
            endpoint_type=ENDPOINT_TYPE_CONTROLLER,
            cluster_id=node.settings.cluster_id,
            controller_id=node.raft.leader_id,
            brokers=[
                DescribeClusterResponse.DescribeClusterBroker(
                    broker_id=v.node_id, host=v.host, port=v.port, rack=None
                )
                for v in node.settings.voters
            ],
        )

    def cluster_denied(self, principal: str, host: str, operation: AclOperation) -> bool:
        """Whether the configured authorizer refuses ``operation`` on the cluster to the
        caller (never without an authorizer), for the APIs answered here rather than by the
        controller's operations."""
        auth = AuthHelper.of(self.node.controller, principal, host)
        return not auth.cluster(operation)

    async def envelope(
        self, request: EnvelopeRequest, peer: Peer = ANONYMOUS_PEER
    ) -> EnvelopeResponse:
        """A broker forwards a client's request: check and unwrap it, answer the inner
        request as if it came directly (DescribeQuorum by raft, the rest by the controller),
        and wrap the answer; a NOT_CONTROLLER answer becomes the Envelope's own error.
        With an authorizer the envelope's own principal (the broker) needs CLUSTER_ACTION
        on the cluster first (ControllerApis.handleEnvelopeRequest). The request metrics
        count the inner request and answer, as Kafka's RequestChannel does; a refused
        Envelope counts as itself."""
        started = time.perf_counter()
        auth = AuthHelper.of(self.node.controller, peer.principal, peer.client_host)
        if not auth.cluster(AclOperation.CLUSTER_ACTION):
            log.warning(
                "Principal %s does not have required CLUSTER_ACTION for envelope", peer.principal
            )
            return self.refused_envelope(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, started)
        try:
            forwarded = unwrap_envelope(request)
        except EnvelopeRejected as exc:
            log.warning("Refusing an Envelope: %s", exc)
            return self.refused_envelope(exc.code, started)
        header, body = forwarded.header, forwarded.body
        response: Message
        client_host = str(ipaddress.ip_address(bytes(request.client_host_address)))
        if isinstance(body, AddRaftVoterRequest | RemoveRaftVoterRequest):
            response = await answer_voter_change(
                self.node, body, header.request_api_version, forwarded.principal, client_host
            )
        elif isinstance(body, DescribeQuorumRequest):
            if self.cluster_denied(forwarded.principal, client_host, DESCRIBE_QUORUM_NEEDS):
                response = error_response(
                    body, header.request_api_version, ErrorCode.CLUSTER_AUTHORIZATION_FAILED
                )
            else:
                inner_version = header.request_api_version
                response = await self.node.driver.call(
                    lambda _: self.describe_quorum(body, inner_version)
                )
        else:
            # Kafka's forwarded context: the client's principal and address from the
            # envelope, the security protocol of the broker's hop.
            context = RequestContext(
                api_version=header.request_api_version,
                client_id=header.client_id or "",
                principal=forwarded.principal,
                listener_name=self.node.settings.listener_name,
                envelope=True,
                client_host=client_host,
                security_protocol=peer.security_protocol,
            )
            response = await self.controller_request(body, context)
        self.node.request_stats.record(
            header.request_api_key, header.request_api_version, response, started
        )
        if is_not_controller_answer(response):
            return EnvelopeResponse(error_code=ErrorCode.NOT_CONTROLLER)
        data = encode_response(
            header.request_api_key, header.request_api_version, header.correlation_id, response
        )
        return EnvelopeResponse(response_data=data, error_code=ErrorCode.NONE)

    def refused_envelope(self, code: ErrorCode, started: float) -> EnvelopeResponse:
        response = EnvelopeResponse(error_code=code)
        self.node.request_stats.record(ENVELOPE, 0, response, started)  # Envelope has v0 only
        return response
