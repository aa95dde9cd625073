"""The StandardAuthorizer configured in a real server's properties: its keys reach the
controller, authorization decides broker RPCs, and ACLs survive a restart."""

from __future__ import annotations

import uuid
from pathlib import Path

import trio
from server_harness import HOST, KwireServer
from test_server_integrity import records_in_log

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kwire.protocol.messages.create_acls import CreateAclsRequest, CreateAclsResponse
from kwire.protocol.messages.describe_acls import DescribeAclsRequest, DescribeAclsResponse
from kwire.protocol.messages.describe_cluster import DescribeClusterRequest, DescribeClusterResponse
from kwire.protocol.messages.describe_quorum import DescribeQuorumRequest, DescribeQuorumResponse
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.server.client import KafkaClient

TIMEOUT_S = 20.0
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
TOPIC, LITERAL, ANY, READ, ALLOW = 2, 3, 1, 3, 3


def registration(cluster_id: str) -> BrokerRegistrationRequest:
    return BrokerRegistrationRequest(
        broker_id=1,
        cluster_id=cluster_id,
        incarnation_id=uuid.uuid4(),
        listeners=[
            BrokerRegistrationRequest.Listener(
                name="PLAINTEXT", host=HOST, port=9092, security_protocol=0
            )
        ],
        features=[
            BrokerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=21
            )
        ],
        rack=None,
        log_dirs=[uuid.uuid4()],
    )


CREATION = CreateAclsRequest(
    creations=[
        CreateAclsRequest.AclCreation(
            resource_type=TOPIC,
            resource_name="orders",
            resource_pattern_type=LITERAL,
            principal="User:alice",
            host="*",
            operation=READ,
            permission_type=ALLOW,
        )
    ]
)
EVERY_ACL = DescribeAclsRequest(
    resource_type_filter=ANY,
    resource_name_filter=None,
    pattern_type_filter=ANY,
    principal_filter=None,
    host_filter=None,
    operation=ANY,
    permission_type=ANY,
)


async def test_without_an_authorizer_the_acl_apis_answer_security_disabled(
    tmp_path: Path,
) -> None:
    with KwireServer.create(tmp_path / "kwire") as server, trio.fail_after(TIMEOUT_S):
        client = await KafkaClient.connect(HOST, server.port)
        response = await client.request(CREATION, 3)
        assert isinstance(response, CreateAclsResponse)
        assert [r.error_code for r in response.results] == [ErrorCode.SECURITY_DISABLED]
        await client.aclose()


async def test_broker_rpcs_need_cluster_action_when_the_standard_authorizer_is_configured(
    tmp_path: Path,
) -> None:
    """Kafka's ControllerApis requires CLUSTER_ACTION on the cluster for BrokerRegistration;
    the anonymous PLAINTEXT principal has no ACL and is no super user."""
    extra = {"authorizer.class.name": STANDARD_AUTHORIZER}
    with KwireServer.create(tmp_path / "kwire", extra_properties=extra) as server:
        with trio.fail_after(TIMEOUT_S):
            client = await KafkaClient.connect(HOST, server.port)
            response = await client.request(registration(server.cluster_id), 4)
            assert isinstance(response, BrokerRegistrationResponse)
            assert response.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            await client.aclose()


async def test_a_super_user_creates_acls_that_survive_a_restart(tmp_path: Path) -> None:
    extra = {"authorizer.class.name": STANDARD_AUTHORIZER, "super.users": "User:ANONYMOUS"}
    with KwireServer.create(tmp_path / "kwire", extra_properties=extra) as server:
        with trio.fail_after(TIMEOUT_S):
            client = await KafkaClient.connect(HOST, server.port)
            created = await client.request(CREATION, 3)
            assert isinstance(created, CreateAclsResponse)
            assert [r.error_code for r in created.results] == [ErrorCode.NONE]
            registered = await client.request(registration(server.cluster_id), 4)
            assert registered.error_code == ErrorCode.NONE  # a super user may do anything
            await client.aclose()
        assert server.stop() == 0
        server.start()
        with trio.fail_after(TIMEOUT_S):
            client = await KafkaClient.connect(HOST, server.port)
            described = await client.request(EVERY_ACL, 3)
            assert isinstance(described, DescribeAclsResponse)
            assert described.error_code == ErrorCode.NONE
            found = [
                (r.resource_name, a.principal, a.operation)
                for r in described.resources
                for a in r.acls
            ]
            assert found == [("orders", "User:alice", READ)]
            await client.aclose()


async def test_raft_and_cluster_apis_need_their_cluster_operations(tmp_path: Path) -> None:
    """ControllerApis: Fetch needs CLUSTER_ACTION, DescribeQuorum DESCRIBE and, on a
    controller, DescribeCluster ALTER on the cluster; the anonymous principal has none.
    The node's own controller registration is internal and still happens."""
    extra = {"authorizer.class.name": STANDARD_AUTHORIZER}
    with KwireServer.create(tmp_path / "kwire", extra_properties=extra) as server:
        with trio.fail_after(TIMEOUT_S):
            client = await KafkaClient.connect(HOST, server.port)
            cluster = await client.request(
                DescribeClusterRequest(
                    endpoint_type=2, include_cluster_authorized_operations=False
                ),
                1,
            )
            assert isinstance(cluster, DescribeClusterResponse)
            assert cluster.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            quorum = await client.request(
                DescribeQuorumRequest(
                    topics=[
                        DescribeQuorumRequest.TopicData(
                            topic_name="__cluster_metadata",
                            partitions=[DescribeQuorumRequest.PartitionData(partition_index=0)],
                        )
                    ]
                ),
                2,
            )
            assert isinstance(quorum, DescribeQuorumResponse)
            assert quorum.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            fetch = await client.request(FetchRequest(cluster_id=server.cluster_id), 17)
            assert isinstance(fetch, FetchResponse)
            assert fetch.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            await client.aclose()
    assert "RegisterControllerRecord" in {type(r).__name__ for r in records_in_log(server.data_dir)}


async def test_a_super_user_describes_the_cluster(tmp_path: Path) -> None:
    extra = {"authorizer.class.name": STANDARD_AUTHORIZER, "super.users": "User:ANONYMOUS"}
    with KwireServer.create(tmp_path / "kwire", extra_properties=extra) as server:
        with trio.fail_after(TIMEOUT_S):
            client = await KafkaClient.connect(HOST, server.port)
            cluster = await client.request(
                DescribeClusterRequest(
                    endpoint_type=2, include_cluster_authorized_operations=False
                ),
                1,
            )
            assert isinstance(cluster, DescribeClusterResponse)
            assert cluster.error_code == ErrorCode.NONE
            assert [b.port for b in cluster.brokers] == [server.port]
            await client.aclose()
