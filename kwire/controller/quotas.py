"""AlterClientQuotas (49) on the controller (KIP-546), as Kafka 3.9's ControllerApis and
ClientQuotaControlManager answer it. DescribeClientQuotas is not a controller API.

Each entry names an entity (a map of entity type to name; a type repeated in the request
keeps its last name, as Kafka's HashMap does) and operations (a key with a value, or a
removal). Per entity, in this order:
- a key set twice in one entry, or an entity altered twice in one request: INVALID_REQUEST,
  "Ignoring duplicate entity ClientQuotaEntity(entries={...})";
- no entity types: "Invalid empty client quota entity"; a type other than user, client-id
  and ip: "Unhandled client quota entity type: X"; an empty name: "Empty X not supported";
- ip with user or client-id: "Invalid quota entity combination, IP entity shouldnot be
  combined with User or ClientId" (sic); an ip that is not an IP address: "X is not a
  valid IP or resolvable host." (Kafka also accepts a host name its DNS resolves; the
  sans-IO core cannot resolve, so kwire accepts IP literals only);
- a key that is not a quota of the entity (producer_byte_rate, consumer_byte_rate: LONG;
  request_percentage, controller_mutation_rate: DOUBLE; ip: connection_creation_rate:
  INT): "Invalid configuration key K"; a value not above 0: "Quota K must be greater than
  0"; too large for its type, or fractional for an integral one: Kafka's messages.
An entity that fails writes nothing. A ClientQuotaRecord is written per changed key (a
removal only of a key that is set). More than 10,000 records fail the request with
POLICY_VIOLATION. ``validate_only`` answers the same and writes nothing. Results, records
and entity lists follow the iteration order of Kafka's HashMaps (kwire.controller.java_order).
"""

from __future__ import annotations

import ipaddress
import math
from typing import TYPE_CHECKING

from kwire.controller.api_error import MAX_RECORDS_PER_USER_OP, excessively_large_operation
from kwire.controller.java_order import JavaHashMap, string_hash, to_int32
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.alter_client_quotas import (
    AlterClientQuotasRequest,
    AlterClientQuotasResponse,
)
from kwire.protocol.messages.metadata_records.client_quota_record import ClientQuotaRecord

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

USER, CLIENT_ID, IP = "user", "client-id", "ip"
USER_AND_CLIENT_QUOTAS = {
    "producer_byte_rate": "LONG",
    "consumer_byte_rate": "LONG",
    "request_percentage": "DOUBLE",
    "controller_mutation_rate": "DOUBLE",
}
IP_QUOTAS = {"connection_creation_rate": "INT"}
_LIMITS = {
    "SHORT": (2**15 - 1, "a SHORT"),
    "INT": (2**31 - 1, "an INT"),
    "LONG": (2**63 - 1, "a LONG"),
}

Entity = JavaHashMap[str, str | None]  # entity type -> name, in Kafka's HashMap order


def _entity(entry: AlterClientQuotasRequest.EntryData) -> Entity:
    entity: Entity = JavaHashMap(len(entry.entity))
    for e in entry.entity:
        entity.put(e.entity_type, string_hash(e.entity_type), e.entity_name)
    return entity


def _entity_key(entity: Entity) -> frozenset[tuple[str, str | None]]:
    return frozenset((str(k), v) for k, v in entity.items())


def _entity_hash(entity: Entity) -> int:
    # AbstractMap.hashCode: the sum of (key hash ^ value hash) over the entries.
    return to_int32(sum(string_hash(str(k)) ^ string_hash(v) for k, v in entity.items()))


def entity_text(entity: Entity) -> str:
    """ClientQuotaEntity.toString (a HashMap's toString inside)."""
    inner = ", ".join(f"{k}={'null' if v is None else v}" for k, v in entity.items())
    return f"ClientQuotaEntity(entries={{{inner}}})"


def alter_client_quotas(
    ctl: QuorumController,
    request: AlterClientQuotasRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    if not request.entries:
        return ControllerResult(records=[], response=AlterClientQuotasResponse())
    records: list[Message] = []
    # entity key -> (entity, code, message)
    results: JavaHashMap[frozenset[tuple[str, str | None]], tuple[Entity, ErrorCode, str | None]]
    results = JavaHashMap()

    def put(entity: Entity, code: ErrorCode, message: str | None) -> None:
        results.put(_entity_key(entity), _entity_hash(entity), (entity, code, message))

    for entry in request.entries:
        entity = _entity(entry)
        key = _entity_key(entity)
        alterations: JavaHashMap[str, float | None] = JavaHashMap(len(entry.ops))
        for op in entry.ops:
            if op.key in alterations:
                put(
                    entity,
                    ErrorCode.INVALID_REQUEST,
                    f"Duplicate quota key {op.key} not updating quota for this entity "
                    f"{entity_text(entity)}",
                )
            else:
                alterations.put(op.key, string_hash(op.key), None if op.remove else op.value)
        if key in results:
            put(
                entity,
                ErrorCode.INVALID_REQUEST,
                f"Ignoring duplicate entity {entity_text(entity)}",
            )
            continue
        error, new_records = _alter_entity(ctl, entity, alterations)
        if error is not None:
            put(entity, ErrorCode.INVALID_REQUEST, error)
            continue
        if len(records) + len(new_records) > MAX_RECORDS_PER_USER_OP:
            raise excessively_large_operation()
        records += new_records
        put(entity, ErrorCode.NONE, None)

    response = AlterClientQuotasResponse(
        entries=[
            AlterClientQuotasResponse.EntryData(
                error_code=code,
                error_message=message,
                entity=[
                    AlterClientQuotasResponse.EntityData(entity_type=str(t), entity_name=n)
                    for t, n in entity.items()
                ],
            )
            for entity, code, message in (value for _, value in results.items())
        ]
    )
    if request.validate_only:
        records = []
    return ctl.apply(Applied(), records, next_offset).result(response)


def _alter_entity(
    ctl: QuorumController, entity: Entity, alterations: JavaHashMap[str, float | None]
) -> tuple[str | None, list[Message]]:
    """(error, records) for one entity (ClientQuotaControlManager.alterClientQuotaEntity)."""
    if not len(entity):
        return "Invalid empty client quota entity", []
    validated: Entity = JavaHashMap(3)
    for entity_type, name in entity.items():
        if entity_type not in (USER, CLIENT_ID, IP):
            return f"Unhandled client quota entity type: {entity_type}", []
        validated.put(entity_type, string_hash(str(entity_type)), name)
        if name is not None and not name:
            return f"Empty {entity_type} not supported", []
    if IP in validated:
        if USER in validated or CLIENT_ID in validated:
            return (
                "Invalid quota entity combination, IP entity shouldnot be combined with "
                "User or ClientId"
            ), []
        ip = validated.get(IP)
        if ip is not None and not _is_ip(ip):
            return f"{ip} is not a valid IP or resolvable host.", []
        valid_keys = IP_QUOTAS
    elif USER in validated or CLIENT_ID in validated:
        valid_keys = USER_AND_CLIENT_QUOTAS
    else:
        return "Invalid empty client quota entity", []

    image_key = tuple(sorted((str(t), n) for t, n in entity.items()))
    current = ctl.image.client_quotas.get(image_key, {})
    record_entity = [
        ClientQuotaRecord.EntityData(entity_type=str(t), entity_name=n)
        for t, n in validated.items()
    ]
    records: list[Message] = []
    for key, value in alterations.items():
        key = str(key)
        if value is None:
            if key in current:
                records.append(ClientQuotaRecord(entity=list(record_entity), key=key, remove=True))
            continue
        error = _check_value(valid_keys, key, value)
        if error is not None:
            return error, []
        if key not in current or not _same_double(current[key], value):
            records.append(ClientQuotaRecord(entity=list(record_entity), key=key, value=value))
    return None, records


def _check_value(valid_keys: dict[str, str], key: str, value: float) -> str | None:
    kind = valid_keys.get(key)
    if kind is None:
        return f"Invalid configuration key {key}"
    if value <= 0.0:
        return f"Quota {key} must be greater than 0"
    if kind == "DOUBLE":
        return None
    limit, article = _LIMITS[kind]
    if value > float(limit):  # Java compares with the limit widened to a double
        return f"Proposed value for {key} is too large for {article}."
    if abs(math.fmod(value, 1.0)) > 1e-6:
        return f"{key} cannot be a fractional value."
    return None


def _same_double(a: float, b: float) -> bool:
    # Double.equals: the same bits (NaN equals NaN, 0.0 differs from -0.0).
    return math.copysign(1.0, a) == math.copysign(1.0, b) and (a == b or (a != a and b != b))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
