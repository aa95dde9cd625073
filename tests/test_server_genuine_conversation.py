"""kwire answers a genuine broker's conversation as the genuine Kafka controller did.

Three stories, each one genuine controller (node 1) and one genuine broker (node 2):

- kafka-3.9/broker-lifecycle-default: Kafka 3.9.0 at 3.9-IV0 (register, unfence, create
  topics, allocate producer ids, controlled shutdown);
- kafka-4.3/broker-lifecycle-static39: Kafka 4.3.1 formatted with --release-version 3.9-IV0;
- kafka-4.3/broker-lifecycle: Kafka 4.3.1 formatted with its default, 4.3-IV0 and every 4.x
  feature (adds __consumer_offsets, __transaction_state, DescribeCluster, DescribeQuorum).

The broker's and tools' requests are sent, in their captured order and on their captured
connections, to a kwire server formatted as the genuine controller was (same cluster id,
same release version; its bootstrap records are the genuine bootstrap.checkpoint's). Every
answer is compared with the genuine one field by field. Values that differ by nature are
compared by rule, never skipped:

- broker epoch: the offset of kwire's own RegisterBrokerRecord;
- topic id: the id in kwire's own TopicRecord for that name;
- high watermark, log end offsets: -1 exactly where the genuine one is -1, else within
  kwire's log;
- node endpoints: the same node and host, kwire's port;
- finalized features epoch: an offset within kwire's committed log;
- DescribeQuorum's fetch and caught-up times: -1 where the genuine one is, else a time of
  this run; an observer's log end offset is where the broker last fetched kwire from.

Requests that carry the broker's view of the log are rewritten by rule: a heartbeat's
broker epoch becomes kwire's, its metadata offset the one just before kwire's next event
after the events the broker had published of the genuine log (never beyond what it has
fetched from kwire); a fetch asks from where the broker's fetching of kwire has reached,
and tells the high watermark kwire last told it. Each answer is awaited at its captured
place; a request the genuine controller had received before it sent that answer (on
another connection, not a long-polling Fetch) is answered by kwire first, so that a fetch
can hold the record that request wrote, as the genuine one did. Release rules (the genuine controller is 4.3.1, kwire at
3.9-IV0 is 3.9.0's controller) are tests/genuine_43.py's: 4.3.1's topic config defaults,
and no ZkMigrationStateRecord.
Afterwards kwire's log holds the same kinds of records, at the same versions, in the same
order, as the genuine controller's log (NoOp records aside: they count time, not events).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import pytest
import trio
from genuine_conversation import (
    CONTROLLER_STREAM,
    KAFKA_3_9,
    LIFECYCLE,
    STORIES,
    Conversation,
    Story,
    ask,
    compare,
    kwire_server,
    record_kinds,
    without_time,
)

from kwire.protocol._codec import Message
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.framing import decode_request, decode_response
from kwire.protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)

pytestmark = [pytest.mark.usefixtures("codec_backend")]


def needs(story: Story) -> None:
    if not story.frames.exists() or not story.log.exists():
        pytest.skip(f"no genuine Kafka capture {story.name} (../shared is absent)")


@pytest.fixture(params=STORIES, ids=lambda story: story.name)
async def conversation(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Conversation]:
    story: Story = request.param
    needs(story)
    async with kwire_server(tmp_path, story, story.release_version) as talk:
        yield talk


async def test_kwire_answers_the_genuine_broker_as_kafka_did(conversation: Conversation) -> None:
    talk = conversation
    story = talk.story
    frames = [json.loads(line) for line in story.frames.read_text().splitlines()]
    pending: dict[tuple[int, int], dict[str, Any]] = {}  # requests in capture order
    early: dict[tuple[int, int], tuple[Message, Message]] = {}
    mismatches: list[str] = []
    answered = 0
    with trio.fail_after(90):
        for frame in frames:
            key = (frame["stream"], frame["correlation_id"])
            if frame["dir"] == "request":
                if frame["stream"] != CONTROLLER_STREAM:
                    pending[key] = frame
                continue
            # What the genuine controller had received before it sent this answer, kwire
            # answers first (a fetch's answer can hold the record another request wrote);
            # but for other long polls, each sent when its own answer comes.
            for other, request_frame in list(pending.items()):
                if other[0] != key[0] and other not in early and request_frame["api_key"] != 1:
                    early[other] = await ask(talk, request_frame)
            request_frame = pending.pop(key, None)  # type: ignore[assignment]
            if request_frame is None:
                continue  # answered before the capture began, or the controller's own
            request, ours = early.pop(key, None) or await ask(talk, request_frame)
            api_key, version = request_frame["api_key"], request_frame["api_version"]
            _, genuine = decode_response(bytes.fromhex(frame["hex"]), api_key, version)
            try:
                compare(api_key, request, genuine, ours, talk)
            except AssertionError as e:  # every difference of the story, not the first only
                where = f"frame {frames.index(frame)} {type(ours).__name__} v{version}"
                mismatches.append(f"{where}: {e}")
            answered += 1
    assert answered > story.min_answered
    assert set(talk.checked) >= story.answers

    # The same events, in the same order, at the same versions, as in the genuine log.
    genuine_kinds = without_time(record_kinds(story.log.read_bytes()), story)
    ours_all = talk.our_records()
    assert any(kind == "NoOpRecord" for _, kind, _, _ in ours_all)  # time passes in kwire's too
    our_kinds = without_time(ours_all, story)
    wrote = []
    for tag, g1, g2, o1, o2 in SequenceMatcher(None, genuine_kinds, our_kinds).get_opcodes():
        if tag == "equal" or (tag == "delete" and g2 == len(genuine_kinds) and g2 - g1 <= 2):
            continue  # the genuine controller's last events may follow the capture's end
        wrote.append(
            f"events {g1}-{g2}: genuine {genuine_kinds[g1:g2]} != kwire {our_kinds[o1:o2]}"
        )
    assert not mismatches and not wrote, "\n".join(
        ["kwire answered differently:", *mismatches, "kwire wrote differently:", *wrote]
    )


def genuine_request(story: Story, api_key: int) -> tuple[Any, Message]:
    """The first request of ``api_key`` in a story: (its header, its body)."""
    for line in story.frames.read_text().splitlines():
        frame = json.loads(line)
        if frame["dir"] == "request" and frame["api_key"] == api_key:
            return decode_request(bytes.fromhex(frame["hex"]))
    raise AssertionError(f"no request of api key {api_key} in {story.frames}")


async def test_a_genuine_3_9_broker_is_refused_by_a_4_3_iv0_cluster_as_kafka_4_3_refuses_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The 3.9.0 broker's BrokerRegistration v4 offers metadata.version 1..21 (and
    # kraft.version 0..1). Kafka 4.3.1's ClusterControlManager.registerBroker checks each
    # offered feature against the finalized level (processRegistrationFeature): 30 is not
    # within 1..21, so UnsupportedVersionException, UNSUPPORTED_VERSION on the wire
    # (BrokerRegistrationResponse has no message field; the message is the controller's log
    # line), broker epoch -1, and no record written.
    needs(KAFKA_3_9)
    header, registration = genuine_request(KAFKA_3_9, 62)
    assert isinstance(registration, BrokerRegistrationRequest)
    assert [(f.name, f.max_supported_version) for f in registration.features] == [
        ("kraft.version", 1),
        ("metadata.version", 21),
    ]
    async with kwire_server(tmp_path, LIFECYCLE, None) as talk:
        before = [kind for _, kind, _, _ in talk.our_records()]
        assert "FeatureLevelRecord" in before
        assert talk.node.controller.image.metadata_version_level == 30
        client = await talk.client(1, header.client_id or "")
        with trio.fail_after(10), caplog.at_level(logging.INFO):
            answer = await client.request(registration, header.request_api_version)
        assert isinstance(answer, BrokerRegistrationResponse)
        assert (answer.error_code, answer.broker_epoch) == (ErrorCode.UNSUPPORTED_VERSION, -1)
        assert (
            "Unable to register because the broker does not support finalized version 30 of "
            "metadata.version. The broker wants a version between 1 and 21, inclusive."
        ) in caplog.text
        assert "RegisterBrokerRecord" not in [kind for _, kind, _, _ in talk.our_records()]
