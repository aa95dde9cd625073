"""The automatic leader rebalance (kwire.controller.rebalance), as Kafka 3.9's
QuorumController schedules it (maybeScheduleNextBalancePartitionLeaders) and
ReplicationControlManager runs it (maybeBalancePartitionLeaders, PartitionChangeBuilder with
Election.PREFERRED)."""

from __future__ import annotations

from typing import Any

import pytest
from partition_fixtures import TOPIC_ID, Cluster, cluster
from test_controller_integrity import Leader, heartbeat, topic, unfenced_broker

from kwire.controller import ControllerConfig
from kwire.controller.rebalance import LeaderRebalance, imbalanced_partitions
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_partition import AlterPartitionRequest
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)

INTERVAL_MS = 2_000


def activated(c: Cluster, interval_ms: int | None = INTERVAL_MS) -> Cluster:
    """The fixture's controller, active and ticked at time 0, with the rebalance every
    ``interval_ms`` (None: auto.leader.rebalance.enable=false)."""
    c.controller.rebalance = LeaderRebalance(interval_ms)
    c.controller.activate(0, c.next_offset)
    # The server ticks once the controller is active: the run is scheduled then
    # (QuorumController's activation event schedules it).
    assert tick(c, 0) == []
    return c


def tick(c: Cluster, now_ms: int) -> list[PartitionChangeRecord]:
    result = c.controller.tick(now_ms, c.next_offset)
    if result is None:
        return []
    c.next_offset += len(result.records)
    c.controller.commit(c.next_offset - 1)
    return [rv.record for rv in result.records if isinstance(rv.record, PartitionChangeRecord)]


def moved_to(leader: int, partition: int = 0) -> PartitionChangeRecord:
    # PartitionChangeBuilder writes only what changes: the new leader.
    return PartitionChangeRecord(topic_id=TOPIC_ID, partition_id=partition, leader=leader)


# Each case: the cluster, and what the first run (one interval after activation) writes.
CASES: list[Any] = [
    pytest.param({"partitions": [{"leader": 2}]}, [moved_to(1)], id="preferred-in-isr-moves-back"),
    pytest.param({"partitions": [{}]}, [], id="preferred-already-leads"),
    pytest.param(
        {"partitions": [{"leader": 2, "isr": [2, 3]}]}, [], id="preferred-not-in-isr-stays"
    ),
    pytest.param({"partitions": [{"leader": 2}], "fenced": (1,)}, [], id="preferred-fenced-stays"),
    pytest.param(
        {"partitions": [{"leader": 2}], "shutting_down": (1,)},
        [],
        id="preferred-shutting-down-stays",
    ),
    # Election.PREFERRED falls back to any ISR member that can lead when the partition has
    # no leader (PartitionChangeBuilder.electLeader).
    pytest.param(
        {"partitions": [{"leader": -1}], "fenced": (1,)},
        [moved_to(2)],
        id="leaderless-with-fenced-preferred-gets-next-isr-member",
    ),
    pytest.param(
        {"partitions": [{"leader": 3}, {"leader": 2, "replicas": [2, 3, 1]}, {"leader": 1}]},
        [moved_to(1)],
        id="only-partitions-without-their-preferred-leader-move",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_a_rebalance_run_moves_leadership_to_preferred_replicas_that_can_lead(
    spec: dict[str, Any], expected: list[PartitionChangeRecord]
) -> None:
    c = activated(cluster(**spec))
    assert tick(c, INTERVAL_MS - 1) == []
    assert tick(c, INTERVAL_MS) == expected


def test_a_disabled_rebalance_never_moves_leadership() -> None:
    c = activated(cluster(partitions=[{"leader": 2}]), interval_ms=None)
    for now in range(0, 3 * INTERVAL_MS + 1, 100):
        assert tick(c, now) == []
    assert c.controller.next_deadline_ms() > 3 * INTERVAL_MS


def test_a_run_that_moved_nothing_is_rescheduled_one_interval_later() -> None:
    # QuorumController: DEFERRED after a run below the limit; scheduled again after the
    # run's own write while partitions stay imbalanced.
    c = activated(cluster(partitions=[{"leader": 2}], fenced=(1,)))
    assert tick(c, INTERVAL_MS) == []
    assert c.controller.next_deadline_ms() <= 2 * INTERVAL_MS
    assert c.controller.rebalance.due_ms == 2 * INTERVAL_MS


def test_a_run_elects_at_most_a_thousand_leaders_and_the_rest_ten_ms_later() -> None:
    # ReplicationControlManager.MAX_ELECTIONS_PER_IMBALANCE, and the 10 ms delay of an
    # IMMEDIATELY rescheduled run.
    c = activated(cluster(partitions=[{"leader": 2}] * 1001))
    assert len(tick(c, INTERVAL_MS)) == 1000
    assert tick(c, INTERVAL_MS + 9) == []
    (last,) = tick(c, INTERVAL_MS + 10)
    assert last.leader == 1
    assert imbalanced_partitions(c.controller.image) == []
    assert c.controller.rebalance.due_ms > INTERVAL_MS + 10  # nothing left to schedule


def test_kafkas_defaults_are_enabled_every_five_minutes() -> None:
    # ReplicationConfigs: auto.leader.rebalance.enable=true,
    # leader.imbalance.check.interval.seconds=300.
    config = ControllerConfig()
    assert (config.auto_leader_rebalance_enable, config.leader_imbalance_check_interval_ms) == (
        True,
        300_000,
    )


# -- a broker that returns, through the requests a real cluster sends ----------------------

STEP_MS = 100


def live(leader: Leader, until_ms: int, alive: tuple[int, ...]) -> list[Any]:
    """Tick every STEP_MS up to ``until_ms``, the ``alive`` brokers heartbeating each step;
    returns the PartitionChangeRecords the ticks wrote."""
    written = []
    while leader.now_ms + STEP_MS <= until_ms:
        result = leader.controller.tick(leader.now_ms + STEP_MS, leader.next_offset)
        leader.now_ms += STEP_MS
        leader.take(result)
        leader.append()
        if result is not None:
            written += [
                rv.record for rv in result.records if isinstance(rv.record, PartitionChangeRecord)
            ]
        for broker in alive:
            heartbeat(leader, broker, want_fence=False)
            leader.append()
    return written


def leader_of(leader: Leader) -> int:
    return leader.controller.topics_by_name["t"].partitions[0].leader


@pytest.mark.parametrize(
    ("enabled", "rejoins", "moves"),
    [
        pytest.param(True, True, True, id="returned-and-back-in-isr-moves-at-the-next-run"),
        pytest.param(False, True, False, id="disabled-never-moves"),
        pytest.param(True, False, False, id="returned-but-not-in-isr-stays"),
    ],
)
def test_leadership_returns_to_a_returning_preferred_replica_at_the_next_run_and_not_before(
    enabled: bool, rejoins: bool, moves: bool
) -> None:
    leader = Leader.started(
        metadata_max_idle_interval_ms=0,
        auto_leader_rebalance_enable=enabled,
        leader_imbalance_check_interval_ms=INTERVAL_MS * 5,
    )
    for broker in (1, 2, 3):
        unfenced_broker(leader, broker)
    leader.send(CreateTopicsRequest(topics=[topic("t", rf=3)]), version=7)
    leader.append()
    partition = leader.controller.topics_by_name["t"].partitions[0]
    preferred, *others = partition.replicas
    assert partition.leader == preferred

    # The preferred replica falls silent: fenced when its session (9 s) runs out.
    while leader_of(leader) == preferred:
        live(leader, leader.now_ms + STEP_MS, tuple(others))
    fenced_at = leader.now_ms
    partition = leader.controller.topics_by_name["t"].partitions[0]
    assert preferred not in partition.isr and partition.leader == others[0]

    # It returns at once: unfenced by its heartbeat, and (maybe) added back to the ISR by
    # the new leader.
    heartbeat(leader, preferred, want_fence=False)
    leader.append()
    assert not leader.controller.brokers[preferred].fenced
    if rejoins:
        new_isr = [*partition.isr, preferred]
        broker_epoch = leader.controller.brokers[partition.leader].epoch
        answer = leader.send(
            AlterPartitionRequest(
                broker_id=partition.leader,
                broker_epoch=broker_epoch,
                topics=[
                    AlterPartitionRequest.TopicData(
                        topic_id=leader.controller.topics_by_name["t"].topic_id,
                        partitions=[
                            AlterPartitionRequest.PartitionData(
                                partition_index=0,
                                leader_epoch=partition.leader_epoch,
                                partition_epoch=partition.partition_epoch,
                                new_isr_with_epochs=[
                                    AlterPartitionRequest.BrokerState(
                                        broker_id=b,
                                        broker_epoch=leader.controller.brokers[b].epoch,
                                    )
                                    for b in new_isr
                                ],
                            )
                        ],
                    )
                ],
            ),
            version=3,
        )
        leader.append()
        assert answer.topics[0].partitions[0].error_code == ErrorCode.NONE  # type: ignore[attr-defined]

    # The run scheduled after the fencing write comes one interval after it; unfencing
    # and the ISR change move nothing by themselves.
    due = fenced_at + INTERVAL_MS * 5
    assert live(leader, due - STEP_MS, (1, 2, 3)) == []
    assert leader_of(leader) == others[0]
    topic_id = leader.controller.topics_by_name["t"].topic_id
    expected = [PartitionChangeRecord(topic_id=topic_id, partition_id=0, leader=preferred)]
    assert live(leader, due, (1, 2, 3)) == (expected if moves else [])
    assert live(leader, due + 2 * INTERVAL_MS * 5, (1, 2, 3)) == []
    assert leader_of(leader) == (preferred if moves else others[0])


def test_the_run_writes_only_the_leader_change() -> None:
    c = activated(cluster(partitions=[{"leader": 2, "leader_epoch": 4, "partition_epoch": 7}]))
    before = c.partition()
    (record,) = tick(c, INTERVAL_MS)
    assert record == moved_to(1)
    after = c.partition()
    # Replicas, directories and ISR stay; the leader change bumps both epochs
    # (PartitionRegistration.merge).
    assert (after.replicas, after.directories, after.isr) == (
        before.replicas,
        before.directories,
        before.isr,
    )
    assert (after.leader, after.leader_epoch, after.partition_epoch) == (1, 5, 8)
