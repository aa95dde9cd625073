"""AddRaftVoter (80), RemoveRaftVoter (81) and UpdateRaftVoter (82) at the edge (KIP-853).

Kafka's ControllerApis authorizes them on the cluster (ALTER for AddRaftVoter and
RemoveRaftVoter, CLUSTER_ACTION for UpdateRaftVoter; CLUSTER_AUTHORIZATION_FAILED
otherwise) and hands them to the raft client, whose answer goes back unchanged:
NOT_LEADER_OR_FOLLOWER from a node that does not lead, as KafkaRaftClient answers. A
broker may forward AddRaftVoter and RemoveRaftVoter in an Envelope (they are forwardable in
Kafka's ApiKeys); the same path answers them with the client's principal.

The core answers at once or by ticket (kwire.raft.reconfig): the connection's task takes a
ticket, runs the core's handler in the driver's turn, and, if the core gave no answer yet,
waits for the `CompleteVoterChange` the driver hands to its `VoterChangeTickets`.
Other requests are served meanwhile (only this connection waits, as Kafka mutes a channel
with a request in flight). The core answers every ticket within
`controller.quorum.request.timeout.ms` or when leadership is lost; a stopping driver
releases waiting tickets with DriverStopped (their connections close with the node). At
most one AddRaftVoter or RemoveRaftVoter is pending at a time, so tickets stay few.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kwire.controller.authorizer import AclOperation, AuthHelper
from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.error_responses import error_response
from kwire.protocol.messages.add_raft_voter import AddRaftVoterRequest
from kwire.protocol.messages.remove_raft_voter import RemoveRaftVoterRequest
from kwire.protocol.messages.update_raft_voter import UpdateRaftVoterRequest
from kwire.raft.state import Action

if TYPE_CHECKING:
    from kwire.server.node import ControllerNode

log = logging.getLogger("kwire.requests")

VoterChangeRequest = AddRaftVoterRequest | RemoveRaftVoterRequest | UpdateRaftVoterRequest
VOTER_CHANGE_NEEDS: dict[type, AclOperation] = {
    AddRaftVoterRequest: AclOperation.ALTER,  # ControllerApis.handleAddRaftVoter
    RemoveRaftVoterRequest: AclOperation.ALTER,  # handleRemoveRaftVoter
    UpdateRaftVoterRequest: AclOperation.CLUSTER_ACTION,  # handleUpdateRaftVoter
}


async def answer_voter_change(
    node: ControllerNode,
    body: VoterChangeRequest,
    version: int,
    principal: str,
    client_host: str,
) -> Message:
    """The answer to one voter-change request, authorized as Kafka's ControllerApis."""
    auth = AuthHelper.of(node.controller, principal, client_host)
    if not auth.cluster(VOTER_CHANGE_NEEDS[type(body)]):
        return error_response(body, version, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    raft = node.raft
    tickets = node.driver.tickets
    if isinstance(body, UpdateRaftVoterRequest):

        def update(now_ms: int) -> Message:
            response, actions = raft.handle_update_raft_voter(
                body, now_ms, listener_name=node.settings.listener_name
            )
            node.carry_out(actions, now_ms)
            return response

        return await node.driver.call(update)
    ticket = tickets.take()

    def change(now_ms: int) -> Message | None:
        actions: list[Action]
        answer: Message | None
        if isinstance(body, AddRaftVoterRequest):
            answer, actions = raft.handle_add_raft_voter(body, ticket, now_ms)
        else:
            answer, actions = raft.handle_remove_raft_voter(body, ticket, now_ms)
        node.carry_out(actions, now_ms)
        return answer

    try:
        answer = await node.driver.call(change)
    except BaseException:
        tickets.drop(ticket)
        raise
    if answer is not None:
        tickets.drop(ticket)
        return answer
    return await tickets.wait(ticket)
