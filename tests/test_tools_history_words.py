"""kwire.controller.record_words on records built here: the cases the multi-broker capture
does not hold (an unclean election, a record without its prior image, hidden values)."""

from __future__ import annotations

import uuid

from kwire.controller.image import MetadataImage
from kwire.controller.record_words import (
    BatchContext,
    batch_context,
    record_sentence,
    record_subjects,
)
from kwire.protocol.messages.metadata_records.broker_registration_change_record import (
    BrokerRegistrationChangeRecord,
)
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.partition_change_record import (
    PartitionChangeRecord,
)
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord
from kwire.protocol.messages.metadata_records.register_broker_record import RegisterBrokerRecord
from kwire.protocol.messages.metadata_records.topic_record import TopicRecord

TOPIC = uuid.UUID(int=7)


def image_with_partition(isr: list[int], leader: int) -> MetadataImage:
    image = MetadataImage()
    records = [
        FeatureLevelRecord(name="metadata.version", feature_level=21),
        TopicRecord(name="t", topic_id=TOPIC),
        PartitionRecord(
            partition_id=0,
            topic_id=TOPIC,
            replicas=[1, 2, 3],
            isr=isr,
            leader=leader,
            leader_epoch=3,
            partition_epoch=5,
            directories=[],
        ),
    ]
    for offset, record in enumerate(records):
        image.replay(record, 0, offset)
    return image


def test_a_leader_from_outside_the_isr_in_recovering_state_is_an_unclean_election():
    # Kafka 3.9's PartitionChangeBuilder marks an unclean election LeaderRecoveryState.RECOVERING.
    image = image_with_partition(isr=[1], leader=1)
    change = PartitionChangeRecord(
        partition_id=0, topic_id=TOPIC, leader=3, isr=[3], leader_recovery_state=1
    )
    context = batch_context([change, BrokerRegistrationChangeRecord(broker_id=1, fenced=1)])
    sentence = record_sentence(change, image, context)
    assert sentence.startswith(
        "partition t-0 leader 1 -> 3 (leader epoch 4), ISR changed from [1] to [3],"
        " leader recovery state RECOVERING: broker 1 was fenced; unclean leader election"
        " (broker 3 was not in the ISR; data may be lost)"
    )


def test_an_isr_shrink_alone_names_the_leader_that_sent_alter_partition():
    image = image_with_partition(isr=[1, 2, 3], leader=1)
    change = PartitionChangeRecord(partition_id=0, topic_id=TOPIC, isr=[1, 2])
    assert record_sentence(change, image, BatchContext()) == (
        "partition t-0 ISR shrank from [1, 2, 3] to [1, 2] (AlterPartition from broker 1)"
        " -- PartitionChangeRecord isr=[1,2]"
    )
    assert record_subjects(change, image).brokers == {3}


def test_without_a_prior_image_the_sentence_says_what_the_record_holds():
    change = PartitionChangeRecord(partition_id=4, topic_id=TOPIC, leader=2)
    # Without names, the topic is its id as Kafka prints a Uuid (URL-safe base64).
    assert record_sentence(change).startswith("partition AAAAAAAAAAAAAAAAAAAABw-4 changed -- ")


def test_sensitive_config_values_are_not_printed():
    record = ConfigRecord(
        resource_type=4, resource_name="", name="ssl.key.password", value="hunter2"
    )
    sentence = record_sentence(record)
    assert "hunter2" not in sentence
    assert sentence.startswith(
        "config ssl.key.password of every broker (default) set to (a sensitive value)"
    )


def test_partition_changes_in_a_new_registrations_batch_follow_an_unclean_shutdown():
    # Kafka's ClusterControlManager.registerBroker calls handleBrokerUncleanShutdown in the
    # registration's own batch: the restarted broker leaves the ISRs it was in.
    image = image_with_partition(isr=[1, 2, 3], leader=1)
    change = PartitionChangeRecord(partition_id=0, topic_id=TOPIC, isr=[1, 2])
    registration = RegisterBrokerRecord(broker_id=3, broker_epoch=40, incarnation_id=uuid.uuid4())
    sentence = record_sentence(change, image, batch_context([registration, change]))
    assert sentence.startswith(
        "partition t-0 ISR shrank from [1, 2, 3] to [1, 2]: broker 3 registered again after an unclean shutdown"
    )


def test_partition_changes_beside_a_directory_change_follow_the_offline_directory():
    image = image_with_partition(isr=[1, 2, 3], leader=2)
    change = PartitionChangeRecord(partition_id=0, topic_id=TOPIC, isr=[1, 3], leader=1)
    dirs = BrokerRegistrationChangeRecord(broker_id=2, log_dirs=[uuid.UUID(int=9)])
    sentence = record_sentence(change, image, batch_context([dirs, change]))
    assert sentence.split(" -- ")[0].endswith(": a log directory of broker 2 went offline")
