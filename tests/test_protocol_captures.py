"""Every frame genuine Kafka 3.9 and 4.3 nodes exchanged decodes, and re-encodes to the same bytes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from java_tostring import differences, every_field, parse

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


# ---------------------------------------------------------------- Kafka's own decoding

DECODED = sorted(CAPTURES.glob("kafka-4.3/*/*.decoded.txt"))
_DECODED_LINE = re.compile(
    r"#(?P<index>\d+) \S+ stream=\d+ \S+ (?P<dir>request|response) (?P<api>\w+) v(?P<version>\d+)"
    r" corr=(?P<corr>-?\d+)(?: clientId=(?P<client>\S*))? (?P<body>.*)"
)
_INNER = re.compile(r" INNER (?P<api>\w+) v(?P<version>\d+) clientId=(?P<client>\S*) (?P<body>.*)")


def _compare(printed_text: str, message: object, where: str) -> str:
    printed, rest = parse(printed_text)
    assert printed.name == type(message).__name__ + "Data", where  # e.g. FetchRequestData
    problems = differences(printed, every_field(message), where)
    assert not problems, problems[:5]
    return rest


@pytest.mark.parametrize("path", DECODED, ids=[p.parent.name for p in DECODED])
def test_every_frame_decodes_to_what_kafkas_classes_print(path: Path) -> None:
    # <scenario>.decoded.txt: each frame as Kafka 4.3.1's generated XxxData.toString() prints
    # it, line #N for line N of the transcript. kwire's decoding must agree field by field.
    records = frames(path.with_name(path.name.replace(".decoded.txt", ".jsonl")))
    lines = path.read_text().splitlines()
    assert len(lines) == len(records)
    for line, record in zip(lines, records, strict=True):
        m = _DECODED_LINE.fullmatch(line)
        assert m is not None, line[:120]
        assert (int(m["index"]), m["dir"], int(m["corr"])) == (
            records.index(record),
            record["dir"],
            record["correlation_id"],
        )
        version = int(m["version"])
        raw = bytes.fromhex(str(record["hex"]))
        where = f"#{m['index']} {m['dir']} {m['api']} v{version}"
        if record["dir"] == "request":
            header, body = decode_request(raw)
            assert header.client_id == (None if m["client"] == "null" else m["client"])
            rest = _compare(m["body"], body, where)
            if (inner := _INNER.fullmatch(rest)) is not None:
                inner_header, inner_body = decode_request(body.request_data)  # type: ignore[attr-defined]
                assert inner_header.client_id == inner["client"]
                assert inner_header.request_api_version == int(inner["version"])
                assert _compare(inner["body"], inner_body, where + " inner") == ""
            else:
                assert rest == "", rest[:80]
        else:
            _, body = decode_response(raw, record["api_key"], version)  # type: ignore[arg-type]
            rest = _compare(m["body"], body, where)
            assert rest == "" or rest.startswith(" (inner response bytes: "), rest[:80]
