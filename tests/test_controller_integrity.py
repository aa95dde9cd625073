"""The controller never remembers what its log does not hold.

The active controller applies a request's records before they are committed; whatever is
refused, fails or is abandoned must be taken back, so that its image is always the replay
of its log up to an offset (kwire.controller.undo). Limits are checked before anything is
applied: at most 10,000 records per operation (KAFKA-14996), an atomic batch within the
raft batch size.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_controller_cluster import registration as cluster_registration

from kwire.controller import ControllerConfig, ControllerResult, QuorumController, RequestContext
from kwire.controller.authorizer import AuthorizerSettings
from kwire.controller.elr import elr_enabled
from kwire.controller.image import MetadataImage
from kwire.controller.operation import Applied
from kwire.controller.undo import UndoLog
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.allocate_producer_ids import AllocateProducerIdsRequest
from kwire.protocol.messages.alter_client_quotas import AlterClientQuotasRequest
from kwire.protocol.messages.alter_configs import AlterConfigsRequest
from kwire.protocol.messages.alter_partition import AlterPartitionRequest
from kwire.protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
)
from kwire.protocol.messages.alter_user_scram_credentials import AlterUserScramCredentialsRequest
from kwire.protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kwire.protocol.messages.broker_registration import BrokerRegistrationRequest
from kwire.protocol.messages.create_acls import CreateAclsRequest
from kwire.protocol.messages.create_partitions import CreatePartitionsRequest
from kwire.protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kwire.protocol.messages.delete_acls import DeleteAclsRequest
from kwire.protocol.messages.delete_topics import DeleteTopicsRequest
from kwire.protocol.messages.elect_leaders import ElectLeadersRequest
from kwire.protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.unregister_broker import UnregisterBrokerRequest
from kwire.protocol.messages.update_features import UpdateFeaturesRequest
from kwire.records import (
    MAX_BATCH_SIZE_BYTES,
    Record,
    build_batch,
    encode_batch,
    plain_batch_size,
    unframe_metadata_record,
)

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
START_MS = 1_000_000
EXCESSIVE = "Unable to perform excessively large batch operation."

CreatableTopic = CreateTopicsRequest.CreatableTopic
CreatableTopicConfig = CreateTopicsRequest.CreatableTopicConfig


# -- the image as a value, and the image the log replays to -----------------------------------


def image_state(image: MetadataImage) -> dict[str, Any]:
    """Everything the image knows, as comparable values (callbacks and undo notes aside)."""
    skip = {"on_broker_registered", "on_broker_removed", "undo"}
    return {f.name: getattr(image, f.name) for f in dataclasses.fields(image) if f.name not in skip}


def replayed(log: list[tuple[int, bytes]]) -> MetadataImage:
    """A fresh image built from framed records, decoded as a restart would read them."""
    image = MetadataImage()
    for offset, value in log:
        api_key, version, body = unframe_metadata_record(value)
        image.replay(METADATA_RECORDS[api_key].decode(body, version), version, offset)
    return image


@dataclass
class Leader:
    """A controller with the log a sole voter would keep: ``log`` is committed,
    ``pending`` applied but not yet appended (the append may still fail)."""

    controller: QuorumController
    log: list[tuple[int, bytes]] = field(default_factory=list)
    pending: list[tuple[int, bytes]] = field(default_factory=list)
    now_ms: int = START_MS

    @classmethod
    def started(cls, **config: Any) -> Leader:
        controller = QuorumController(
            node_id=1,
            cluster_id=CLUSTER_ID,
            config=ControllerConfig(**config),
            rng=random.Random(7),
        )
        leader = cls(controller)
        bootstrap = controller.activate(leader.now_ms, 0)
        assert bootstrap is not None
        leader.take(bootstrap)
        leader.append()
        return leader

    @property
    def next_offset(self) -> int:
        return len(self.log) + len(self.pending)

    def take(self, result: ControllerResult | None) -> None:
        if result is not None:
            assert len(result.values) == len(result.records)
            base = self.next_offset
            self.pending += [(base + i, value) for i, value in enumerate(result.values)]

    def send(self, request: Message, version: int = 0) -> Message:
        result = self.controller.handle(
            request, RequestContext(api_version=version), self.next_offset, self.now_ms
        )
        self.take(result)
        assert result.response is not None
        return result.response

    def tick(self, advance_ms: int) -> None:
        self.now_ms += advance_ms
        self.take(self.controller.tick(self.now_ms, self.next_offset))

    def append(self) -> None:
        """The pending records reach the log and commit."""
        self.log += self.pending
        self.pending = []
        self.controller.commit(len(self.log) - 1)

    def fail_append(self) -> None:
        """The append failed or was abandoned: back to the committed offset."""
        self.pending = []
        self.controller.revert_to(len(self.log) - 1)

    def assert_image_is_the_replay_of_its_log(self) -> None:
        assert image_state(self.controller.image) == image_state(replayed(self.log + self.pending))
        self.assert_sessions_follow_the_image()

    def assert_sessions_follow_the_image(self) -> None:
        """The active controller tracks a session for each broker its image registers,
        fenced as the image says, and for no other (Kafka's BrokerHeartbeatManager, fed by
        the replay of every registration change and rebuilt by each claim)."""
        ctl = self.controller
        sessions = {b: s.fenced for b, s in ctl.tracker.sessions.items()}
        assert sessions == {b: r.fenced for b, r in ctl.image.brokers.items()}


def registration(broker_id: int, incarnation: int = 0) -> BrokerRegistrationRequest:
    """Broker ``broker_id``'s registration; another ``incarnation`` is a restarted broker."""
    return cluster_registration(
        broker_id, incarnation_id=uuid.UUID(int=1000 * (incarnation + 1) + broker_id)
    )


def heartbeat(leader: Leader, broker_id: int, **fields: Any) -> Message:
    registered = leader.controller.brokers.get(broker_id)
    request = BrokerHeartbeatRequest(
        broker_id=broker_id,
        broker_epoch=registered.epoch if registered else 0,
        current_metadata_offset=len(leader.log) - 1,
        **fields,
    )
    return leader.send(request)


def unfenced_broker(leader: Leader, broker_id: int = 1) -> None:
    leader.send(registration(broker_id))
    leader.append()
    response = heartbeat(leader, broker_id, want_fence=False)
    leader.append()
    assert not response.is_fenced


def pending_record_names(leader: Leader) -> list[str]:
    names = []
    for _, value in leader.pending:
        api_key, version, body = unframe_metadata_record(value)
        names.append(type(METADATA_RECORDS[api_key].decode(body, version)).__name__)
    return names


def topic(name: str, partitions: int = 1, rf: int = 1, **configs: str) -> CreatableTopic:
    return CreatableTopic(
        name=name,
        num_partitions=partitions,
        replication_factor=rf,
        configs=[CreatableTopicConfig(name=k, value=v) for k, v in configs.items()],
    )


def throttled_replicas(size: int) -> dict[str, str]:
    """Two legal throttled-replica lists of about ``size`` bytes each."""
    value = ",".join(f"{i}:{i}" for i in range(size // 6))[:size].rsplit(",", 1)[0]
    return {
        "leader.replication.throttled.replicas": value,
        "follower.replication.throttled.replicas": value,
    }


def results(response: Message) -> dict[str, tuple[int, str | None]]:
    assert isinstance(response, CreateTopicsResponse)
    return {t.name: (t.error_code, t.error_message) for t in response.topics}


# -- the undo log --------------------------------------------------------------------------


def test_undo_log_takes_back_changes_after_an_offset_newest_first() -> None:
    undo = UndoLog()
    table: dict[str, int] = {"kept": 1, "changed": 2, "removed": 3}
    members = [10, 20, 30]

    class Box:
        value = "before"

    box = Box()
    undo.recording = True
    undo.offset = 5
    undo.set_item(table, "changed", 20)
    undo.offset = 6
    undo.set_item(table, "added", 4)
    undo.pop_item(table, "removed")
    undo.set_attr(box, "value", "after")
    undo.list_remove(members, 20)
    undo.list_append(members, 40)
    undo.set_item(table, "changed", 200)

    assert undo.revert_to(5) == 6
    assert table == {"kept": 1, "changed": 20, "removed": 3}
    assert (box.value, members) == ("before", [10, 20, 30])
    assert undo.revert_to(4) == 1
    assert table == {"kept": 1, "changed": 2, "removed": 3}


def test_undo_log_forgets_committed_changes_and_records_nothing_when_not_recording() -> None:
    undo = UndoLog()
    table: dict[str, int] = {}
    undo.set_item(table, "replayed", 1)  # not recording: a committed record
    undo.recording = True
    for offset in (1, 2, 3):
        undo.offset = offset
        undo.set_item(table, f"k{offset}", offset)
    undo.forget_through(2)
    assert len(undo) == 1
    undo.revert_to(0)
    assert table == {"replayed": 1, "k1": 1, "k2": 2}


def test_plain_batch_size_is_the_size_of_the_encoded_batch() -> None:
    rng = random.Random(3)
    for count in (1, 2, 130, 300):
        values = [bytes(rng.randrange(0, 20_000 if count < 5 else 200)) for _ in range(count)]
        batch = build_batch(
            [Record(offset_delta=i, value=v) for i, v in enumerate(values)], base_timestamp=1
        )
        assert plain_batch_size([len(v) for v in values]) == len(encode_batch(batch))


# -- reproduction A: a batch over the raft limit ------------------------------------------------


def oversized_create_topics() -> CreateTopicsRequest:
    """140 topics, each with two throttled-replica configs of about 32 KB: over 8 MiB."""
    configs = throttled_replicas(32_000)
    return CreateTopicsRequest(
        topics=[topic(f"big-{i}", 1, 1, **configs) for i in range(140)], timeout_ms=30_000
    )


def test_create_topics_over_the_batch_limit_fails_every_topic_and_applies_nothing() -> None:
    leader = Leader.started(broker_session_timeout_ms=3000)
    unfenced_broker(leader)
    before = image_state(replayed(leader.log))
    request = oversized_create_topics()

    response = leader.send(request, version=7)

    # Kafka 3.9: RecordBatchTooLargeException from raft, treated as an unexpected error:
    # UNKNOWN_SERVER_ERROR without a message for every topic, and nothing written.
    assert results(response) == {
        t.name: (ErrorCode.UNKNOWN_SERVER_ERROR, None) for t in request.topics
    }
    assert leader.pending == []
    assert image_state(leader.controller.image) == before
    # The same request again is not TOPIC_ALREADY_EXISTS: the topics exist nowhere.
    again = leader.send(request, version=7)
    assert {code for code, _ in results(again).values()} == {ErrorCode.UNKNOWN_SERVER_ERROR}


def test_fencing_after_a_refused_create_topics_writes_nothing_about_its_topics() -> None:
    leader = Leader.started(broker_session_timeout_ms=3000)
    unfenced_broker(leader)
    leader.send(CreateTopicsRequest(topics=[topic("small")]), version=7)
    leader.append()
    leader.send(oversized_create_topics(), version=7)
    assert leader.pending == []

    leader.tick(3001)  # the broker stopped heartbeating: fenced
    leader.append()

    topic_ids = set(leader.controller.topics_by_id)
    changes = []
    for _, value in leader.log:
        api_key, version, body = unframe_metadata_record(value)
        record = METADATA_RECORDS[api_key].decode(body, version)
        if type(record).__name__ == "PartitionChangeRecord":
            changes.append(record.topic_id)
    assert changes and set(changes) <= topic_ids  # only the committed topic moved
    assert set(leader.controller.topics_by_name) == {"small"}
    leader.assert_image_is_the_replay_of_its_log()


def test_a_reverted_unfencing_leaves_the_broker_fenced_for_the_session_scan() -> None:
    # The heartbeat's BrokerRegistrationChangeRecord (unfence) is applied, then its append
    # fails: the image is back to a fenced broker, and so is its session (Kafka renounces,
    # and its next claim starts the sessions from the registrations). The session scan
    # has nothing to fence, and the broker's next heartbeat unfences it again.
    leader = Leader.started(broker_session_timeout_ms=3000)
    leader.send(registration(1))
    leader.append()
    assert not heartbeat(leader, 1, want_fence=False).is_fenced
    leader.fail_append()
    assert leader.controller.brokers[1].fenced
    leader.assert_sessions_follow_the_image()

    leader.tick(3001)  # broker 1 said nothing since: no fencing, only the periodic NoOp
    assert pending_record_names(leader) == ["NoOpRecord"]
    leader.append()
    again = heartbeat(leader, 1, want_fence=False)
    assert again.is_fenced is False and leader.pending  # the unfencing is written again
    leader.append()
    leader.assert_image_is_the_replay_of_its_log()


def test_a_batch_just_within_the_limit_is_applied() -> None:
    leader = Leader.started()
    unfenced_broker(leader)
    configs = throttled_replicas(32_000)
    request = CreateTopicsRequest(topics=[topic(f"fits-{i}", **configs) for i in range(125)])
    response = leader.send(request, version=7)
    assert {code for code, _ in results(response).values()} == {ErrorCode.NONE}
    size = plain_batch_size([len(v) for _, v in leader.pending])
    assert 7.5 * 1024 * 1024 < size <= MAX_BATCH_SIZE_BYTES
    leader.append()
    leader.assert_image_is_the_replay_of_its_log()


# -- KAFKA-14996: at most 10,000 records per operation -----------------------------------------


@pytest.mark.parametrize(
    ("name", "topics", "validate_only"),
    [
        ("one topic of 10,001 partitions", [("t0", 10_001)], False),
        ("5,000 + 5,000 + 1 partitions", [("t0", 5_000), ("t1", 5_000), ("t2", 1)], False),
        ("validateOnly with 10,000 partitions", [("t0", 10_000)], True),
        ("a billion partitions, refused without placing them", [("t0", 1_000_000_000)], False),
    ],
)
def test_operations_over_10000_records_fail_every_topic_with_policy_violation(
    name: str, topics: list[tuple[str, int]], validate_only: bool
) -> None:
    leader = Leader.started()
    unfenced_broker(leader)
    before = image_state(replayed(leader.log))
    request = CreateTopicsRequest(
        topics=[topic(n, p) for n, p in topics], validate_only=validate_only
    )
    response = leader.send(request, version=7)
    assert results(response) == {n: (ErrorCode.POLICY_VIOLATION, EXCESSIVE) for n, _ in topics}, (
        name
    )
    assert leader.pending == []
    assert image_state(leader.controller.image) == before


def test_an_operation_of_exactly_10000_records_is_allowed() -> None:
    leader = Leader.started()
    unfenced_broker(leader)
    # 1 TopicRecord + 9,999 PartitionRecords.
    response = leader.send(CreateTopicsRequest(topics=[topic("t0", 9_999)]), version=7)
    assert results(response)["t0"][0] == ErrorCode.NONE
    assert len(leader.pending) == 10_000


def test_an_invalid_topic_is_judged_before_the_record_limit() -> None:
    """The limit counts only what would be written: a topic refused for its own reason
    keeps that reason, as in Kafka, where its records are never added."""
    leader = Leader.started()
    unfenced_broker(leader)
    response = leader.send(CreateTopicsRequest(topics=[topic("t0", 20_000, rf=3)]), version=7)
    assert results(response)["t0"][0] == ErrorCode.INVALID_REPLICATION_FACTOR


# -- the property: the image is always the replay of its log -----------------------------------

BROKERS = st.integers(1, 4)
NAMES = st.sampled_from([f"topic-{i}" for i in range(6)] + ["a.b", "a_b"])
CONFIG_SIZES = st.sampled_from([0, 0, 20, 1500])
ACL_NAMES = st.sampled_from(["t", "u", "*"])
USERS = st.sampled_from(["alice", "bob"])
OPERATIONS = st.one_of(
    st.tuples(st.just("register"), BROKERS, st.integers(0, 2)),
    st.tuples(st.just("heartbeat"), BROKERS, st.booleans(), st.booleans()),
    st.tuples(
        st.just("create"),
        st.lists(st.tuples(NAMES, st.integers(1, 4), st.integers(1, 3), CONFIG_SIZES), max_size=4),
        st.booleans(),
    ),
    st.tuples(st.just("producer_ids"), BROKERS),
    st.tuples(st.just("alter_partition"), NAMES, st.integers(0, 3), st.sets(BROKERS)),
    st.tuples(st.just("elect"), st.sampled_from([0, 1]), st.booleans()),
    st.tuples(
        st.just("reassign"),
        NAMES,
        st.integers(0, 3),
        st.one_of(st.none(), st.lists(BROKERS, min_size=1, max_size=3, unique=True)),
    ),
    st.tuples(st.just("delete"), st.lists(NAMES, max_size=3), st.booleans()),
    st.tuples(
        st.just("create_partitions"),
        st.lists(st.tuples(NAMES, st.integers(1, 6)), max_size=3),
        st.booleans(),
    ),
    st.tuples(st.just("unregister"), BROKERS),
    # Config changes: (resource type, name), key, operation (0-3), value; legacy or not.
    st.tuples(
        st.just("configs"),
        st.sampled_from([(2, "topic-0"), (2, "topic-1"), (4, ""), (4, "1"), (4, "9"), (16, "s")]),
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "retention.ms",
                        "cleanup.policy",
                        "log.cleaner.threads",
                        "metrics",
                        "bogus",
                        "min.insync.replicas",
                    ]
                ),
                st.integers(0, 3),
                st.sampled_from(["compact", "1000", "x", "delete,compact", "2"]),
            ),
            max_size=3,
        ),
        st.booleans(),
        st.booleans(),
    ),
    st.tuples(st.just("features"), st.sampled_from([18, 20, 21, 22]), st.integers(1, 3)),
    st.tuples(st.just("tick"), st.sampled_from([0, 500, 4000, 10_000])),
    st.tuples(st.just("append")),
    st.tuples(st.just("fail")),
    st.tuples(st.just("create_acl"), ACL_NAMES, st.booleans()),
    st.tuples(st.just("delete_acls"), st.one_of(st.none(), ACL_NAMES)),
    st.tuples(st.just("scram"), USERS, st.booleans()),
    st.tuples(st.just("quota"), USERS, st.sampled_from([None, 1.0, 2.0])),
)


def alter_partition_request(
    leader: Leader, name: str, partition_id: int, members: set[int]
) -> AlterPartitionRequest:
    """The partition leader's AlterPartition towards ``members`` (kept with the leader),
    with its current epochs; a request about a missing partition goes as it is."""
    topic = leader.controller.topics_by_name.get(name)
    partition = None if topic is None else topic.partitions.get(partition_id)
    leader_id = 1 if partition is None else max(partition.leader, 1)
    registered = leader.controller.brokers.get(leader_id)
    data = AlterPartitionRequest.PartitionData(partition_index=partition_id)
    if partition is not None:
        data.leader_epoch = partition.leader_epoch
        data.partition_epoch = partition.partition_epoch
    isr = sorted(members | {leader_id})
    data.new_isr_with_epochs = [
        AlterPartitionRequest.BrokerState(broker_id=b, broker_epoch=-1) for b in isr
    ]
    return AlterPartitionRequest(
        broker_id=leader_id,
        broker_epoch=registered.epoch if registered else 0,
        topics=[
            AlterPartitionRequest.TopicData(
                topic_id=topic.topic_id if topic else uuid.UUID(int=7), partitions=[data]
            )
        ],
    )


def elect_request(leader: Leader, election_type: int, every: bool) -> ElectLeadersRequest:
    return ElectLeadersRequest(
        election_type=election_type,
        topic_partitions=None
        if every
        else [
            ElectLeadersRequest.TopicPartitions(topic=name, partitions=list(topic.partitions))
            for name, topic in leader.controller.topics_by_name.items()
        ],
    )


def reassign_request(
    name: str, partition_id: int, replicas: list[int] | None
) -> AlterPartitionReassignmentsRequest:
    return AlterPartitionReassignmentsRequest(
        topics=[
            AlterPartitionReassignmentsRequest.ReassignableTopic(
                name=name,
                partitions=[
                    AlterPartitionReassignmentsRequest.ReassignablePartition(
                        partition_index=partition_id, replicas=replicas
                    )
                ],
            )
        ]
    )


def acl_creation(name: str, allow: bool) -> CreateAclsRequest:
    return CreateAclsRequest(
        creations=[
            CreateAclsRequest.AclCreation(
                resource_type=2,  # TOPIC
                resource_name=name,
                resource_pattern_type=3,  # LITERAL
                principal="User:alice",
                host="*",
                operation=3,  # READ
                permission_type=3 if allow else 2,  # ALLOW / DENY
            )
        ]
    )


def acl_deletion(name: str | None) -> DeleteAclsRequest:
    return DeleteAclsRequest(
        filters=[
            DeleteAclsRequest.DeleteAclsFilter(
                resource_type_filter=1,  # ANY
                resource_name_filter=name,
                pattern_type_filter=1,  # ANY
                principal_filter=None,
                host_filter=None,
                operation=1,
                permission_type=1,
            )
        ]
    )


def scram_alteration(user: str, upsert: bool) -> AlterUserScramCredentialsRequest:
    if upsert:
        upsertion = AlterUserScramCredentialsRequest.ScramCredentialUpsertion(
            name=user, mechanism=1, iterations=4096, salt=b"s", salted_password=b"p"
        )
        return AlterUserScramCredentialsRequest(upsertions=[upsertion])
    deletion = AlterUserScramCredentialsRequest.ScramCredentialDeletion(name=user, mechanism=1)
    return AlterUserScramCredentialsRequest(deletions=[deletion])


def quota_alteration(user: str, value: float | None) -> AlterClientQuotasRequest:
    op = AlterClientQuotasRequest.OpData(
        key="producer_byte_rate", value=value or 0.0, remove=value is None
    )
    return AlterClientQuotasRequest(
        entries=[
            AlterClientQuotasRequest.EntryData(
                entity=[AlterClientQuotasRequest.EntityData(entity_type="user", entity_name=user)],
                ops=[op],
            )
        ]
    )


def run_operations(leader: Leader, operations: list[tuple[Any, ...]]) -> None:
    for operation in operations:
        match operation:
            case ("register", broker_id, incarnation):
                leader.send(registration(broker_id, incarnation))
            case ("heartbeat", broker_id, want_fence, want_shut_down):
                heartbeat(leader, broker_id, want_fence=want_fence, want_shut_down=want_shut_down)
            case ("create", specs, validate_only):
                topics = [
                    topic(name, partitions, rf, **(throttled_replicas(size) if size else {}))
                    for name, partitions, rf, size in specs
                ]
                leader.send(CreateTopicsRequest(topics=topics, validate_only=validate_only), 7)
            case ("producer_ids", broker_id):
                registered = leader.controller.brokers.get(broker_id)
                epoch = registered.epoch if registered else 0
                leader.send(AllocateProducerIdsRequest(broker_id=broker_id, broker_epoch=epoch))
            case ("alter_partition", name, partition_id, members):
                leader.send(alter_partition_request(leader, name, partition_id, members), 3)
            case ("elect", election_type, every):
                leader.send(elect_request(leader, election_type, every), 2)
            case ("reassign", name, partition_id, replicas):
                leader.send(reassign_request(name, partition_id, replicas))
            case ("delete", names, by_id):
                if by_id:
                    ids = [leader.controller.image.topic_ids_by_name.get(n) for n in names]
                    states = [
                        DeleteTopicsRequest.DeleteTopicState(name=None, topic_id=i)
                        for i in ids
                        if i is not None
                    ]
                else:
                    states = [DeleteTopicsRequest.DeleteTopicState(name=n) for n in names]
                leader.send(DeleteTopicsRequest(topics=states), 6)
            case ("create_partitions", specs, validate_only):
                new = [
                    CreatePartitionsRequest.CreatePartitionsTopic(name=name, count=count)
                    for name, count in specs
                ]
                leader.send(CreatePartitionsRequest(topics=new, validate_only=validate_only), 3)
            case ("unregister", broker_id):
                leader.send(UnregisterBrokerRequest(broker_id=broker_id))
            case ("configs", (kind, name), changes, legacy, validate_only):
                if legacy:
                    legacy_configs = [
                        AlterConfigsRequest.AlterableConfig(name=key, value=value)
                        for key, _, value in changes
                    ]
                    resource = AlterConfigsRequest.AlterConfigsResource(
                        resource_type=kind, resource_name=name, configs=legacy_configs
                    )
                    leader.send(
                        AlterConfigsRequest(resources=[resource], validate_only=validate_only), 2
                    )
                else:
                    ops = [
                        IncrementalAlterConfigsRequest.AlterableConfig(
                            name=key, config_operation=op, value=value
                        )
                        for key, op, value in changes
                    ]
                    incremental = IncrementalAlterConfigsRequest.AlterConfigsResource(
                        resource_type=kind, resource_name=name, configs=ops
                    )
                    leader.send(
                        IncrementalAlterConfigsRequest(
                            resources=[incremental], validate_only=validate_only
                        ),
                        1,
                    )
            case ("features", level, upgrade_type):
                update = UpdateFeaturesRequest.FeatureUpdateKey(
                    feature="metadata.version", max_version_level=level, upgrade_type=upgrade_type
                )
                leader.send(UpdateFeaturesRequest(feature_updates=[update]), 1)
            case ("tick", advance_ms):
                leader.tick(advance_ms)
            case ("append",):
                leader.append()
            case ("fail",):
                leader.fail_append()
            case ("create_acl", name, allow):
                leader.send(acl_creation(name, allow), 3)
            case ("delete_acls", name):
                leader.send(acl_deletion(name), 3)
            case ("scram", user, upsert):
                leader.send(scram_alteration(user, upsert))
            case ("quota", user, value):
                leader.send(quota_alteration(user, value), 1)
        leader.assert_image_is_the_replay_of_its_log()


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(OPERATIONS, max_size=40))
def test_the_image_is_always_the_replay_of_its_log_whatever_appends_fail(
    operations: list[tuple[Any, ...]],
) -> None:
    # A small batch limit, so that some random requests are refused for their size; an
    # authorizer, so that the ACL APIs write (the anonymous test principal is a super user).
    leader = Leader.started(
        max_batch_size_bytes=6000,
        broker_session_timeout_ms=9000,
        authorizer=AuthorizerSettings(super_users=frozenset({"User:ANONYMOUS"})),
    )
    run_operations(leader, operations)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(OPERATIONS, max_size=40))
def test_the_image_is_always_the_replay_of_its_log_with_eligible_leader_replicas_on(
    operations: list[tuple[Any, ...]],
) -> None:
    # As above on a cluster at 4.0-IV1 with eligible.leader.replicas.version 1 and the
    # cluster-level min.insync.replicas=2: ISR shrinks keep ELRs, min ISR changes write
    # ClearElrRecords, re-registrations clean up after unclean shutdowns.
    leader = Leader.started(
        max_batch_size_bytes=6000,
        broker_session_timeout_ms=9000,
        authorizer=AuthorizerSettings(super_users=frozenset({"User:ANONYMOUS"})),
    )
    ctl = leader.controller
    records = [
        FeatureLevelRecord(name="metadata.version", feature_level=23),
        FeatureLevelRecord(name="eligible.leader.replicas.version", feature_level=1),
        ConfigRecord(resource_type=4, resource_name="", name="min.insync.replicas", value="2"),
    ]
    leader.take(ctl.apply(Applied(), list(records), leader.next_offset).result(None))
    leader.append()
    assert elr_enabled(ctl.image)
    run_operations(leader, operations)


def test_the_property_catches_a_controller_that_does_not_revert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the revert (kwire before the undo log), the same check fails: a failed
    append leaves its records in the image but not in the log."""
    monkeypatch.setattr(UndoLog, "revert_to", lambda self, offset: 0)
    leader = Leader.started()
    with pytest.raises(AssertionError):
        run_operations(
            leader,
            [
                ("register", 1, 0),
                ("append",),
                ("heartbeat", 1, False, False),
                ("append",),
                ("create", [("lost", 1, 1, 0)], False),
                ("fail",),
            ],
        )
