"""The Kafka 4.3.1 broker-lifecycle stories (../shared/captures/kafka-4.3), for replay by
tests/story_replay.py: one 4.3.1 controller (node 1) and one 4.3.1 broker (node 2).

- ``STATIC39``: both formatted at 3.9-IV0 (level 21). kwire at 3.9-IV0 is Kafka 3.9.0's
  controller, so the answers and records must be the genuine ones, but for what differs
  by release (the rules below).
- ``LIFECYCLE``: formatted at 4.3-IV0 (level 30) with every 4.x feature finalized.

Release rules (values that differ because the genuine controller is 4.3.1, not 3.9.0):

- CreateTopics answers list every topic config with its default (ControllerApis asks
  the ConfigurationControlManager for LogConfig's). Kafka 4.0 dropped three of them
  (message.format.version and message.downconversion.enable by KIP-724,
  message.timestamp.difference.max.ms by KIP-937) and 4.0 made message.timestamp.after.max.ms
  default to one hour (server-common/.../ServerLogConfigs.java of 4.3.1:
  LOG_MESSAGE_TIMESTAMP_AFTER_MAX_MS_DEFAULT = 3600000; 3.9: Long.MAX_VALUE).
- the bootstrap records: 4.3.1 writes no ZkMigrationStateRecord (ZooKeeper is gone);
  kwire at 3.9-IV0 writes it as 3.9.0 does. story_replay compares after each bootstrap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from story_replay import Story

from kwire.controller import ControllerConfig

CAPTURES_4_3 = Path(__file__).parents[1].parent / "shared" / "captures" / "kafka-4.3"

# Topic configs 3.9.0's LogConfig has and 4.3.1's has not; and defaults that changed.
REMOVED_IN_4_0 = {
    "message.format.version",
    "message.downconversion.enable",
    "message.timestamp.difference.max.ms",
}
DEFAULTS_CHANGED_IN_4_0 = {"message.timestamp.after.max.ms": "3600000"}


def kafka_4_3_topic_defaults(name: str, answer: Any) -> Any:
    """kwire's CreateTopics answer with 4.3.1's LogConfig defaults in place of 3.9.0's."""
    if name != "CreateTopics":
        return answer
    for topic in answer["topics"]:
        configs = [c for c in topic["configs"] or [] if c["name"] not in REMOVED_IN_4_0]
        for config in configs:
            if config["config_source"] == 5 and config["name"] in DEFAULTS_CHANGED_IN_4_0:
                config["value"] = DEFAULTS_CHANGED_IN_4_0[config["name"]]
        topic["configs"] = configs if topic["configs"] is not None else None
    return answer


def controller_config() -> ControllerConfig:
    """controller.properties of both stories: node 1 alone (static voters), num.partitions=1,
    Kafka's defaults otherwise (metadata.log.max.snapshot.interval.ms only shapes snapshots)."""
    return ControllerConfig(quorum_node_ids=(1,), num_partitions=1)


def _story(name: str, level: int) -> Story:
    folder = CAPTURES_4_3 / name
    return Story(
        f"kafka-4.3/{name}",
        folder / f"{name}.jsonl",
        folder / "metadata-log-1" / "__cluster_metadata-0" / "00000000000000000000.log",
        controller_config,
        level,
        kafka_4_3_topic_defaults,
        folder / "metadata-log-1" / "bootstrap.checkpoint",
    )


STATIC39 = _story("broker-lifecycle-static39", 21)
LIFECYCLE = _story("broker-lifecycle", 30)


def needs(story: Story) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not story.frames.exists() or not story.log.exists(),
        reason=f"no Kafka 4.3.1 capture {story.name} at {CAPTURES_4_3}",
    )
