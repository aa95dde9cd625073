"""``kwire history``: a metadata log directory's past, in words an operator reads.

    kwire history DIR image [--offset N] [--json]
    kwire history DIR diff A B [--json]
    kwire history DIR broker ID [--from A] [--to B] [--json]
    kwire history DIR topic NAME [--partition P] [--from A] [--to B] [--json]
    kwire history DIR log [--from A] [--to B] [--json]
    kwire history DIR quorum [--from A] [--to B] [--json]

DIR is a ``__cluster_metadata-0`` directory or the log directory holding it (kwire's or
Kafka's); it is only read. Offsets are *end offsets*: the image at N holds every record
below N (what the snapshot ``<N>-<epoch>.checkpoint`` holds); ``--offset`` defaults to the
log's end. ``diff A B`` lists what changed between the images at A and B. ``broker``,
``topic`` and ``log`` print one line per record, ``offset  time  sentence`` (the time is the
batch's append timestamp, UTC), each sentence saying what changed and why where the log
shows it (kwire.controller.record_words); ``log`` prints every record but the no-ops,
with the raft layer's control records; ``quorum`` only those (each epoch's leader and
its voters, kraft.version, voter set changes).
With ``--json`` each line is an object: offset, timestampMs, time, sentence.

Exit status: 0; 1 when the directory cannot rebuild what was asked (an offset beyond the
log, or below a cleaned log's oldest snapshot: the message says which) or a batch is
corrupt; 2 for bad arguments. Kafka has no such tool (kafka-metadata-shell browses one
image; kafka-dump-log prints records without their effect).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from kwire.tools.history_image import diff_lines, fact_lines, image_facts
from kwire.tools.history_source import HistoryUnavailable, MetadataDirectory
from kwire.tools.history_timeline import (
    Filter,
    broker_filter,
    timeline,
    topic_filter,
    utc_text,
)

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kwire history",
        description="The image at an offset, diffs and timelines of a metadata log directory.",
    )
    parser.add_argument("directory", type=Path, help="__cluster_metadata-0 or its log dir")
    commands = parser.add_subparsers(dest="command", required=True)
    image = commands.add_parser("image", help="the image at an end offset")
    image.add_argument("--offset", type=int, default=None, help="end offset (default: log end)")
    image.add_argument("--json", action="store_true", help="print the facts as JSON")
    diff = commands.add_parser("diff", help="what changed between two end offsets")
    diff.add_argument("a", type=int)
    diff.add_argument("b", type=int)
    diff.add_argument("--json", action="store_true", help="print both facts' changes as JSON")
    broker = commands.add_parser("broker", help="the timeline of a broker")
    broker.add_argument("broker_id", type=int)
    topic = commands.add_parser("topic", help="the timeline of a topic")
    topic.add_argument("name")
    topic.add_argument("--partition", type=int, default=None)
    everything = commands.add_parser("log", help="every record in words")
    quorum = commands.add_parser("quorum", help="quorum leaders and voter changes")
    for sub in (broker, topic, everything, quorum):
        sub.add_argument("--from", dest="start", type=int, default=0, help="first offset")
        sub.add_argument("--to", dest="end", type=int, default=None, help="end offset")
        sub.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kwire history``; returns the exit status."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        directory = MetadataDirectory(args.directory)
        match args.command:
            case "image":
                _image(directory, args.offset, args.json)
            case "diff":
                _diff(directory, args.a, args.b, args.json)
            case "broker":
                select = broker_filter(args.broker_id)
                _timeline(directory, select, args.start, args.end, args.json)
            case "topic":
                select = topic_filter(args.name, args.partition)
                _timeline(directory, select, args.start, args.end, args.json)
            case "quorum":
                select = lambda _subjects: False  # noqa: E731
                _timeline(directory, select, args.start, args.end, args.json, quorum=True)
            case _:
                select = lambda _subjects: True  # noqa: E731
                _timeline(directory, select, args.start, args.end, args.json, quorum=True)
    except (HistoryUnavailable, ValueError, OSError) as exc:
        print(f"kwire history: {exc}", file=sys.stderr)
        return 1
    return 0


def _image(directory: MetadataDirectory, offset: int | None, as_json: bool) -> None:
    end = directory.end_offset if offset is None else offset
    loaded = directory.image_at(end)
    facts = image_facts(loaded.image)
    source = (
        f"snapshot {loaded.snapshot.end_offset} and the log after it"
        if loaded.snapshot
        else "the log from offset 0"
    )
    note = None
    if loaded.open_transaction >= 0:
        note = (
            f"the metadata transaction begun at offset {loaded.open_transaction} is still"
            " open at this offset: its records are left out, as Kafka publishes none of them"
            " before its end"
        )
    if as_json:
        document: dict[str, object] = {"endOffset": end, "from": source, "facts": facts}
        if note is not None:
            document["openTransaction"] = loaded.open_transaction
        print(json.dumps(document, indent=2))
        return
    print(f"# the image at end offset {end} (built from {source})")
    if note is not None:
        print(f"# {note}")
    for line in fact_lines(facts):
        print(line)


def _diff(directory: MetadataDirectory, a: int, b: int, as_json: bool) -> None:
    before = image_facts(directory.image_at(a).image)
    after = image_facts(directory.image_at(b).image)
    if as_json:
        changed = {k: {"before": before.get(k), "after": v} for k, v in after.items()}
        changed = {k: v for k, v in changed.items() if v["before"] != v["after"]}
        removed = {k: {"before": v, "after": None} for k, v in before.items() if k not in after}
        print(json.dumps({"from": a, "to": b, "changes": changed | removed}, indent=2))
        return
    print(f"# from end offset {a} to end offset {b}")
    for line in diff_lines(before, after) or ["(no change)"]:
        print(line)


def _timeline(
    directory: MetadataDirectory,
    select: Filter,
    start: int,
    end: int | None,
    as_json: bool,
    *,
    quorum: bool = False,
) -> None:
    """Print the timeline, a line at a time as it is built (notes as ``# `` lines, or as
    ``{"note": ...}`` objects in JSON)."""
    notes: list[str] = []
    printed = 0

    def flush_notes() -> None:
        for note in notes:
            print(json.dumps({"note": note}) if as_json else f"# {note}")
        notes.clear()

    lines = timeline(directory, select, start=start, end=end, notes=notes, quorum=quorum)
    for line in lines:
        flush_notes()
        printed += 1
        if as_json:
            document = {
                "offset": line.offset,
                "timestampMs": line.timestamp_ms,
                "time": utc_text(line.timestamp_ms),
                "sentence": line.sentence,
            }
            print(json.dumps(document))
        else:
            print(line.text())
    flush_notes()
    if not printed and not as_json:
        print("# no record concerns it")


if __name__ == "__main__":
    sys.exit(main())
