"""Every controller registers itself with the active one (KIP-919; Kafka 3.9's
ControllerRegistrationManager): its controller listener and supported features, under
this process's incarnation id, as a RegisterControllerRecord that UpdateFeatures consults
("controller N has not registered") and DescribeCluster's controller endpoints list.

- The active controller registers itself without the network hop, at activation
  (`ControllerReplay.register_self`, which writes `registration_request`'s records).
- A standby (or a non-voting controller) sends ControllerRegistration to the raft leader
  when the image it replayed holds no registration of this incarnation and its
  metadata.version supports one (3.7-IV0 and later), one request at a time, from its own
  task on its own connection (`run`): the leader answers only once the record commits,
  which needs the standbys' Fetches, so it must not wait in the raft channel in front of
  them. A failure or an error answer is retried after Kafka's backoff (100 ms doubling to
  120 s, +/- 2 %); after a NONE answer it waits for the record to reach its image, and
  asks again if it has not after `CONFIRM_WAIT_MS`.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

import trio

from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.controller_registration import (
    ControllerRegistrationRequest,
    ControllerRegistrationResponse,
)
from kwire.raft.state import Voter
from kwire.raft.voter_set import VoterEndpoint
from kwire.server.client_security import ClientAuthenticationError, connect
from kwire.server.node_settings import wall_clock_ms

if TYPE_CHECKING:
    from kwire.server.node import ControllerNode

log = logging.getLogger("kwire.node")

# Kafka's SecurityProtocol ids, as RegisterControllerRecord's listeners carry them.
SECURITY_PROTOCOL_IDS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}
BACKOFF_INITIAL_MS = 100  # ControllerRegistrationManager's resendExponentialBackoff
BACKOFF_MAX_MS = 120_000
BACKOFF_JITTER = 0.02
CONFIRM_WAIT_MS = 5_000  # after NONE, how long the record may take to reach this image
CHECK_S = 0.05  # how often the task looks whether a registration is due


def registration_request(
    node: ControllerNode, supported: tuple[tuple[str, int, int], ...]
) -> ControllerRegistrationRequest | None:
    """This controller's registration: its controller listener as advertised (ListenerInfo,
    its port as bound), else its entry in the current voter set; None (logged) when it has
    no endpoint on its controller listener."""
    settings = node.settings
    name = settings.listener_name.upper()
    # (A voter added while running is in no start-up list: its own entry in the core.)
    voter: Voter | VoterEndpoint = (
        next((e for e in settings.local_endpoints if e.name == name), None) or node.raft.own_voter()
    )
    if voter.port == 0:  # own_voter(): no listener of that name
        log.error("Node %d: no endpoint on %s to register", settings.node_id, name)
        return None
    return ControllerRegistrationRequest(
        controller_id=settings.node_id,
        incarnation_id=node.incarnation_id,
        zk_migration_ready=False,
        listeners=[
            ControllerRegistrationRequest.Listener(
                name=settings.listener_name,
                host=voter.host,
                port=voter.port,
                security_protocol=SECURITY_PROTOCOL_IDS[settings.client_security.protocol],
            )
        ],
        features=[
            ControllerRegistrationRequest.Feature(
                name=feature, min_supported_version=low, max_supported_version=high
            )
            for feature, low, high in supported
        ],
    )


class ControllerRegistrationSender:
    """A standby's side of the registration (the module docstring): `run` is one of the
    node's tasks."""

    def __init__(self, node: ControllerNode, supported: tuple[tuple[str, int, int], ...]) -> None:
        self.node = node
        self.supported = supported
        self.failures = 0
        self.next_attempt_ms = 0
        self.sent = 0  # requests sent (for tests and logs)

    def registered(self) -> bool:
        """The image holds this process's registration."""
        node = self.node
        current = node.controller.image.controllers.get(node.settings.node_id)
        return current is not None and current.incarnation_id == node.incarnation_id

    def due(self, now_ms: int) -> tuple[Voter, ControllerRegistrationRequest] | None:
        """Where and what to send now, or None: not a standby with a known leader, a
        metadata.version without registrations, already registered, or backing off."""
        node = self.node
        raft = node.raft
        if (
            node.active
            or now_ms < self.next_attempt_ms
            or raft.leader_id < 0
            or raft.leader_id == node.settings.node_id
            or not node.controller.metadata_version.is_controller_registration_supported
            or self.registered()
        ):
            return None
        leader = raft.leader_voter()
        request = registration_request(node, self.supported)
        if leader is None or request is None:
            self._back_off(now_ms)
            return None
        return leader, request

    async def run(self) -> None:
        """Register whenever due, until cancelled."""
        timeout_s = self.node.settings.raft.request_timeout_ms / 1000
        while True:
            await trio.sleep(CHECK_S)
            due = self.due(wall_clock_ms())
            if due is None:
                continue
            leader, request = due
            node_id = self.node.settings.node_id
            self.sent += 1
            answer: ControllerRegistrationResponse | None = None
            with trio.move_on_after(timeout_s):
                try:
                    client, _ = await connect(
                        leader.host,
                        leader.port,
                        self.node.settings.client_security,
                        f"controller-registration-{leader.node_id}",
                    )
                    try:
                        answer = await client.request(request, 0)  # type: ignore[assignment]
                    finally:
                        await client.aclose()
                except ClientAuthenticationError as error:
                    log.warning("Node %d: controller registration: %s", node_id, error)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ValueError):
                    answer = None
            now_ms = wall_clock_ms()
            if isinstance(answer, ControllerRegistrationResponse):
                self.on_answer(answer, now_ms)
            else:
                self._back_off(now_ms)

    def on_answer(self, response: ControllerRegistrationResponse, now_ms: int) -> None:
        if response.error_code == ErrorCode.NONE:
            log.info("Node %d: controller registration succeeded", self.node.settings.node_id)
            self.failures = 0
            self.next_attempt_ms = now_ms + CONFIRM_WAIT_MS
            return
        log.info(
            "Node %d: controller registration refused: %s%s",
            self.node.settings.node_id,
            ErrorCode.of(response.error_code).name,
            f" ({response.error_message})" if response.error_message else "",
        )
        self._back_off(now_ms)

    def _back_off(self, now_ms: int) -> None:
        delay = min(BACKOFF_INITIAL_MS * 2**self.failures, BACKOFF_MAX_MS)
        self.failures += 1
        jitter = 1 + random.uniform(-BACKOFF_JITTER, BACKOFF_JITTER)  # noqa: S311 (timing only)
        self.next_attempt_ms = now_ms + int(delay * jitter)
