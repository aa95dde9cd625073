"""Eligible leader replicas (KIP-966) as Kafka 4.3.1's controller keeps them.

Three layers: the partition change rules, table-driven with the record Kafka's
PartitionChangeBuilder (4.3.1) writes for each case; the controller's operations around
them (ClearElrRecord on min.insync.replicas changes, unclean shutdowns, the disallowed
min ISR changes); and the genuine 4.3-IV0 log of captures/kafka-4.3/broker-lifecycle,
replayed into kwire and driven through its controlled shutdown, whose 106
PartitionChangeRecords kwire must write field by field.
"""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from partition_fixtures import TOPIC, Cluster, cluster, log_dir
from test_controller_genuine import fields_of, read_metadata_log

from kwire.controller import ControllerConfig, QuorumController, RequestContext
from kwire.controller.elr import (
    ELR_FEATURE,
    effective_min_isr,
    elr_enabled,
    java_int_set_order,
)
from kwire.controller.image import LeaderRecoveryState, PartitionRegistration
from kwire.controller.partition_change import Election, build_partition_change
from kwire.metadata_version import metadata_version
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.clear_elr_record import ClearElrRecord
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)

TOPIC_ID = uuid.UUID("15bae575-c7e2-4c28-8a31-9e9e8a0c1d26")


def _mv(level: int) -> Any:
    try:
        return metadata_version(level)
    except ValueError:
        # Levels above 23 arrive with the 4.x metadata.version table; 4.0-IV1 (23) is the
        # first level with ELR in every version of that table.
        return metadata_version(23)


MV_ELR = _mv(23)


def partition(
    isr: tuple[int, ...],
    leader: int,
    elr: tuple[int, ...] = (),
    last_known_elr: tuple[int, ...] = (),
    replicas: tuple[int, ...] = (1, 2, 3, 4),
) -> PartitionRegistration:
    return PartitionRegistration(
        replicas=replicas,
        directories=tuple(log_dir(r) for r in replicas),
        isr=isr,
        leader=leader,
        leader_epoch=100,
        partition_epoch=200,
        elr=elr,
        last_known_elr=last_known_elr,
    )


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    partition: PartitionRegistration
    acceptable: Any  # replica -> bool
    target_isr: list[int]
    expected: dict[str, Any] | None  # the record's fields that are set; None: no record
    election: Election = Election.PREFERRED
    min_isr: int | None = 3
    unclean_shutdown: tuple[int, ...] = ()


# Each expected record is Kafka 4.3.1's PartitionChangeBuilder.build() for the case, with
# useLastKnownLeaderInBalancedRecovery=true, the only setting its controller uses.
CASES = [
    # PartitionChangeBuilderTest.testEligibleLeaderReplicas_IsrShrinkBelowMinISR: the ISR
    # drops to 2 of min ISR 3; the two replicas it loses become eligible leaders.
    Case(
        "isr_shrinks_below_min_isr",
        partition((1, 2, 3, 4), 1),
        lambda r: r != 3,
        [1, 2],
        {"isr": [1, 2], "eligible_leader_replicas": [3, 4]},
    ),
    # ...IsrExpandAboveMinISR: back at min ISR, the ELR empties (LastKnownElr is left to
    # the last-known-leader rule, which only clears it when a leader is elected).
    Case(
        "isr_back_at_min_isr_empties_the_elr",
        partition((1, 2), 1, elr=(3,)),
        lambda r: r != 3,
        [1, 2, 3],
        {"isr": [1, 2, 3], "eligible_leader_replicas": []},
    ),
    # ...IsrAddNewMemberNotInELR: an ISR that grows but stays below min ISR keeps the old
    # members in the ELR, less the new ISR.
    Case(
        "isr_grows_below_min_isr_keeps_the_rest_of_the_elr",
        partition((1,), 1, elr=(3,)),
        lambda r: True,
        [1, 2],
        {"isr": [1, 2]},
    ),
    # ...RemoveUncleanShutdownReplicasFromElr: a replica back from an unclean shutdown
    # leaves the ELR (Kafka's test also expects LastKnownElr [3], which only its
    # useLastKnownLeaderInBalancedRecovery=false mode writes).
    Case(
        "an_unclean_shutdown_replica_leaves_the_elr",
        partition((1,), 1, elr=(2, 3)),
        lambda r: r != 3,
        [1],
        {"eligible_leader_replicas": [2]},
        unclean_shutdown=(3,),
    ),
    # ...ElrCanBeElected(true): with the ISR empty an ELR member leads and becomes the ISR;
    # the old leader joins the ELR.
    Case(
        "an_elr_member_leads_when_the_isr_is_empty",
        partition((1,), 1, elr=(3,)),
        lambda r: r != 1,
        [],
        {"isr": [3], "leader": 3, "eligible_leader_replicas": [1]},
    ),
    # ...IsrCanShrinkToZero(true): nobody may lead; the empty ISR is written, every member
    # is eligible, and the leader that was is remembered.
    Case(
        "the_isr_can_shrink_to_nothing",
        partition((1, 2, 3, 4), 1),
        lambda r: False,
        [],
        {
            "isr": [],
            "leader": -1,
            "eligible_leader_replicas": [1, 2, 3, 4],
            "last_known_elr": [1],
        },
    ),
    # ...ElectLastKnownLeader: no ISR, no ELR, the last known leader is back: an unclean
    # election of it, RECOVERING, LastKnownElr cleared.
    Case(
        "the_last_known_leader_is_elected_when_nothing_else_can_lead",
        partition((), -1, last_known_elr=(1,)),
        lambda r: True,
        [],
        {
            "isr": [1],
            "leader": 1,
            "leader_recovery_state": LeaderRecoveryState.RECOVERING,
            "last_known_elr": [],
        },
    ),
    # ...ElectLastKnownLeaderShouldFail: an ELR member that may not lead blocks the last
    # known leader; nothing changes.
    Case(
        "an_elr_blocks_the_last_known_leader",
        partition((), -1, elr=(3,), last_known_elr=(1,)),
        lambda r: r != 3,
        [],
        None,
    ),
    # ...NotEligibleLastKnownLeader, for each election type: nobody may lead, no change.
    *[
        Case(
            f"no_change_when_the_last_known_leader_may_not_lead_{election.value}",
            partition((), -1, last_known_elr=(1,)),
            lambda r: False,
            [],
            None,
            election=election,
        )
        for election in Election
    ],
    # testUncleanLeaderElection with ELR on: an unclean leader empties the ELR.
    Case(
        "an_unclean_election_clears_the_elr",
        partition((1,), 1, elr=(2,)),
        lambda r: r == 4,
        [],
        {
            "isr": [4],
            "leader": 4,
            "leader_recovery_state": LeaderRecoveryState.RECOVERING,
            "eligible_leader_replicas": [],
        },
        election=Election.UNCLEAN,
    ),
    # ELR off (3.9 and eligible.leader.replicas.version 0): the last ISR member stays and
    # the leader is gone; no ELR field is written.
    Case(
        "with_elr_off_the_last_isr_member_stays",
        partition((1,), 1),
        lambda r: False,
        [],
        {"leader": -1},
        min_isr=None,
    ),
    # ELR off clears a leftover ELR but keeps LastKnownElr (maybeUpdateRecordElr).
    Case(
        "with_elr_off_a_leftover_elr_is_cleared",
        partition((1, 2), 1, elr=(3,), last_known_elr=(4,)),
        lambda r: True,
        [1, 2],
        {"eligible_leader_replicas": []},
        min_isr=None,
    ),
]


def set_fields(record: PartitionChangeRecord) -> dict[str, Any]:
    defaults = PartitionChangeRecord(partition_id=0, topic_id=TOPIC_ID)
    out = {}
    for f in dataclasses.fields(record):
        if f.name in ("unknown_tagged_fields", "partition_id", "topic_id"):
            continue
        value = getattr(record, f.name)
        if value != getattr(defaults, f.name):
            out[f.name] = value
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_partition_change_follows_kafkas_elr_rules(case: Case) -> None:
    record = build_partition_change(
        case.partition,
        TOPIC_ID,
        0,
        is_acceptable_leader=case.acceptable,
        metadata_version=MV_ELR,
        target_isr=case.target_isr,
        election=case.election,
        min_isr=case.min_isr,
        unclean_shutdown=case.unclean_shutdown,
    )
    if case.expected is None:
        assert record is None
        return
    assert record is not None
    expected = {k: v for k, v in case.expected.items() if v is not None}
    assert set_fields(record) == expected


def test_the_elr_lists_replicas_in_java_hash_set_order() -> None:
    # new HashSet<>(elr) then addAll(isr): 16 buckets, low bits of the int decide.
    assert java_int_set_order([17], [1, 2]) == [17, 1, 2]  # 17 and 1 share bucket 1
    assert java_int_set_order([3], [1, 2, 3]) == [1, 2, 3]
    assert java_int_set_order([], [100, 5]) == [100, 5]  # 100 & 15 == 4 < 5


# -- the controller around the rules -----------------------------------------------------


def elr_cluster(*, elr: bool = True, **kwargs: Any) -> Cluster:
    """Brokers 1..4, topic foo (replicas [1, 2, 3], ISR [1, 2, 3]) at 4.0-IV1 with the
    cluster-level min.insync.replicas=1 Kafka 4.3.1 bootstraps, and ELR on or off."""
    c = cluster(level=int(MV_ELR), **kwargs)
    c.replay(
        FeatureLevelRecord(name=ELR_FEATURE, feature_level=1 if elr else 0),
        ConfigRecord(resource_type=4, resource_name="", name="min.insync.replicas", value="1"),
    )
    return c


def alter(resource_type: int, name: str, value: str | None, operation: int = 0) -> Any:
    resource = IncrementalAlterConfigsRequest.AlterConfigsResource(
        resource_type=resource_type,
        resource_name=name,
        configs=[
            IncrementalAlterConfigsRequest.AlterableConfig(
                name="min.insync.replicas", config_operation=operation, value=value
            )
        ],
    )
    return IncrementalAlterConfigsRequest(resources=[resource])


@pytest.mark.parametrize(
    ("name", "resource_type", "resource_name", "value", "operation", "clear"),
    [
        ("topic_config", 2, TOPIC, "2", 0, ClearElrRecord(topic_name=TOPIC)),
        ("cluster_config", 4, "", "2", 0, ClearElrRecord(topic_name="")),
    ],
)
def test_a_min_isr_change_clears_the_elrs_it_governs(
    name: str,
    resource_type: int,
    resource_name: str,
    value: str,
    operation: int,
    clear: ClearElrRecord,
) -> None:
    # ConfigurationControlManager.createClearElrRecordsAsNeeded: after the ConfigRecords.
    for elr in (True, False):
        c = elr_cluster(elr=elr)
        response, records = c.send(alter(resource_type, resource_name, value, operation), 0)
        assert [r.error_code for r in response.responses] == [ErrorCode.NONE]
        assert isinstance(records[0], ConfigRecord)
        assert records[1:] == ([clear] if elr else [])


@pytest.mark.parametrize(
    ("name", "resource_name", "value", "operation", "message"),
    [
        (
            "broker_level_set",
            "1",
            "2",
            0,
            "Broker-level min.insync.replicas cannot be altered while ELR is enabled.",
        ),
        (
            "cluster_level_delete",
            "",
            None,
            1,
            "Cluster-level min.insync.replicas cannot be removed while ELR is enabled.",
        ),
    ],
)
def test_elr_forbids_some_min_isr_changes(
    name: str, resource_name: str, value: str | None, operation: int, message: str
) -> None:
    # ConfigurationControlManager.isDisallowedBrokerMinIsrTransition /
    # isDisallowedClusterMinIsrTransition: INVALID_CONFIG while ELR is on, fine while off.
    on = elr_cluster(elr=True)
    response, records = on.send(alter(4, resource_name, value, operation), 0)
    assert [(r.error_code, r.error_message) for r in response.responses] == [
        (ErrorCode.INVALID_CONFIG, message)
    ]
    assert records == []
    off = elr_cluster(elr=False)
    response, records = off.send(alter(4, resource_name, value, operation), 0)
    assert [r.error_code for r in response.responses] == [ErrorCode.NONE]
    assert [type(r) for r in records] == [ConfigRecord]


def test_the_effective_min_isr_is_the_topic_config_capped_at_the_replication_factor() -> None:
    # ReplicationControlManager.getTopicEffectiveMinIsr over resolveEffectiveTopicConfig.
    c = elr_cluster()
    assert elr_enabled(c.controller.image)
    assert effective_min_isr(c.controller, TOPIC) == 1  # the cluster-level config
    c.replay(
        ConfigRecord(resource_type=2, resource_name=TOPIC, name="min.insync.replicas", value="2")
    )
    assert effective_min_isr(c.controller, TOPIC) == 2  # the topic's own
    c.replay(
        ConfigRecord(resource_type=2, resource_name=TOPIC, name="min.insync.replicas", value="5")
    )
    assert effective_min_isr(c.controller, TOPIC) == 3  # three replicas


def test_clear_elr_record_empties_elr_and_last_known_elr_and_can_be_undone() -> None:
    c = elr_cluster(
        partitions=[{"isr": [1], "eligible_leader_replicas": [2, 3], "last_known_elr": [4]}, {}]
    )
    image = c.controller.image
    before = c.partition(0)
    assert image.partitions_with_broker_in_elr(2) == [(before_topic_id(c), 0)]
    image.undo.recording = True
    c.replay(ClearElrRecord(topic_name=TOPIC))
    after = c.partition(0)
    # ReplicationControlManager.removeTopicElrs merges an ELR-clearing change: epoch + 1.
    assert (after.elr, after.last_known_elr) == ((), ())
    assert after.partition_epoch == before.partition_epoch + 1
    assert c.partition(1).partition_epoch == 0  # no ELR, untouched
    assert image.partitions_with_broker_in_elr(2) == []
    image.undo.revert_to(c.next_offset - 2)  # everything after the record before it
    assert c.partition(0) == before
    assert image.partitions_with_broker_in_elr(2) == [(before_topic_id(c), 0)]


def before_topic_id(c: Cluster) -> uuid.UUID:
    return c.controller.topics_by_name[TOPIC].topic_id


def test_a_broker_back_from_an_unclean_shutdown_leaves_every_isr_and_elr() -> None:
    # ClusterControlManager.registerBroker: PreviousBrokerEpoch (v3+) differs from the
    # stored epoch, so handleBrokerShutdown(unclean): out of the ISR of partition 0 and the
    # ELR of partition 1, and never elected on the way out.
    c = elr_cluster(
        fenced=(2,),
        partitions=[
            {"isr": [1, 2, 3]},
            {"isr": [1], "leader": 1, "eligible_leader_replicas": [2, 3]},
        ],
    )
    c.replay(
        ConfigRecord(resource_type=2, resource_name=TOPIC, name="min.insync.replicas", value="2")
    )
    request = _registration(broker_id=2, previous_broker_epoch=7)
    response, records = c.send(request, 3)
    assert response.error_code == ErrorCode.NONE
    changes = [r for r in records if isinstance(r, PartitionChangeRecord)]
    assert [(r.partition_id, r.isr, r.eligible_leader_replicas) for r in changes] == [
        (0, [1, 3], None),
        (1, None, [3]),
    ]
    assert type(records[-1]).__name__ == "RegisterBrokerRecord"


def test_a_broker_back_from_a_clean_shutdown_only_leaves_its_isrs() -> None:
    c = elr_cluster(
        fenced=(2,),
        partitions=[{"isr": [1, 2, 3]}, {"isr": [1], "eligible_leader_replicas": [2, 3]}],
    )
    request = _registration(broker_id=2, previous_broker_epoch=102)  # broker_epoch(2)
    response, records = c.send(request, 3)
    assert response.error_code == ErrorCode.NONE
    changes = [r for r in records if isinstance(r, PartitionChangeRecord)]
    assert [(r.partition_id, r.isr) for r in changes] == [(0, [1, 3])]


def test_with_elr_off_a_new_incarnation_writes_only_its_registration() -> None:
    c = elr_cluster(elr=False, fenced=(2,), partitions=[{"isr": [1, 2, 3]}])
    response, records = c.send(_registration(broker_id=2, previous_broker_epoch=7), 3)
    assert response.error_code == ErrorCode.NONE
    assert [type(r).__name__ for r in records] == ["RegisterBrokerRecord"]


def _registration(*, broker_id: int, previous_broker_epoch: int) -> Any:
    from kwire.protocol.messages.broker_registration import BrokerRegistrationRequest

    return BrokerRegistrationRequest(
        broker_id=broker_id,
        cluster_id="c",
        incarnation_id=uuid.UUID(int=1000 + broker_id),
        listeners=[BrokerRegistrationRequest.Listener(name="PLAINTEXT", host="h", port=9092)],
        features=[
            BrokerRegistrationRequest.Feature(
                name="metadata.version", min_supported_version=1, max_supported_version=30
            ),
            BrokerRegistrationRequest.Feature(
                name=ELR_FEATURE, min_supported_version=0, max_supported_version=1
            ),
        ],
        log_dirs=[log_dir(broker_id)],
        previous_broker_epoch=previous_broker_epoch,
    )


# -- the genuine 4.3.1 story -------------------------------------------------------------------

STORY = (
    Path(__file__).resolve().parents[2] / "shared" / "captures" / "kafka-4.3" / "broker-lifecycle"
)
STORY_LOG = STORY / "metadata-log-1" / "__cluster_metadata-0" / "00000000000000000000.log"
needs_story = pytest.mark.skipif(not STORY_LOG.exists(), reason=f"no captures at {STORY}")


def _genuine_controller(up_to: int | None = None) -> tuple[QuorumController, list[Any]]:
    logged = read_metadata_log(STORY_LOG)
    ctl = QuorumController(
        node_id=1,
        cluster_id="MkU3OEVBNTcwNTJENDM2Qk",
        config=ControllerConfig(),
        rng=random.Random(0),
    )
    for entry in logged:
        if up_to is not None and entry.offset >= up_to:
            break
        record = entry.record
        if isinstance(record, FeatureLevelRecord) and record.name == "metadata.version":
            record = dataclasses.replace(record, feature_level=int(_mv(record.feature_level)))
        ctl.replay(record, entry.version, entry.offset)
    return ctl, logged


@needs_story
def test_replaying_the_genuine_43_log_gives_the_genuine_elr_state() -> None:
    ctl, logged = _genuine_controller()
    assert elr_enabled(ctl.image)
    # The last PartitionChangeRecord of each partition is its state at the end of the log.
    last: dict[tuple[Any, int], PartitionChangeRecord] = {}
    for entry in logged:
        if isinstance(entry.record, PartitionChangeRecord):
            last[(entry.record.topic_id, entry.record.partition_id)] = entry.record
    assert len(last) == 106
    for (topic_id, partition_id), record in last.items():
        p = ctl.image.topics[topic_id].partitions[partition_id]
        assert (list(p.isr), p.leader, list(p.elr), list(p.last_known_elr)) == (
            record.isr,
            record.leader,
            record.eligible_leader_replicas,
            record.last_known_elr,
        )
        assert ctl.image.partitions_with_broker_in_elr(2).count((topic_id, partition_id)) == 1
    clears = [e for e in logged if isinstance(e.record, ClearElrRecord)]
    assert [(e.offset, e.record.topic_name) for e in clears] == [(130, "__transaction_state")]


def _frames(api_key: int) -> list[tuple[Any, Any]]:
    requests: dict[int, Any] = {}
    pairs = []
    with (STORY / "broker-lifecycle.jsonl").open() as f:
        for line in f:
            frame = json.loads(line)
            if frame["api_key"] != api_key:
                continue
            if frame["dir"] == "request":
                requests[frame["correlation_id"]] = decode_request(bytes.fromhex(frame["hex"]))
            else:
                header, request = requests[frame["correlation_id"]]
                response = decode_response(
                    bytes.fromhex(frame["hex"]), api_key, header.request_api_version
                )
                pairs.append((header, request, response))
    return pairs


@needs_story
def test_the_genuine_controlled_shutdown_writes_the_genuine_records() -> None:
    # The heartbeat that asks for the shutdown (wantShutDown) arrives when the log ends
    # just before the genuine BrokerRegistrationChangeRecord(inControlledShutdown=1).
    _, logged = _genuine_controller()
    start = next(
        e.offset
        for e in logged
        if isinstance(e.record, BrokerRegistrationChangeRecord) and e.record.in_controlled_shutdown
    )
    genuine = [e for e in logged if start <= e.offset]
    genuine = genuine[: 1 + sum(isinstance(e.record, PartitionChangeRecord) for e in genuine)]
    ctl, _ = _genuine_controller(up_to=start)
    header, request, answer = next((h, r, a) for h, r, a in _frames(63) if r.want_shut_down)
    result = ctl.handle(
        request, RequestContext(api_version=header.request_api_version), start, 10**6
    )
    written = [(rv.record, rv.version) for rv in result.records]
    assert len(written) == 107
    for (record, version), entry in zip(written, genuine, strict=True):
        assert (fields_of(record), version) == (fields_of(entry.record), entry.version)
    # The answer: still in controlled shutdown, not yet told to shut down.
    assert fields_of(result.response) == fields_of(answer[1])
