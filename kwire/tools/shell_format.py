"""The text kafka-metadata-shell prints for each leaf: the ``toString()`` of Kafka's image
classes, written from their formats (Kafka 3.9.0 and 4.3.1, chosen by ``ShellRelease``).

Sources of each format (Kafka's ``metadata`` and ``clients`` modules):

- ``BrokerRegistration.toString`` / ``ControllerRegistration.toString``: listeners sorted by
  name, each ``Endpoint.toString``; supported features sorted by name, each
  ``VersionRange.toString``; ``rack`` an ``Optional``; ``directories`` sorted by
  ``Uuid.compareTo`` (signed 64-bit halves); 4.3.1 adds ``cordonedDirectories`` (``null``
  until the broker reports them).
- ``PartitionRegistration.toString``: ``Arrays.toString`` of each int or Uuid array.
- ``StandardAcl.toString``: a class in 3.9.0 (``StandardAcl(...)``), a record in 4.3.1
  (``StandardAcl[...]``).
- ``ProvenanceNode.print``: ``offset N, epoch E, time <ISO_ZONED_DATE_TIME in UTC>``.
- ``ScramCredentialDataNode.print`` and ``DelegationTokenDataNode.print`` (unredacted, as the
  shell's printer disables redaction).
- ``ClientQuotaImageNode``: a ``Double`` with Java's ``Double.toString``.
"""

from __future__ import annotations

import base64
import enum
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from kwire.controller.authorizer import AclOperation, AclPermissionType, PatternType, ResourceType
from kwire.controller.registrations import (
    BrokerRegistration,
    ControllerRegistration,
    Endpoint,
    PartitionRegistration,
)
from kwire.protocol.messages.metadata_records.access_control_entry_record import (
    AccessControlEntryRecord,
)
from kwire.protocol.messages.metadata_records.delegation_token_record import (
    DelegationTokenRecord,
)
from kwire.protocol.messages.metadata_records.user_scram_credential_record import (
    UserScramCredentialRecord,
)

__all__ = [
    "Provenance",
    "ShellRelease",
    "broker_text",
    "controller_text",
    "java_double",
    "java_uuid",
    "partition_text",
    "provenance_text",
    "scram_text",
    "standard_acl_text",
    "token_text",
    "uuid_sort_key",
]

SECURITY_PROTOCOLS = {0: "PLAINTEXT", 1: "SSL", 2: "SASL_PLAINTEXT", 3: "SASL_SSL"}
SHORT_MAX = 32767


class ShellRelease(enum.Enum):
    """The Kafka release whose kafka-metadata-shell output is reproduced."""

    KAFKA_3_9 = "3.9"
    KAFKA_4_3 = "4.3"


@dataclass(frozen=True, slots=True)
class Provenance:
    """Kafka's MetadataProvenance: the last offset, epoch and log time (ms) in the image."""

    offset: int = -1
    epoch: int = -1
    time_ms: int = -1


@functools.lru_cache(maxsize=1 << 16)
def java_uuid(value: UUID) -> str:
    """Uuid.toString: the 16 bytes in URL-safe base64 without padding (22 characters).
    Cached: a cluster's partitions name the same few log directories over and over."""
    return base64.urlsafe_b64encode(value.bytes).decode("ascii").rstrip("=")


def uuid_sort_key(value: UUID) -> tuple[int, int]:
    """Uuid.compareTo's order: the most then least significant 64 bits, as signed longs."""
    high, low = value.int >> 64, value.int & (2**64 - 1)
    return (high - 2**64 if high >= 2**63 else high, low - 2**64 if low >= 2**63 else low)


def java_list(items: Iterable[object]) -> str:
    """AbstractCollection.toString and Arrays.toString: ``[a, b]``."""
    return "[" + ", ".join(map(str, items)) + "]"


def java_bool(value: bool) -> str:
    return "true" if value else "false"


def java_optional(value: str | None) -> str:
    return "Optional.empty" if value is None else f"Optional[{value}]"


def java_double(value: float) -> str:
    """Double.toString: plain decimals in [1e-3, 1e7), else ``d.dddE±n``; the shortest
    digits that read back as the same double."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        text = repr(value)
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    figures = "".join(map(str, digits))
    scale = len(figures) - 1 + exponent
    mantissa = figures[0] + "." + (figures[1:] or "0")
    return ("-" if sign else "") + f"{mantissa}E{scale}"


def _endpoint(endpoint: Endpoint) -> str:
    protocol = SECURITY_PROTOCOLS.get(endpoint.security_protocol, str(endpoint.security_protocol))
    return (
        f"Endpoint(listenerName='{endpoint.name}', securityProtocol={protocol}, "
        f"host='{endpoint.host}', port={endpoint.port})"
    )


def _version_range(low: int, high: int) -> str:
    if low == high:
        return str(low)
    if high == SHORT_MAX:
        return f"{low}+"
    return f"{low}-{high}"


def _listeners_and_features(
    listeners: Sequence[Endpoint], features: dict[str, tuple[int, int]]
) -> str:
    by_name = {endpoint.name: endpoint for endpoint in listeners}
    listed = ", ".join(_endpoint(by_name[name]) for name in sorted(by_name))
    supported = ", ".join(f"{name}: {_version_range(*features[name])}" for name in sorted(features))
    return f"listeners=[{listed}], supportedFeatures={{{supported}}}"


def broker_text(broker: BrokerRegistration, release: ShellRelease) -> str:
    """BrokerRegistration.toString of the release."""
    directories = sorted(broker.directories, key=uuid_sort_key)
    text = (
        f"BrokerRegistration(id={broker.broker_id}, epoch={broker.epoch}, "
        f"incarnationId={java_uuid(broker.incarnation_id)}, "
        f"{_listeners_and_features(broker.listeners, broker.supported_features)}, "
        f"rack={java_optional(broker.rack)}, fenced={java_bool(broker.fenced)}, "
        f"inControlledShutdown={java_bool(broker.in_controlled_shutdown)}, "
        f"isMigratingZkBroker={java_bool(broker.is_migrating_zk_broker)}, "
        f"directories={java_list(map(java_uuid, directories))}"
    )
    if release is ShellRelease.KAFKA_4_3:
        cordoned = broker.cordoned_directories
        shown = "null" if cordoned is None else java_list(map(java_uuid, cordoned))
        text += f", cordonedDirectories={shown}"
    return text + ")"


def controller_text(controller: ControllerRegistration) -> str:
    """ControllerRegistration.toString (the same in 3.9.0 and 4.3.1)."""
    return (
        f"ControllerRegistration(id={controller.controller_id}, "
        f"incarnationId={java_uuid(controller.incarnation_id)}, "
        f"zkMigrationReady={java_bool(controller.zk_migration_ready)}, "
        f"{_listeners_and_features(controller.listeners, controller.supported_features)})"
    )


def partition_text(partition: PartitionRegistration) -> str:
    """PartitionRegistration.toString (the same in 3.9.0 and 4.3.1)."""
    return (
        f"PartitionRegistration(replicas={java_list(partition.replicas)}, "
        f"directories={java_list(map(java_uuid, partition.directories))}, "
        f"isr={java_list(partition.isr)}, "
        f"removingReplicas={java_list(partition.removing_replicas)}, "
        f"addingReplicas={java_list(partition.adding_replicas)}, "
        f"elr={java_list(partition.elr)}, lastKnownElr={java_list(partition.last_known_elr)}, "
        f"leader={partition.leader}, leaderRecoveryState={partition.leader_recovery_state.name}, "
        f"leaderEpoch={partition.leader_epoch}, partitionEpoch={partition.partition_epoch})"
    )


def _enum_name(kind: type[enum.IntEnum], code: int) -> str:
    try:
        return kind(code).name
    except ValueError:
        return "UNKNOWN"


def standard_acl_text(acl: AccessControlEntryRecord, release: ShellRelease) -> str:
    """StandardAcl.toString: ``StandardAcl(...)`` in 3.9.0, the record form
    ``StandardAcl[...]`` in 4.3.1."""
    body = (
        f"resourceType={_enum_name(ResourceType, acl.resource_type)}, "
        f"resourceName={acl.resource_name}, "
        f"patternType={_enum_name(PatternType, acl.pattern_type)}, "
        f"principal={acl.principal}, host={acl.host}, "
        f"operation={_enum_name(AclOperation, acl.operation)}, "
        f"permissionType={_enum_name(AclPermissionType, acl.permission_type)}"
    )
    if release is ShellRelease.KAFKA_4_3:
        return f"StandardAcl[{body}]"
    return f"StandardAcl({body})"


def scram_text(credential: UserScramCredentialRecord) -> str:
    """ScramCredentialDataNode.print, unredacted: the byte fields in lower-case hex."""
    return (
        f"ScramCredentialData(salt={bytes(credential.salt).hex()}, "
        f"storedKey={bytes(credential.stored_key).hex()}, "
        f"serverKey={bytes(credential.server_key).hex()}, "
        f"iterations={credential.iterations})"
    )


def token_text(token: DelegationTokenRecord) -> str:
    """DelegationTokenDataNode.print, unredacted, with its parentheses as Kafka opens them."""
    return (
        f"DelegationTokenDatatokenId={token.token_id}(owner={token.owner}"
        f"(tokenRequester={token.requester}(renewers={' '.join(token.renewers)}"
        f", issueTimestamp={token.issue_timestamp}, maxTimestamp={token.max_timestamp})"
        f", expiryTimestamp={token.expiration_timestamp}"
    )


def iso_zoned_utc(time_ms: int) -> str:
    """DateTimeFormatter.ISO_ZONED_DATE_TIME of the instant in ZoneId.of("UTC"): seconds
    always, the fraction only when not zero and without trailing zeros, then ``Z[UTC]``."""
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=time_ms)
    except OverflowError:
        return f"{time_ms}ms"  # beyond Python's years 1..9999
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.year < 1000:
        text = f"{moment.year:04d}" + text[text.index("-") :]
    millis = moment.microsecond // 1000
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text + "Z[UTC]"


def provenance_text(provenance: Provenance) -> str:
    """ProvenanceNode.print."""
    return (
        f"offset {provenance.offset}, epoch {provenance.epoch}, "
        f"time {iso_zoned_utc(provenance.time_ms)}"
    )
