"""kwire's controller core: pure, sans-IO metadata state and request handling.

No sockets, clocks or global randomness: time is passed in as ``now_ms`` and randomness
comes from the ``random.Random`` the caller gives ``QuorumController``.
"""

from kwire.controller.api_error import ApiError
from kwire.controller.controller import (
    HANDLED_REQUESTS,
    ControllerConfig,
    ControllerResult,
    QuorumController,
    RequestContext,
)
from kwire.controller.heartbeats import BrokerControlState
from kwire.controller.image import (
    BrokerRegistration,
    ControllerRegistration,
    MetadataImage,
    PartitionRegistration,
    TopicInfo,
)
from kwire.controller.records import MetadataVersion, RecordAndVersion, record_version

__all__ = [
    "HANDLED_REQUESTS",
    "ApiError",
    "BrokerControlState",
    "BrokerRegistration",
    "ControllerConfig",
    "ControllerRegistration",
    "ControllerResult",
    "MetadataImage",
    "MetadataVersion",
    "PartitionRegistration",
    "QuorumController",
    "RecordAndVersion",
    "RequestContext",
    "TopicInfo",
    "record_version",
]
