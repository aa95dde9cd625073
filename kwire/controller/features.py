"""UpdateFeatures: finalized feature levels changed by request, as Kafka 4.3.1's controller.

Follows QuorumController.updateFeatures, ConfigurationControlManager.updateFeatures,
FeatureControlManager.updateFeatures and QuorumFeatures of Kafka 4.3.1, at every
metadata.version. The request is all or nothing: the features are checked in the order
of Kafka's HashMap of the request (the last mention of a name wins), and the first
refusal fails the whole request with INVALID_UPDATE_VERSION as the top-level error,
"The update failed for all features since the following feature had an error: <why>",
and no per-feature results. Each feature's checks, in order:

1. the upgrade type is 1 (UPGRADE), 2 (SAFE_DOWNGRADE) or 3 (UNSAFE_DOWNGRADE);
2. the level is not negative;
3. this controller, then every registered broker (by id), then from 3.7-IV0 every other
   registered controller supports the level (a feature one does not list supports only 0),
   and every quorum voter has registered;
4. a lower level needs a downgrade type, a higher one UPGRADE;
5. metadata.version: a level Kafka 4.3.1 knows (7..31), and a downgrade only across
   levels that changed no metadata; kraft.version: an UPGRADE is handed to the raft client
   (`ctl.kraft`, kwire.controller.kraft_version), which refuses it (INVALID_UPDATE_VERSION
   with its own message) unless every voter reported support for the level, else appends
   the upgrade's control batch at once, even if a later feature of the request fails (as
   in Kafka); a downgrade type is refused unless the level stays; any other feature: its
   dependencies (Feature.validateVersion against the levels the request would leave).

An accepted request writes, in that HashMap order, a FeatureLevelRecord (v0) per feature
and a NoOpRecord per kraft.version UPGRADE (after the raft client's control batch, so that
the request has an offset of its own to wait for); enabling eligible.leader.replicas.version first
writes the ELR safety ConfigRecords (a cluster-level min.insync.replicas unless one exists,
then the removal of every broker-level one). All of it is one atomic batch. On success the
top-level error message is null and, for request versions 0 and 1, every feature gets a
result with error 0 and message "NONE" (Kafka's Errors.NONE.message()). ``validate_only``
answers the same and writes nothing. The v0 ``allow_downgrade`` flag is not consulted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kwire.controller.api_error import (
    MAX_RECORDS_PER_USER_OP,
    OperationFailed,
    excessively_large_operation,
)
from kwire.controller.kraft_version import KRaftUpgradeError, RefusalKind
from kwire.controller.operation import Applied, ControllerResult, RequestContext
from kwire.controller.registrations import ConfigResourceType
from kwire.controller.topic_configs import java_hash_map_order
from kwire.feature_versions import (
    ELIGIBLE_LEADER_REPLICAS_VERSION,
    FEATURES,
    KRAFT_VERSION,
    FeatureVersionError,
    feature_by_name,
    validate_version,
)
from kwire.metadata_version import (
    LATEST_PRODUCTION,
    LATEST_TESTING,
    METADATA_VERSION_FEATURE,
    MINIMUM_KRAFT_VERSION,
    MINIMUM_VERSION,
    MetadataVersion,
    metadata_changed_between,
)
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.metadata_records.config_record import ConfigRecord
from kwire.protocol.messages.metadata_records.feature_level_record import FeatureLevelRecord
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.protocol.messages.update_features import UpdateFeaturesRequest, UpdateFeaturesResponse

if TYPE_CHECKING:
    from kwire.controller.controller import QuorumController

UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE = 1, 2, 3
MIN_INSYNC_REPLICAS = "min.insync.replicas"

# What this controller supports: the union of Kafka 3.9.0's and 4.3.1's
# QuorumFeatures.defaultSupportedFeatureMap(false), so that brokers of both releases can
# register: metadata.version 3.0-IV1..3.9-IV0 (3.9.0) and 3.3-IV3..4.3-IV0 (4.3.1), plus
# every production feature of 4.3.1 whose latest production level is above 0.
LOCAL_SUPPORTED_FEATURES: dict[str, tuple[int, int]] = {
    METADATA_VERSION_FEATURE: (int(MINIMUM_KRAFT_VERSION), int(LATEST_PRODUCTION)),
    **{f.name: (f.minimum_production, f.latest_production) for f in FEATURES},
}


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def range_text(low: int, high: int) -> str:
    """VersionRange.toString: ``7-30``, or one level alone."""
    return str(low) if low == high else f"{low}-{high}"


def reason_not_supported(level: int, who: str, supported: tuple[int, int]) -> str | None:
    """QuorumFeatures.reasonNotSupported: why ``who`` cannot take ``level``, or None."""
    low, high = supported
    if low <= level <= high:
        return None
    if high == 0:
        return f"{who} does not support this feature."
    return f"{who} only supports versions {range_text(low, high)}"


def _cluster_reason(ctl: QuorumController, feature: str, level: int) -> str | None:
    """FeatureControlManager.reasonNotSupported: this controller, the brokers, the other
    controllers (from 3.7-IV0), then the voters that have not registered."""
    image = ctl.image
    local = LOCAL_SUPPORTED_FEATURES.get(feature, (0, 0))
    if reason := reason_not_supported(level, f"Local controller {ctl.node_id}", local):
        return reason
    for broker_id in sorted(image.brokers):
        supported = image.brokers[broker_id].supported_features.get(feature, (0, 0))
        if reason := reason_not_supported(level, f"Broker {broker_id}", supported):
            return reason
    if not ctl.metadata_version.supports_controller_registration:
        return None
    found = {ctl.node_id}
    for controller_id in sorted(image.controllers):
        if controller_id == ctl.node_id:
            continue
        supported = image.controllers[controller_id].supported_features.get(feature, (0, 0))
        if reason := reason_not_supported(level, f"Controller {controller_id}", supported):
            return reason
        found.add(controller_id)
    for voter in ctl.config.quorum_node_ids or (ctl.node_id,):
        if voter not in found:
            return f"controller {voter} has not registered, and may not support this feature"
    return None


def _metadata_version_records(current: MetadataVersion, level: int, unsafe: bool) -> Message:
    """FeatureControlManager.updateMetadataVersion; raises _Invalid."""
    if not int(MINIMUM_VERSION) <= level <= int(LATEST_TESTING):
        raise _Invalid(
            f"Invalid metadata.version {level}. Valid versions are from "
            f"{int(MINIMUM_VERSION)} to {int(LATEST_TESTING)}."
        )
    target = MetadataVersion(level)
    if target < current and metadata_changed_between(current, target):
        why = (
            "Unsafe metadata downgrade is not supported in this version."
            if unsafe
            else "Refusing to perform the requested downgrade because it might delete "
            "metadata information."
        )
        raise _Invalid(
            f"Unsupported metadata.version downgrade from {int(current)} to {level}. {why}"
        )
    return FeatureLevelRecord(name=METADATA_VERSION_FEATURE, feature_level=level)


def _feature_records(
    ctl: QuorumController,
    feature: str,
    level: int,
    upgrade_type: int,
    proposed: dict[str, int],
) -> list[Message]:
    """FeatureControlManager.updateFeature: the records one feature's change writes;
    raises _Invalid with Kafka's message."""

    def invalid(why: str) -> _Invalid:
        return _Invalid(f"Invalid update version {level} for feature {feature}. {why}")

    if upgrade_type not in (UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE):
        raise invalid("The controller does not support the given upgrade type.")
    if feature == METADATA_VERSION_FEATURE:
        current = int(ctl.metadata_version)
    elif feature == KRAFT_VERSION.name:
        current = ctl.kraft.kraft_version()
    else:
        current = ctl.image.finalized_features.get(feature, 0)
    if level < 0:
        raise invalid("A feature version cannot be less than 0.")
    if (reason := _cluster_reason(ctl, feature, level)) is not None:
        raise invalid(reason)
    if level < current and upgrade_type == UPGRADE:
        raise invalid(
            "Can't downgrade the version of this feature without setting the upgrade type "
            "to either safe or unsafe downgrade."
        )
    if level > current and upgrade_type != UPGRADE:
        raise invalid("Can't downgrade to a newer version.")
    if feature == METADATA_VERSION_FEATURE:
        return [
            _metadata_version_records(ctl.metadata_version, level, upgrade_type == UNSAFE_DOWNGRADE)
        ]
    if feature == KRAFT_VERSION.name:
        if upgrade_type != UPGRADE:
            if level != current:
                raise invalid("Can't downgrade the version of this feature.")
            return []
        # Kafka writes a NoOpRecord so that the request has an offset to wait for.
        return [NoOpRecord()]
    try:
        definition = feature_by_name(feature)
        validate_version(definition.from_level(level, True), proposed)
    except FeatureVersionError as e:
        raise invalid(str(e)) from None
    return [FeatureLevelRecord(name=feature, feature_level=level)]


def _upgrade_kraft_version(ctl: QuorumController, level: int, validate_only: bool) -> int:
    """FeatureControlManager.updateFeature's kraft.version UPGRADE: the raft client's
    upgradeKRaftVersion; how many offsets it appended. Its InvalidUpdateVersionException
    is answered with its message, an IllegalArgumentException with the feature's prefix;
    a lost leadership (NOT_CONTROLLER) or an IllegalStateException (UNKNOWN_SERVER_ERROR,
    on which Kafka's controller also fails over) fails the request as a whole."""
    try:
        return ctl.kraft.upgrade_kraft_version(level, validate_only)
    except KRaftUpgradeError as e:
        match e.kind:
            case RefusalKind.INVALID:
                raise _Invalid(e.message) from None
            case RefusalKind.INVALID_ARGUMENT:
                raise _Invalid(
                    f"Invalid update version {level} for feature {KRAFT_VERSION.name}. {e.message}"
                ) from None
            case RefusalKind.NOT_LEADER:
                raise OperationFailed(ErrorCode.NOT_CONTROLLER) from None
            case _:
                raise OperationFailed(ErrorCode.UNKNOWN_SERVER_ERROR, e.message) from None


def elr_safety_records(ctl: QuorumController) -> list[Message]:
    """ConfigurationControlManager.maybeGenerateElrSafetyRecords: a cluster-level
    min.insync.replicas (the node's static value, default 1) unless one exists, then the
    removal of every broker-level min.insync.replicas (brokers by id)."""
    records: list[Message] = []
    configs = ctl.image.configs
    broker = int(ConfigResourceType.BROKER)
    if MIN_INSYNC_REPLICAS not in configs.get((ConfigResourceType.BROKER, ""), {}):
        value = ctl.config.static_broker_configs.get(MIN_INSYNC_REPLICAS, "1").strip()
        records.append(
            ConfigRecord(
                resource_type=broker, resource_name="", name=MIN_INSYNC_REPLICAS, value=value
            )
        )
    brokers = sorted(
        int(name)
        for (kind, name), values in configs.items()
        if kind is ConfigResourceType.BROKER and name and MIN_INSYNC_REPLICAS in values
    )
    for broker_id in brokers:
        records.append(
            ConfigRecord(
                resource_type=broker,
                resource_name=str(broker_id),
                name=MIN_INSYNC_REPLICAS,
                value=None,
            )
        )
    return records


def _failed(message: str) -> UpdateFeaturesResponse:
    return UpdateFeaturesResponse(
        error_code=ErrorCode.INVALID_UPDATE_VERSION,
        error_message="The update failed for all features since the following feature had "
        f"an error: {message}",
        results=[],
    )


def update_features(
    ctl: QuorumController,
    request: UpdateFeaturesRequest,
    context: RequestContext,
    next_offset: int,
) -> ControllerResult:
    """Answer an UpdateFeatures request; on success write its records as one atomic batch."""
    updates: dict[str, tuple[int, int]] = {}
    for update in request.feature_updates:
        updates[update.feature] = (update.max_version_level, update.upgrade_type)
    proposed = {
        name: level
        for name, level in ctl.image.finalized_features.items()
        if name not in (METADATA_VERSION_FEATURE, KRAFT_VERSION.name) and level != 0
    }
    proposed[METADATA_VERSION_FEATURE] = int(ctl.metadata_version)
    proposed.update({name: level for name, (level, _) in updates.items()})
    records: list[Message] = []
    for feature in java_hash_map_order(list(updates)):
        level, upgrade_type = updates[feature]
        try:
            records += _feature_records(ctl, feature, level, upgrade_type, proposed)
            if feature == KRAFT_VERSION.name and upgrade_type == UPGRADE:
                next_offset += _upgrade_kraft_version(ctl, level, request.validate_only)
        except _Invalid as e:
            return ControllerResult(records=[], response=_failed(e.message))
        if len(records) > MAX_RECORDS_PER_USER_OP:
            raise excessively_large_operation()
    response = UpdateFeaturesResponse(error_code=ErrorCode.NONE, error_message=None)
    if context.api_version <= 1:
        response.results = [
            UpdateFeaturesResponse.UpdatableFeatureResult(
                feature=update.feature, error_code=ErrorCode.NONE, error_message="NONE"
            )
            for update in request.feature_updates
        ]
    if request.validate_only or not records:
        return ControllerResult(records=[], response=response)
    if updates.get(ELIGIBLE_LEADER_REPLICAS_VERSION.name, (0, 0))[0] > 0:
        records = elr_safety_records(ctl) + records
    return ctl.apply(Applied(), records, next_offset).result(response)
