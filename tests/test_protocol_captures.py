"""Every frame genuine Kafka 3.9 and 4.3 nodes exchanged decodes, and re-encodes to the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kwire.protocol.errors import ProtocolError
from kwire.protocol.framing import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

CAPTURES = Path(__file__).parents[1].parent / "shared" / "captures"
TRANSCRIPTS = sorted(CAPTURES.glob("kafka-*/**/*.jsonl"))

pytestmark = [
    pytest.mark.skipif(
        not TRANSCRIPTS, reason=f"no genuine Kafka transcripts at {CAPTURES} (../shared is absent)"
    ),
    pytest.mark.usefixtures("codec_backend"),
]


def frames(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def round_trip_response(raw: bytes, api_key: int, api_version: int) -> bytes:
    header, body = decode_response(raw, api_key, api_version)
    return encode_response(api_key, api_version, header.correlation_id, body)


@pytest.mark.parametrize(
    "path",
    TRANSCRIPTS,
    ids=[p.relative_to(CAPTURES).with_suffix("").as_posix() for p in TRANSCRIPTS],
)
def test_every_genuine_frame_round_trips_byte_for_byte(path: Path) -> None:
    records = frames(path)
    requests_seen = {(r["api_key"], r["api_version"]) for r in records if r["dir"] == "request"}
    checked = 0
    for record in records:
        raw = bytes.fromhex(str(record["hex"]))
        if record["dir"] == "request":
            header, body = decode_request(raw)
            assert (header.request_api_key, header.request_api_version) == (
                record["api_key"],
                record["api_version"],
            )
            assert header.correlation_id == record["correlation_id"]
            assert encode_request(header, body) == raw
        elif record["api_key"] is not None:
            assert round_trip_response(raw, record["api_key"], record["api_version"]) == raw  # type: ignore[arg-type]
        else:
            # The request went out before the capture started: the response must be one of
            # the API versions this conversation uses, and exactly one.
            matches = []
            for api_key, api_version in sorted(requests_seen):  # type: ignore[type-var]
                try:
                    if round_trip_response(raw, api_key, api_version) == raw:  # type: ignore[arg-type]
                        matches.append((api_key, api_version))
                except ProtocolError:
                    pass
            assert len(matches) == 1, f"correlation {record['correlation_id']}: {matches}"
        checked += 1
    assert checked == len(records) > 0
