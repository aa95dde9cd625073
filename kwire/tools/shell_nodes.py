"""The node tree kafka-metadata-shell browses, built over a kwire ``MetadataImage``.

Kafka's RootShellNode, MetadataImageNode and the image's ``*Node`` classes
(``metadata/src/main/java/org/apache/kafka/image/node``), path for path:

==================================  ===============================================
path                                leaf text
==================================  ===============================================
/local/version, /local/commitId     the shell's version (kwire's) and commit id
/image/provenance                   ``offset N, epoch E, time <ISO time>[UTC]``
/image/features/metadataVersion     ``3.9-IV0`` (3.9), ``Optional[3.9-IV0]`` (4.3)
/image/features/zkMigrationState    ``NONE`` ... (3.9 only)
/image/features/finalized_<name>    the finalized level
/image/cluster/brokers/<id>         BrokerRegistration.toString
/image/cluster/controllers/<id>     ControllerRegistration.toString
/image/topics/byName/<name>/...     ``name``, ``id`` and ``<partition>``
/image/topics/byId/<uuid>/...       (PartitionRegistration.toString)
/image/configs/<TYPE>[:<name>]/<k>  the value (``BROKER`` alone: the default resource)
/image/clientQuotas/<entity>/<key>  Double.toString of the value
/image/producerIds/nextProducerId   the next producer id (-1 before any)
/image/acls/<uuid> (3.9)            StandardAcl.toString
/image/acls/byId/<uuid> (4.3)
/image/scram/<mechanism>/<user>     ScramCredentialData(...)
/image/delegationToken/<token id>   DelegationTokenData...
==================================  ===============================================

Rules:
- Nodes are made on demand from the image (a million partitions cost nothing until
  listed); children are listed in any order: every command sorts them, as Kafka's do.
- ``child`` answers None for a name that is not there (Kafka's nodes do the same), never
  raises.
- A client quota entity is named ``clientId(..)_ip(..)_user(..)`` with ``\\``, ``(`` and ``)``
  escaped. Kafka's shell fails with a NullPointerException on a default entity (a null
  name); kwire names the default ``<default>`` instead.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol
from uuid import UUID

from kwire.controller.image import MetadataImage
from kwire.controller.registrations import ConfigResourceType, TopicInfo, ZkMigrationState
from kwire.metadata_version import METADATA_VERSION_FEATURE, MINIMUM_KRAFT_VERSION, MetadataVersion
from kwire.tools.shell_format import (
    Provenance,
    ShellRelease,
    broker_text,
    controller_text,
    java_double,
    java_uuid,
    partition_text,
    provenance_text,
    scram_text,
    standard_acl_text,
    token_text,
)

__all__ = ["Dir", "LazyLeaf", "Leaf", "Node", "Printer", "root_node"]

KRAFT_VERSION_FEATURE = "kraft.version"
SCRAM_MECHANISMS = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
# ConfigResource.Type in enum order (resourceFromName tries them in this order).
CONFIG_TYPES_3_9 = ("CLIENT_METRICS", "BROKER_LOGGER", "BROKER", "TOPIC", "UNKNOWN")
CONFIG_TYPES_4_3 = ("GROUP", *CONFIG_TYPES_3_9)
QUOTA_ENTITY_ORDER = (("client-id", "clientId"), ("ip", "ip"), ("user", "user"))
DEFAULT_ENTITY_NAME = "<default>"


class Printer(Protocol):
    """Kafka's MetadataNodePrinter."""

    def enter_node(self, name: str) -> None: ...

    def leave_node(self) -> None: ...

    def output(self, text: str) -> None: ...


class Node:
    """Kafka's MetadataNode: a directory unless it overrides ``is_directory``."""

    __slots__ = ()
    is_directory = True

    def child_names(self) -> Iterable[str]:
        return ()

    def child(self, name: str) -> Node | None:
        return None

    def print(self, printer: Printer) -> None:
        """Every child by sorted name, each entered and printed (MetadataNode.print)."""
        for name in sorted(self.child_names()):
            child = self.child(name)
            if child is None:
                continue
            printer.enter_node(name)
            child.print(printer)
            printer.leave_node()


class Leaf(Node):
    """MetadataLeafNode: one line of text."""

    __slots__ = ("text",)
    is_directory = False

    def __init__(self, text: str) -> None:
        self.text = text

    def print(self, printer: Printer) -> None:
        printer.output(self.text)


class LazyLeaf(Node):
    """A leaf whose text is made only when printed (``find`` and ``ls`` never print it)."""

    __slots__ = ("_text",)
    is_directory = False

    def __init__(self, text: Callable[[], str]) -> None:
        self._text = text

    def print(self, printer: Printer) -> None:
        printer.output(self._text())


class Dir(Node):
    """A directory whose children are listed by ``names`` and made by ``make``."""

    __slots__ = ("_names", "_make")

    def __init__(
        self, names: Callable[[], Iterable[str]], make: Callable[[str], Node | None]
    ) -> None:
        self._names = names
        self._make = make

    def child_names(self) -> Iterable[str]:
        return self._names()

    def child(self, name: str) -> Node | None:
        return self._make(name)


def fixed(children: dict[str, Callable[[], Node | None]]) -> Dir:
    """A directory of fixed names, each child made when asked for."""
    return Dir(lambda: list(children), lambda name: _call(children.get(name)))


def _call(make: Callable[[], Node | None] | None) -> Node | None:
    return None if make is None else make()


def _int_key(name: str) -> int | None:
    """Integer.valueOf's accepted forms: an optional sign and decimal digits."""
    body = name[1:] if name[:1] in "+-" else name
    if not body.isascii() or not body.isdigit():
        return None
    value = int(name)
    return value if -(2**31) <= value < 2**31 else None


def _uuid_key(name: str) -> UUID | None:
    """Uuid.fromString: 22 characters of URL-safe base64 (16 bytes)."""
    import base64
    import binascii

    if len(name) != 22:
        return None
    try:
        raw = base64.urlsafe_b64decode(name + "==")
    except (binascii.Error, ValueError):
        return None
    return UUID(bytes=raw) if len(raw) == 16 else None


def root_node(image: MetadataImage, provenance: Provenance, release: ShellRelease) -> Node:
    """RootShellNode: ``/local`` and ``/image``."""
    try:
        version = importlib.metadata.version("kwire")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return fixed(
        {
            "local": lambda: fixed(
                {"version": lambda: Leaf(str(version)), "commitId": lambda: Leaf("unknown")}
            ),
            "image": lambda: image_node(image, provenance, release),
        }
    )


def image_node(image: MetadataImage, provenance: Provenance, release: ShellRelease) -> Node:
    """MetadataImageNode."""
    acls = _acls_by_id(image, release)
    return fixed(
        {
            "provenance": lambda: Leaf(provenance_text(provenance)),
            "features": lambda: _features(image, release),
            "cluster": lambda: fixed(
                {
                    "brokers": lambda: _by_int(
                        image.brokers, lambda b: LazyLeaf(lambda: broker_text(b, release))
                    ),
                    "controllers": lambda: _by_int(
                        image.controllers, lambda c: LazyLeaf(lambda: controller_text(c))
                    ),
                }
            ),
            "topics": lambda: fixed(
                {"byName": lambda: _topics_by_name(image), "byId": lambda: _topics_by_id(image)}
            ),
            "configs": lambda: _configs(image, release),
            "clientQuotas": lambda: _client_quotas(image),
            "producerIds": lambda: fixed({"nextProducerId": lambda: Leaf(str(_next_pid(image)))}),
            "acls": (lambda: acls)
            if release is ShellRelease.KAFKA_3_9
            else lambda: fixed({"byId": lambda: acls}),
            "scram": lambda: _scram(image),
            "delegationToken": lambda: Dir(
                lambda: list(image.delegation_tokens),
                lambda name: _leaf_of(image.delegation_tokens.get(name), token_text),
            ),
        }
    )


def _leaf_of(value: object, text: Callable[..., str]) -> Node | None:
    return None if value is None else LazyLeaf(lambda: text(value))


def _by_int(table: Mapping[int, object], make: Callable[..., Node]) -> Dir:
    def child(name: str) -> Node | None:
        key = _int_key(name)
        value = None if key is None else table.get(key)
        return None if value is None else make(value)

    return Dir(lambda: [str(key) for key in table], child)


def _features(image: MetadataImage, release: ShellRelease) -> Node:
    """FeaturesImageNode: metadata.version apart, the others as ``finalized_<name>``."""
    finalized = {
        name: level
        for name, level in image.finalized_features.items()
        if name != METADATA_VERSION_FEATURE
        and not (release is ShellRelease.KAFKA_4_3 and name == KRAFT_VERSION_FEATURE)
    }
    level = image.finalized_features.get(METADATA_VERSION_FEATURE)
    version = _version_name(level)
    if release is ShellRelease.KAFKA_4_3:
        version = "Optional.empty" if level is None else f"Optional[{version}]"
    elif level is None:
        version = _version_name(int(MINIMUM_KRAFT_VERSION))
    children: dict[str, Callable[[], Node | None]] = {"metadataVersion": lambda: Leaf(version)}
    if release is ShellRelease.KAFKA_3_9:
        known = image.zk_migration_state
        state = "NONE" if known is ZkMigrationState.UNINITIALIZED else known.name
        children["zkMigrationState"] = lambda: Leaf(state)
    names = [*children, *(f"finalized_{name}" for name in finalized)]

    def child(name: str) -> Node | None:
        if name in children:
            return children[name]()
        if name.startswith("finalized_"):
            return Leaf(str(finalized.get(name[len("finalized_") :], 0)))
        return None

    return Dir(lambda: names, child)


def _version_name(level: int | None) -> str:
    """MetadataVersion.toString: ``3.9-IV0`` for IBP_3_9_IV0."""
    if level is None:
        return "null"
    try:
        member = MetadataVersion(level)
    except ValueError:
        return f"level {level}"
    major, minor, iv = member.name.removeprefix("IBP_").split("_")
    return f"{major}.{minor}-{iv}"


def _topic(topic: TopicInfo) -> Node:
    """TopicImageNode: ``name``, ``id`` and each partition."""

    def child(name: str) -> Node | None:
        if name == "name":
            return Leaf(topic.name)
        if name == "id":
            return Leaf(java_uuid(topic.topic_id))
        key = _int_key(name)
        partition = None if key is None else topic.partitions.get(key)
        return None if partition is None else LazyLeaf(lambda: partition_text(partition))

    return Dir(lambda: ["name", "id", *map(str, topic.partitions)], child)


def _topics_by_name(image: MetadataImage) -> Node:
    def child(name: str) -> Node | None:
        topic = image.topic_by_name(name)
        return None if topic is None else _topic(topic)

    return Dir(lambda: list(image.topic_ids_by_name), child)


def _topics_by_id(image: MetadataImage) -> Node:
    def child(name: str) -> Node | None:
        key = _uuid_key(name)
        topic = None if key is None else image.topics.get(key)
        return None if topic is None else _topic(topic)

    return Dir(lambda: [java_uuid(topic_id) for topic_id in image.topics], child)


def _config_type_name(kind: ConfigResourceType, release: ShellRelease) -> str:
    types = CONFIG_TYPES_4_3 if release is ShellRelease.KAFKA_4_3 else CONFIG_TYPES_3_9
    return kind.name if kind.name in types else "UNKNOWN"


def _configs(image: MetadataImage, release: ShellRelease) -> Node:
    """ConfigurationsImageNode: ``TYPE:name``, or ``TYPE`` for a default resource."""
    types = CONFIG_TYPES_4_3 if release is ShellRelease.KAFKA_4_3 else CONFIG_TYPES_3_9

    def label(kind: ConfigResourceType, name: str) -> str:
        shown = _config_type_name(kind, release)
        return shown if not name else f"{shown}:{name}"

    def child(label_text: str) -> Node | None:
        for type_name in types:  # resourceFromName: the first type the name starts with
            if label_text.startswith(type_name):
                rest = label_text[len(type_name) :]
                if rest and not rest.startswith(":"):
                    return None
                return _config_resource(image, type_name, rest[1:])
        return None

    return Dir(lambda: [label(kind, name) for kind, name in image.configs], child)


def _config_resource(image: MetadataImage, type_name: str, name: str) -> Node | None:
    if type_name == "UNKNOWN":
        return None
    entries = image.configs.get((ConfigResourceType[type_name], name))
    if entries is None:
        return None
    return Dir(lambda: list(entries), lambda key: _leaf_of(entries.get(key), str))


def _quota_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _quota_entity_name(entity: tuple[tuple[str, str | None], ...]) -> str:
    """ClientQuotasImageNode.clientQuotaEntityToString."""
    names = dict(entity)
    parts = []
    for kind, label in QUOTA_ENTITY_ORDER:
        if kind in names:
            value = names[kind]
            shown = DEFAULT_ENTITY_NAME if value is None else _quota_escape(value)
            parts.append(f"{label}({shown})")
    return "_".join(parts)


def _client_quotas(image: MetadataImage) -> Node:
    """ClientQuotasImageNode: entities by their names (the name table made once per node,
    so listing every entity's quotas stays linear)."""
    by_name: dict[str, dict[str, float]] = {}

    def table() -> dict[str, dict[str, float]]:
        if not by_name:
            by_name.update({_quota_entity_name(e): q for e, q in image.client_quotas.items()})
        return by_name

    def child(name: str) -> Node | None:
        quotas = table().get(name)
        return None if quotas is None else _quota_values(quotas)

    return Dir(lambda: list(table()), child)


def _quota_values(quotas: dict[str, float]) -> Node:
    return Dir(lambda: list(quotas), lambda key: _leaf_of(quotas.get(key), java_double))


def _next_pid(image: MetadataImage) -> int:
    """ProducerIdsImage.nextProducerId: -1 (its EMPTY) until a ProducerIdsRecord."""
    if image.last_producer_ids_broker is None and image.next_producer_id == 0:
        return -1
    return image.next_producer_id


def _acls_by_id(image: MetadataImage, release: ShellRelease) -> Node:
    def child(name: str) -> Node | None:
        key = _uuid_key(name)
        acl = None if key is None else image.acls.get(key)
        return None if acl is None else LazyLeaf(lambda: standard_acl_text(acl, release))

    return Dir(lambda: [java_uuid(acl_id) for acl_id in image.acls], child)


def _scram(image: MetadataImage) -> Node:
    """ScramImageNode: both mechanisms always, each with its users."""

    def mechanism(name: str) -> Node | None:
        code = SCRAM_MECHANISMS.get(name)
        if code is None:
            return None
        users = {
            user: record for (user, kind), record in image.scram_credentials.items() if kind == code
        }
        return Dir(lambda: list(users), lambda user: _leaf_of(users.get(user), scram_text))

    return Dir(lambda: list(SCRAM_MECHANISMS), mechanism)
