"""A metadata image as facts an operator reads, and the difference between two images.

``image_facts(image)`` flattens an image into ``{key: {field: value}}``: one entry per
feature, broker, controller, topic, partition, config resource, client quota entity,
SCRAM user, delegation token and ACL, plus the producer id block. Keys read as the
thing they name (``broker 3``, ``partition t3-0``, ``config topic t3``). Values are
JSON's (ints, strings, lists, booleans), so ``--json`` prints the facts as they are and two
images compare as two dicts, whatever order their maps were built in (the order of
Kafka's published image, kept for snapshots, is not a fact about the cluster).

``diff_lines(a, b)`` lists what changed, one line per key: ``+`` added, ``-`` removed,
``~`` changed (each changed field as ``field old -> new``). SCRAM credentials show their
mechanism and iterations, never salts or keys; sensitive config values are hidden.
"""

from __future__ import annotations

from typing import Any

from kwire.controller.image import MetadataImage
from kwire.controller.record_words import SCRAM_MECHANISMS, sensitive_config, uuid_text
from kwire.controller.registrations import NO_LEADER, ConfigResourceType

__all__ = ["diff_lines", "fact_lines", "image_facts"]

Facts = dict[str, dict[str, Any]]

_RESOURCE_WORDS = {
    ConfigResourceType.TOPIC: "topic",
    ConfigResourceType.BROKER: "broker",
    ConfigResourceType.BROKER_LOGGER: "broker-logger",
    ConfigResourceType.CLIENT_METRICS: "client-metrics",
    ConfigResourceType.GROUP: "group",
}


def image_facts(image: MetadataImage) -> Facts:
    """The facts of ``image`` (see the module docstring), keys in a stable order."""
    facts: Facts = {}
    for name, level in sorted(image.finalized_features.items()):
        facts[f"feature {name}"] = {"level": level}
    for broker_id in sorted(image.brokers):
        b = image.brokers[broker_id]
        facts[f"broker {broker_id}"] = {
            "epoch": b.epoch,
            "incarnation": uuid_text(b.incarnation_id),
            "fenced": b.fenced,
            "inControlledShutdown": b.in_controlled_shutdown,
            "rack": b.rack,
            "listeners": [f"{e.name}://{e.host}:{e.port}" for e in b.listeners],
            "directories": [uuid_text(d) for d in b.directories],
        }
    for controller_id in sorted(image.controllers):
        c = image.controllers[controller_id]
        facts[f"controller {controller_id}"] = {
            "incarnation": uuid_text(c.incarnation_id),
            "listeners": [f"{e.name}://{e.host}:{e.port}" for e in c.listeners],
        }
    for topic in sorted(image.topics.values(), key=lambda t: t.name):
        facts[f"topic {topic.name}"] = {
            "topicId": uuid_text(topic.topic_id),
            "partitions": len(topic.partitions),
        }
        for partition_id in sorted(topic.partitions):
            p = topic.partitions[partition_id]
            entry: dict[str, Any] = {
                "leader": None if p.leader == NO_LEADER else p.leader,
                "leaderEpoch": p.leader_epoch,
                "partitionEpoch": p.partition_epoch,
                "replicas": list(p.replicas),
                "isr": list(p.isr),
            }
            for name, value in (
                ("addingReplicas", p.adding_replicas),
                ("removingReplicas", p.removing_replicas),
                ("elr", p.elr),
                ("lastKnownElr", p.last_known_elr),
            ):
                if value:
                    entry[name] = list(value)
            if p.leader_recovery_state:
                entry["leaderRecoveryState"] = p.leader_recovery_state.name
            facts[f"partition {topic.name}-{partition_id}"] = entry
    for (kind, name), values in sorted(
        image.configs.items(), key=lambda kv: (int(kv[0][0]), kv[0][1])
    ):
        if values:
            words = _RESOURCE_WORDS.get(kind, str(int(kind)))
            label = name if name else "<default>"
            facts[f"config {words} {label}"] = {
                k: ("(sensitive)" if sensitive_config(k) else v) for k, v in sorted(values.items())
            }
    for entity, quotas in sorted(image.client_quotas.items(), key=lambda kv: repr(kv[0])):
        label = ",".join(f"{t}={n if n is not None else '<default>'}" for t, n in entity)
        facts[f"client-quota {label}"] = dict(sorted(quotas.items()))
    if image.last_producer_ids_broker is not None:
        facts["producer-ids"] = {"nextProducerId": image.next_producer_id}
    for (user, mechanism), record in sorted(image.scram_credentials.items()):
        label = SCRAM_MECHANISMS.get(mechanism, str(mechanism))
        facts[f"scram {user} {label}"] = {"iterations": record.iterations}
    for token_id, token in sorted(image.delegation_tokens.items()):
        facts[f"delegation-token {token_id}"] = {
            "owner": token.owner,
            "expirationTimestamp": token.expiration_timestamp,
        }
    for acl_id, acl in sorted(image.acls.items(), key=lambda kv: str(kv[0])):
        facts[f"acl {uuid_text(acl_id)}"] = {
            "principal": acl.principal,
            "host": acl.host,
            "resourceType": acl.resource_type,
            "resourceName": acl.resource_name,
            "patternType": acl.pattern_type,
            "operation": acl.operation,
            "permissionType": acl.permission_type,
        }
    return facts


def fact_lines(facts: Facts) -> list[str]:
    """One line per key: ``key: field=value field=value``."""
    return [f"{key}: {_fields(value)}" for key, value in facts.items()]


def diff_lines(before: Facts, after: Facts) -> list[str]:
    """What changed from ``before`` to ``after`` (see the module docstring), keys in the
    order ``after`` holds them, then the removed ones."""
    lines: list[str] = []
    for key, value in after.items():
        old = before.get(key)
        if old is None:
            lines.append(f"+ {key}: {_fields(value)}")
        elif old != value:
            changes = [
                f"{field} {_text(old.get(field))} -> {_text(value.get(field))}"
                for field in [*value, *(f for f in old if f not in value)]
                if old.get(field) != value.get(field)
            ]
            lines.append(f"~ {key}: {', '.join(changes)}")
    lines += [f"- {key}: {_fields(value)}" for key, value in before.items() if key not in after]
    return lines


def _fields(value: dict[str, Any]) -> str:
    return " ".join(f"{k}={_text(v)}" for k, v in value.items())


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)
