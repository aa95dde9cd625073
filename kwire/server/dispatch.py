"""Answering requests: which layer takes each API, and the answers the edge itself gives.

| API                         | answered by                                         |
|-----------------------------|-----------------------------------------------------|
| ApiVersions (18)            | here: the controller listener's APIs and features   |
| DescribeCluster (60)        | here: the controller quorum's endpoints             |
| Fetch (1), DescribeQuorum (55) | the raft core                                    |
| Envelope (58)               | here: unwrap, answer the inner request, wrap        |
| everything else             | the controller; answered once its records commit    |
"""

from __future__ import annotations

import logging

import trio

from kwire.controller.api_error import OperationFailed
from kwire.controller.controller import RequestContext, error_response, operation_failed_response
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.errors import ProtocolError
from kwire.protocol.framing import decode_request, encode_response
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.data.default_principal_data import DefaultPrincipalData
from kwire.protocol.messages.describe_cluster import DescribeClusterRequest, DescribeClusterResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest
from kwire.protocol.messages.envelope import EnvelopeRequest, EnvelopeResponse
from kwire.protocol.messages.fetch import FetchRequest
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.index import APIS
from kwire.raft.core import FetchReady
from kwire.server.node import SUPPORTED_FEATURES, AppendFailed, ControllerNode, wall_clock_ms

log = logging.getLogger("kwire.requests")

CONTROLLER_LISTENER = "controller"
CONTROLLER_APIS = sorted(k for k, api in APIS.items() if CONTROLLER_LISTENER in api.listeners)
ENDPOINT_TYPE_CONTROLLER = 2
ENDPOINT_TYPE_NAMES = {1: "BROKER", 2: "CONTROLLER"}
ANONYMOUS = "User:ANONYMOUS"


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
    response.finalized_features_epoch = epoch
    response.finalized_features = [
        ApiVersionsResponse.FinalizedFeatureKey(
            name=name, max_version_level=level, min_version_level=level
        )
        for name, level in sorted(levels.items())
    ]
    return response


class RequestHandler:
    """Turns one decoded request into its response, awaiting commits and long polls."""

    def __init__(self, node: ControllerNode) -> None:
        self.node = node

    async def handle(self, header: RequestHeader, body: Message) -> Message:
        version = header.request_api_version
        match body:
            case ApiVersionsRequest():
                return api_versions_response(ErrorCode.NONE, self.node)
            case FetchRequest():
                return await self.fetch(body)
            case DescribeQuorumRequest():
                return self.node.raft.describe_quorum(body, wall_clock_ms())
            case DescribeClusterRequest():
                return self.describe_cluster(body, version)
            case EnvelopeRequest():
                return await self.envelope(body)
            case _:
                context = RequestContext(
                    api_version=version,
                    client_id=header.client_id or "",
                    principal=ANONYMOUS,
                    listener_name=self.node.settings.listener_name,
                    envelope=False,
                )
                return await self.controller_request(body, context)

    async def controller_request(self, body: Message, context: RequestContext) -> Message:
        node = self.node
        if not node.raft.is_leader:
            # Only the active controller changes metadata; brokers retry on the leader.
            return error_response(body, ErrorCode.NOT_CONTROLLER)
        result = node.controller.handle(body, context, node.log.end_offset, wall_clock_ms())
        try:
            await node.run_controller_write(result)
        except AppendFailed as exc:
            log.error("%s failed: %s", body.NAME, exc)
            return operation_failed_response(body, context.api_version, OperationFailed(exc.code))
        if result.response is None:
            raise RuntimeError(f"the controller gave no response to {body.NAME}")
        return result.response

    async def fetch(self, request: FetchRequest) -> Message:
        node = self.node
        deadline = trio.current_time() + request.max_wait_ms / 1000
        while True:
            outcome = node.raft.fetch(request, wall_clock_ms())
            if isinstance(outcome, FetchReady):
                return outcome.response
            records = node.log.read(outcome.offset, outcome.max_bytes)
            response, actions = node.raft.complete_fetch(request, records, wall_clock_ms())
            node.carry_out(actions)
            if not node.raft.fetch_would_wait(request, response) or trio.current_time() >= deadline:
                return response
            # Long poll, as KafkaRaftClient's fetch purgatory: wait for new records or MaxWaitMs.
            await node.wait_log_growth(outcome.offset, deadline)
            if node.log.end_offset <= outcome.offset:
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

    async def envelope(self, request: EnvelopeRequest) -> EnvelopeResponse:
        """A broker forwards a client's request: answer it as the controller, then wrap."""
        try:
            inner_header, inner_body = decode_request(request.request_data)
            principal = decode_principal(bytes(request.request_principal or b""))
        except ProtocolError as exc:
            log.warning("Envelope carries a request kwire cannot decode: %s", exc)
            return EnvelopeResponse(error_code=ErrorCode.INVALID_REQUEST)
        if inner_header.request_api_key not in CONTROLLER_APIS:
            return EnvelopeResponse(error_code=ErrorCode.INVALID_REQUEST)
        context = RequestContext(
            api_version=inner_header.request_api_version,
            client_id=inner_header.client_id or "",
            principal=principal,
            listener_name=self.node.settings.listener_name,
            envelope=True,
        )
        response = await self.controller_request(inner_body, context)
        data = encode_response(
            inner_header.request_api_key,
            inner_header.request_api_version,
            inner_header.correlation_id,
            response,
        )
        return EnvelopeResponse(response_data=data, error_code=ErrorCode.NONE)


def decode_principal(data: bytes) -> str:
    """Kafka's DefaultKafkaPrincipalBuilder form: an int16 version, then DefaultPrincipalData."""
    if len(data) < 2:
        return ANONYMOUS
    version = int.from_bytes(data[:2], "big", signed=True)
    principal = DefaultPrincipalData.decode(data[2:], version)
    return f"{principal.type}:{principal.name}"
