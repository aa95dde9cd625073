"""Outbound connections to the other voters (kwire.server.peers): what each failure is
reported as, and what goes on the wire, against scripted peers on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import trio
from server_harness import HOST, free_port

from kwire.protocol._codec import Message
from kwire.protocol.framing import FrameBuffer, decode_request, encode_response, size_prefixed
from kwire.protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kwire.protocol.messages.begin_quorum_epoch import BeginQuorumEpochRequest
from kwire.protocol.messages.headers import RequestHeader
from kwire.protocol.messages.index import APIS
from kwire.protocol.messages.vote import VoteRequest, VoteResponse
from kwire.raft.state import SendFailure, Voter
from kwire.raft.voter_set import VoterEndpoint
from kwire.server import peer_channel
from kwire.server.peers import PeerChannel, PeerEvent, Peers, ResponseReceived, SendFailed

TIMEOUT_S = 10.0
# Kafka 3.9's controller: Vote up to v1 (no PreVote), the rest as kwire's.
KAFKA_39_VOTE = (0, 1)


def vote(pre_vote: bool) -> VoteRequest:
    return VoteRequest(
        cluster_id="c",
        voter_id=2,
        topics=[
            VoteRequest.TopicData(
                topic_name="__cluster_metadata",
                partitions=[
                    VoteRequest.PartitionData(
                        partition_index=0,
                        replica_epoch=3,
                        replica_id=1,
                        last_offset_epoch=2,
                        last_offset=10,
                        pre_vote=pre_vote,
                    )
                ],
            )
        ],
    )


def api_versions(vote_range: tuple[int, int] = (0, 2)) -> ApiVersionsResponse:
    keys = []
    for key in (18, 52, 53, 54, 1, 55, 59):
        low, high = (
            vote_range if key == 52 else (APIS[key].lowest_version, APIS[key].highest_version)
        )
        keys.append(ApiVersionsResponse.ApiVersion(api_key=key, min_version=low, max_version=high))
    return ApiVersionsResponse(error_code=0, api_keys=keys)


Reply = Callable[[RequestHeader, Message], Awaitable[Message | None]]


@dataclass
class ScriptedPeer:
    """A peer that records every request and answers through `reply` (None: close)."""

    reply: Reply
    vote_range: tuple[int, int] = (0, 2)
    seen: list[tuple[RequestHeader, Message]] = field(default_factory=list)

    async def serve(self, stream: trio.SocketStream) -> None:
        frames = FrameBuffer()
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                frames.feed(data)
                while (frame := frames.next_frame()) is not None:
                    header, body = decode_request(frame)
                    self.seen.append((header, body))
                    if isinstance(body, ApiVersionsRequest):
                        answer: Message | None = api_versions(self.vote_range)
                    else:
                        answer = await self.reply(header, body)
                    if answer is None:
                        return
                    await stream.send_all(
                        size_prefixed(
                            encode_response(
                                header.request_api_key,
                                header.request_api_version,
                                header.correlation_id,
                                answer,
                            )
                        )
                    )


async def exchange(
    requests: list[Message],
    peer: ScriptedPeer | None,
    *,
    request_timeout_ms: int = 2000,
) -> list[PeerEvent]:
    """Send `requests` to a channel towards `peer` (None: nothing listens) and collect
    one event per request."""
    port = free_port()
    send, receive = trio.open_memory_channel[PeerEvent](16)
    channel = PeerChannel(
        Voter(node_id=2, host=HOST, port=port),
        client_id="raft-client-1",
        request_timeout_ms=request_timeout_ms,
        deliver=send,
    )
    events: list[PeerEvent] = []
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            if peer is not None:
                listeners = await trio.open_tcp_listeners(port, host=HOST)
                nursery.start_soon(trio.serve_listeners, peer.serve, listeners)
            nursery.start_soon(channel.run)
            for request in requests:
                channel.send(request)
            for _ in requests:
                events.append(await receive.receive())
            nursery.cancel_scope.cancel()
    return events


async def answer_vote(header: RequestHeader, body: Message) -> Message | None:
    return VoteResponse(error_code=0)


async def never_answer(header: RequestHeader, body: Message) -> Message | None:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def hang_up(header: RequestHeader, body: Message) -> Message | None:
    return None


async def test_a_peer_nobody_listens_for_is_reported_connection_refused() -> None:
    events = await exchange([vote(False)], None)
    assert events == [
        SendFailed(destination=2, request=vote(False), failure=SendFailure.CONNECTION_REFUSED)
    ]


async def test_a_peer_that_closes_with_the_request_in_flight_is_reported_connection_lost() -> None:
    events = await exchange([vote(False)], ScriptedPeer(hang_up))
    assert events == [
        SendFailed(destination=2, request=vote(False), failure=SendFailure.CONNECTION_LOST)
    ]


async def test_a_peer_that_does_not_answer_within_the_request_timeout_is_reported_timeout() -> None:
    started = trio.current_time()
    events = await exchange([vote(False)], ScriptedPeer(never_answer), request_timeout_ms=300)
    assert events == [SendFailed(destination=2, request=vote(False), failure=SendFailure.TIMEOUT)]
    assert 0.3 <= trio.current_time() - started < 2.0


async def test_a_pre_vote_to_a_kafka_39_voter_is_unsupported_and_a_plain_vote_goes_at_v1() -> None:
    peer = ScriptedPeer(answer_vote, vote_range=KAFKA_39_VOTE)
    events = await exchange([vote(True), vote(False)], peer)
    assert events[0] == SendFailed(
        destination=2, request=vote(True), failure=SendFailure.UNSUPPORTED_VERSION
    )
    assert isinstance(events[1], ResponseReceived) and events[1].request == vote(False)
    sent = [(h.request_api_key, h.request_api_version) for h, _ in peer.seen]
    assert sent == [(18, 4), (52, 1)]  # the pre-vote never reached the wire


async def test_api_versions_goes_first_as_raft_client_n_then_the_highest_shared_version() -> None:
    peer = ScriptedPeer(answer_vote)
    begin = BeginQuorumEpochRequest(
        cluster_id="c",
        topics=[
            BeginQuorumEpochRequest.TopicData(
                topic_name="__cluster_metadata",
                partitions=[
                    BeginQuorumEpochRequest.PartitionData(
                        partition_index=0,
                        voter_directory_id=uuid.UUID(int=0),
                        leader_id=1,
                        leader_epoch=3,
                    )
                ],
            )
        ],
    )

    async def reply(header: RequestHeader, body: Message) -> Message | None:
        if isinstance(body, VoteRequest):
            return VoteResponse(error_code=0)
        return APIS[53].response(error_code=0)  # type: ignore[call-arg]

    peer.reply = reply
    events = await exchange([vote(True), begin], peer)
    assert [type(e) for e in events] == [ResponseReceived, ResponseReceived]
    assert [(h.request_api_key, h.request_api_version, h.client_id) for h, _ in peer.seen] == [
        (18, 4, "raft-client-1"),
        (52, 2, "raft-client-1"),
        (53, 1, "raft-client-1"),
    ]
    received = peer.seen[1][1]
    assert isinstance(received, VoteRequest)
    assert received.topics[0].partitions[0].pre_vote is True


# -- Peers: channels that follow the voter set and go to named endpoints ---------------------


@dataclass
class Directory:
    """The voter set as the raft core shows it to Peers (`voter_ids`, `voter`)."""

    voters: dict[int, Voter] = field(default_factory=dict)

    @property
    def voter_ids(self) -> frozenset[int]:
        return frozenset(self.voters)

    def voter(self, node_id: int) -> Voter | None:
        return self.voters.get(node_id)


async def listen(peer: ScriptedPeer, nursery: trio.Nursery) -> int:
    port = free_port()
    listeners = await trio.open_tcp_listeners(port, host=HOST)
    nursery.start_soon(trio.serve_listeners, peer.serve, listeners)
    return port


def new_peers(directory: Directory) -> tuple[Peers, trio.MemoryReceiveChannel[PeerEvent]]:
    send, receive = trio.open_memory_channel[PeerEvent](16)
    return Peers(1, directory, request_timeout_ms=2000, deliver=send), receive


async def test_a_request_with_an_endpoint_reaches_a_node_outside_the_voter_set() -> None:
    peer = ScriptedPeer(answer_vote)
    peers, events = new_peers(Directory())
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await listen(peer, nursery)
            nursery.start_soon(peers.run)
            request = ApiVersionsRequest(
                client_software_name="kwire", client_software_version="0.1.0"
            )
            peers.send(4, request, VoterEndpoint(name="CONTROLLER", host=HOST, port=port))
            event = await events.receive()
            nursery.cancel_scope.cancel()
    assert isinstance(event, ResponseReceived)
    assert (event.destination, event.request) == (4, request)
    assert isinstance(event.response, ApiVersionsResponse) and event.response.error_code == 0
    # The channel's own ApiVersions, then the core's, at the highest shared version.
    assert [(h.request_api_key, h.request_api_version) for h, _ in peer.seen] == [
        (18, 4),
        (18, APIS[18].highest_version),
    ]


async def test_a_destination_neither_voter_nor_given_an_endpoint_is_refused_at_once() -> None:
    peers, events = new_peers(Directory({2: Voter(node_id=2, host=HOST, port=free_port())}))
    with trio.fail_after(TIMEOUT_S):
        peers.send(5, vote(False))
        event = events.receive_nowait()
    assert event == SendFailed(
        destination=5, request=vote(False), failure=SendFailure.CONNECTION_REFUSED
    )


async def test_a_voter_added_to_the_voter_set_is_reachable_by_its_id() -> None:
    peer = ScriptedPeer(answer_vote)
    directory = Directory()
    peers, events = new_peers(directory)
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await listen(peer, nursery)
            nursery.start_soon(peers.run)
            peers.send(4, vote(False))
            before = await events.receive()
            directory.voters[4] = Voter(node_id=4, host=HOST, port=port)  # a VotersRecord
            peers.send(4, vote(False))
            after = await events.receive()
            nursery.cancel_scope.cancel()
    assert before == SendFailed(
        destination=4, request=vote(False), failure=SendFailure.CONNECTION_REFUSED
    )
    assert isinstance(after, ResponseReceived) and after.destination == 4
    assert isinstance(after.response, VoteResponse)


async def test_a_voter_whose_endpoint_changed_is_reached_at_the_new_one_and_the_old_is_closed() -> (
    None
):
    old_peer, new_peer = ScriptedPeer(answer_vote), ScriptedPeer(answer_vote)
    directory = Directory()
    peers, events = new_peers(directory)
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            old_port = await listen(old_peer, nursery)
            new_port = await listen(new_peer, nursery)
            directory.voters[2] = Voter(node_id=2, host=HOST, port=old_port)
            nursery.start_soon(peers.run)
            peers.send(2, vote(False))
            first = await events.receive()
            directory.voters[2] = Voter(node_id=2, host=HOST, port=new_port)
            peers.send(2, vote(True))
            second = await events.receive()
            nursery.cancel_scope.cancel()
    assert isinstance(first, ResponseReceived) and isinstance(second, ResponseReceived)
    assert [type(body) for _, body in old_peer.seen] == [ApiVersionsRequest, VoteRequest]
    assert [type(body) for _, body in new_peer.seen] == [ApiVersionsRequest, VoteRequest]
    assert list(peers.channels) == [Voter(node_id=2, host=HOST, port=new_port)]


async def test_a_node_that_left_the_voter_set_loses_its_channel_and_its_request_fails() -> None:
    peer = ScriptedPeer(never_answer)
    directory = Directory()
    peers, events = new_peers(directory)
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await listen(peer, nursery)
            directory.voters[3] = Voter(node_id=3, host=HOST, port=port)
            nursery.start_soon(peers.run)
            peers.send(3, vote(False))
            while len(peer.seen) < 2:  # the Vote is on the wire, never answered
                await trio.sleep(0.01)
            del directory.voters[3]  # a VotersRecord without node 3
            started = trio.current_time()
            peers.follow_voters()
            event = await events.receive()
            waited = trio.current_time() - started
            nursery.cancel_scope.cancel()
    assert event == SendFailed(
        destination=3, request=vote(False), failure=SendFailure.CONNECTION_LOST
    )
    assert waited < 1.0  # at once, not after the 2 s request timeout
    assert peers.channels == {}


async def test_every_voter_gets_a_channel_before_anything_is_sent_to_it() -> None:
    peer = ScriptedPeer(answer_vote)
    directory = Directory()
    peers, _ = new_peers(directory)
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await listen(peer, nursery)
            directory.voters = {
                1: Voter(node_id=1, host=HOST, port=free_port()),  # this node
                2: Voter(node_id=2, host=HOST, port=port),
            }
            nursery.start_soon(peers.run)
            while not peer.seen:  # connected, ApiVersions exchanged, nothing else asked
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert list(peers.channels) == [Voter(node_id=2, host=HOST, port=port)]
    assert [type(body) for _, body in peer.seen] == [ApiVersionsRequest]


async def test_a_channel_opened_for_an_endpoint_closes_once_idle_for_the_idle_time() -> None:
    peer = ScriptedPeer(answer_vote)
    send, events = trio.open_memory_channel[PeerEvent](16)
    peers = Peers(1, Directory(), request_timeout_ms=2000, deliver=send, idle_ms=200)
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await listen(peer, nursery)
            nursery.start_soon(peers.run)
            peers.send(-2, vote(False), VoterEndpoint(name="CONTROLLER", host=HOST, port=port))
            await events.receive()
            peers.follow_voters()
            kept = list(peers.channels)  # used just now: kept
            await trio.sleep(0.3)
            peers.follow_voters()
            nursery.cancel_scope.cancel()
    assert kept == [Voter(node_id=-2, host=HOST, port=port)]
    assert peers.channels == {}


async def test_a_request_queued_before_the_channels_run_fails_when_its_voter_leaves() -> None:
    directory = Directory({3: Voter(node_id=3, host=HOST, port=free_port())})
    peers, events = new_peers(directory)  # not running: nothing is sent yet
    peers.send(3, vote(False))
    del directory.voters[3]
    peers.follow_voters()
    assert events.receive_nowait() == SendFailed(
        destination=3, request=vote(False), failure=SendFailure.CONNECTION_LOST
    )
    assert peers.channels == {}


async def test_a_request_to_a_voter_back_from_the_dead_does_not_wait_out_the_backoff() -> None:
    # Nobody listens for a second: the channel's reconnect backoff grows to its 500 ms
    # maximum. Then the voter's process is back (a restart) and a Vote is queued right
    # after an attempt failed: it goes after the 50 ms first step, not the 500 ms.
    port = free_port()
    send, receive = trio.open_memory_channel[PeerEvent](16)
    channel = PeerChannel(
        Voter(node_id=2, host=HOST, port=port),
        client_id="raft-client-1",
        request_timeout_ms=5000,
        deliver=send,
    )
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(channel.run)
            await trio.sleep(1.0)
            channel.send(vote(False))
            refused = await receive.receive()
            assert isinstance(refused, SendFailed)
            assert refused.failure == SendFailure.CONNECTION_REFUSED
            listeners = await trio.open_tcp_listeners(port, host=HOST)
            nursery.start_soon(trio.serve_listeners, ScriptedPeer(answer_vote).serve, listeners)
            sent_at = trio.current_time()
            channel.send(vote(True))
            answered = await receive.receive()
            assert isinstance(answered, ResponseReceived)
            assert trio.current_time() - sent_at < 0.25  # RECONNECT_BACKOFF_MAX_MS is 0.5 s
            nursery.cancel_scope.cancel()


def slow_backoff_channel(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[PeerChannel, trio.MemoryReceiveChannel[PeerEvent]]:
    """A channel towards 127.0.0.1:`port` whose reconnect backoff is 5 s: a reconnect
    that waits for it cannot pass for an immediate one."""
    monkeypatch.setattr(peer_channel, "RECONNECT_BACKOFF_MS", 5000)
    send, receive = trio.open_memory_channel[PeerEvent](16)
    channel = PeerChannel(
        Voter(node_id=2, host=HOST, port=port),
        client_id="raft-client-1",
        request_timeout_ms=10_000,
        deliver=send,
    )
    return channel, receive


async def test_a_request_after_a_working_connection_died_learns_the_refusal_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A follower whose Fetch falls between the leader's last answer and its death: the
    # next connection attempt says CONNECTION_REFUSED now, which fast failover acts on.
    port = free_port()
    channel, receive = slow_backoff_channel(port, monkeypatch)
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as voter:
                listeners = await trio.open_tcp_listeners(port, host=HOST)
                voter.start_soon(trio.serve_listeners, ScriptedPeer(answer_vote).serve, listeners)
                nursery.start_soon(channel.run)
                channel.send(vote(False))
                assert isinstance(await receive.receive(), ResponseReceived)
                voter.cancel_scope.cancel()  # the voter's process dies: listener, connection
            while channel.connected:
                await trio.sleep(0.001)
            channel.send(vote(True))
            with trio.fail_after(1.0):  # not the 5 s backoff
                refused = await receive.receive()
            assert refused == SendFailed(
                destination=2, request=vote(True), failure=SendFailure.CONNECTION_REFUSED
            )
            nursery.cancel_scope.cancel()


async def test_a_peer_that_closes_before_answering_anything_is_retried_after_the_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A listener that takes ApiVersions, then closes at the first request (a SASL
    # listener towards a PLAINTEXT voter): no reconnecting faster than the backoff.
    port = free_port()
    channel, receive = slow_backoff_channel(port, monkeypatch)
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(port, host=HOST)
            nursery.start_soon(trio.serve_listeners, ScriptedPeer(hang_up).serve, listeners)
            nursery.start_soon(channel.run)
            channel.send(vote(False))
            lost = await receive.receive()
            assert isinstance(lost, SendFailed) and lost.failure == SendFailure.CONNECTION_LOST
            channel.send(vote(True))
            with trio.move_on_after(1.0):
                await receive.receive()
                raise AssertionError("the second request went without waiting the backoff")
            assert channel.connects == 1
            nursery.cancel_scope.cancel()
