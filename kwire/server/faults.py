"""Controller faults: an unexpected error while the controller handles a request or runs
its periodic work (Kafka 3.9's EventHandlerExceptionInfo, QuorumController
.handleEventException and renounce, and SharedServer's non-fatal "quorum controller"
fault handler).

Rules
-----
- An exception raised by a controller step is an *answer* or a *fault*
  (`classify`). kwire's API errors are answers: `OperationFailed` (the operation failed
  and wrote nothing) and `AppendFailed` (the log refused the write, or it was reverted
  before it committed) carry the error code the client gets, as Kafka passes an
  ApiException through. Anything else (a bug: KeyError, TypeError, RuntimeError, ...) is
  a fault, which, as Kafka's catch-all case, causes a failover and is answered
  UNKNOWN_SERVER_ERROR, with no message (ApiError.fromThrowable hides it).
- A fault is logged at ERROR with its traceback, in Kafka's words (LoggingFaultHandler and
  EventHandlerExceptionInfo.failureMessage)::

      Encountered quorum controller fault: createTopics: event failed with RuntimeError
      (treated as UnknownServerException) at epoch 3 in 152 microseconds. Renouncing
      leadership and reverting to the last committed offset 41.

  and counted in `metadata_errors` (Kafka's MetadataErrorCount). An answer that reaches
  `ControllerFaults.handle` (an OperationFailed of the periodic work) is logged at INFO
  (``NAME: event failed with OperationFailed in N microseconds. Exception message: ...``)
  and not counted; a request's AppendFailed keeps the request path's own line.
- A fault on the active controller renounces (QuorumController.renounce): the raft leader
  resigns its epoch (`RaftCore.renounce`, EndQuorumEpoch naming its successors), which the
  node's replay turns into the revert of everything applied above the committed offset
  and NOT_CONTROLLER for every write waiting to commit; another voter takes over, and a
  sole voter elects itself again after its election timeout. The node keeps serving.
- Event names are Kafka's QuorumController event names (`event_name`); kwire runs Kafka's
  maybeFenceReplicas, maybeBalancePartitionLeaders, sweepExpiredDelegationTokens and
  writeNoOpRecord as one step, named `PERIODIC_WORK`.

Differences from Kafka: the epoch in the message is the raft epoch (Kafka's standby says
the last committed batch's epoch; kwire's controller steps run only on the active
controller, so the two agree). Fatal faults (a log I/O error) stay with the node's
`fault_handler`, which halts the process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kwire.controller.api_error import OperationFailed
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.index import APIS
from kwire.server.write_path import AppendFailed

if TYPE_CHECKING:
    from kwire.server.node import ControllerNode

log = logging.getLogger("kwire.faults")

FAULT_HANDLER_NAME = "quorum controller"  # SharedServer.nonFatalQuorumControllerFaultHandler
TREATED_AS = "UnknownServerException"
PERIODIC_WORK = "periodicWork"
# Kafka's event names where they are not the API's name in lowerCamelCase.
_EVENT_NAMES = {
    "AlterConfigs": "legacyAlterConfigs",
    "BrokerHeartbeat": "processBrokerHeartbeat",
    "BrokerRegistration": "registerBroker",
    "ControllerRegistration": "registerController",
}


def event_name(api_key: int) -> str:
    """QuorumController's name for the event that handles API `api_key` (createTopics,
    processBrokerHeartbeat, ...)."""
    api = APIS.get(api_key)
    if api is None:
        return f"api{api_key}"
    return _EVENT_NAMES.get(api.name) or api.name[0].lower() + api.name[1:]


@dataclass(frozen=True, slots=True)
class ExceptionInfo:
    """Kafka's EventHandlerExceptionInfo: whether `exception` is a fault (counted as a
    metadata error), whether it causes a failover, and the error code the client gets."""

    exception: BaseException
    is_fault: bool
    causes_failover: bool
    error: ErrorCode

    def failure_message(
        self, *, epoch: int, delta_us: int | None, active: bool, last_committed_offset: int
    ) -> str:
        """EventHandlerExceptionInfo.failureMessage, with the Python class's name."""
        started = delta_us is not None
        text = "event failed with " if started else "event unable to start processing because of "
        text += type(self.exception).__name__
        if self.is_fault:
            text += f" (treated as {TREATED_AS})"
        if self.causes_failover:
            text += f" at epoch {epoch}"
        if started:
            text += f" in {delta_us} microseconds"
        if self.causes_failover:
            if active:
                text += (
                    ". Renouncing leadership and reverting to the last committed offset "
                    f"{last_committed_offset}"
                )
            else:
                text += ". The controller is already in standby mode"
        text += "."
        if not self.is_fault:
            message = exception_message(self.exception)
            if message:
                text += f" Exception message: {message}"
        return text


def exception_message(exception: BaseException) -> str | None:
    """The text of an exception as Kafka's getMessage gives it (None when empty)."""
    if isinstance(exception, OperationFailed):
        return exception.message
    return str(exception) or None


def classify(exception: BaseException) -> ExceptionInfo:
    """EventHandlerExceptionInfo.fromInternal for kwire's exceptions (see the rules)."""
    if isinstance(exception, OperationFailed | AppendFailed):
        return ExceptionInfo(exception, False, False, exception.code)
    return ExceptionInfo(exception, True, True, ErrorCode.UNKNOWN_SERVER_ERROR)


class ControllerFaults:
    """The node's handling of controller faults, and its MetadataErrorCount."""

    def __init__(self, node: ControllerNode) -> None:
        self.node = node
        # Faults this node survived since it started (Kafka's MetadataErrorCount).
        self.metadata_errors = 0
        # What the node's fatal fault handler last raised (a test's handler; in production
        # it halts): never survived here.
        self.fatal: BaseException | None = None

    def handle(
        self, name: str, exception: BaseException, started: float | None, now_ms: int
    ) -> ErrorCode:
        """QuorumController.handleEventException for event `name`, begun at `started`
        (`time.perf_counter()` seconds; None if it never began): log, count, renounce
        when the fault causes a failover on the active controller. Returns the error code
        the request is answered with. Runs in the step that failed, so nothing else enters
        the controller between the fault and the revert. An exception the node's fatal
        fault handler raised is raised again: a fatal fault is never survived."""
        if exception is self.fatal:
            raise exception
        node = self.node
        info = classify(exception)
        delta_us = None if started is None else int((time.perf_counter() - started) * 1e6)
        active = node.active
        message = info.failure_message(
            epoch=node.raft.epoch,
            delta_us=delta_us,
            active=active,
            last_committed_offset=node.committed_offset - 1,
        )
        if info.is_fault:
            log.error(
                "Encountered %s fault: %s: %s",
                FAULT_HANDLER_NAME,
                name,
                message,
                exc_info=exception,
            )
            self.metadata_errors += 1
        else:
            log.info("%s: %s", name, message)
        if info.causes_failover and active:
            self.renounce(now_ms)
        return info.error

    def renounce(self, now_ms: int) -> None:
        """QuorumController.renounce: the raft leader resigns this epoch; the replay's
        state change takes the controller back to the committed offset and fails the
        waiting writes NOT_CONTROLLER (kwire.server.replay). A failure here is fatal, as
        in Kafka: the image could no longer be trusted."""
        node = self.node
        try:
            node.carry_out(node.raft.renounce(node.raft.epoch, now_ms), now_ms)
            if node.active:
                raise RuntimeError("the raft core did not resign its epoch")
        except Exception as exc:
            node.fault_handler("exception while renouncing leadership", exc)
