"""Print the batches and records of ``__cluster_metadata`` files, like Kafka's
``kafka-dump-log.sh --cluster-metadata-decoder --files ...``.

Usage::

    python -m kwire.tools.dump_log FILE... [--json] [--kafka-release 3.9|4.3]
    python -m kwire.tools.dump_log --files a.log,b.checkpoint   # Kafka's spelling

Accepted files: ``.log`` segments, ``<offset>-<epoch>.checkpoint`` snapshots and
``bootstrap.checkpoint``; anything else is reported on stderr as ignored, as Kafka does.

The default output is Kafka's text, line for line, as printed by the ``kafka-dump-log`` of
the release chosen with ``--kafka-release`` (default ``4.3``, Kafka 4.3.1's). The text depends
on the tool's release, not on the release that wrote the file: the same bytes print the same
under one tool. The two lines differ in one place only: a LeaderChange control record is
``controlType: LEADER_CHANGE(2)`` under 3.9.0's tool (Scala DumpLogSegments) and
``LeaderChange: {json}`` under 4.3.1's (tools/.../DumpLogSegments.java). ``--json`` prints one JSON object
per line instead, each with a ``kind``:

* ``{"kind":"file","path":..,"fileType":"log","startOffset":N}``, or
  ``"fileType":"snapshot"`` with ``endOffset`` and ``epoch``, or ``"fileType":"bootstrap"``;
* ``{"kind":"batch",..}``: every batch header field Kafka prints (``baseOffset``,
  ``lastOffset``, ``count``, ``baseSequence``, ``lastSequence``, ``producerId``,
  ``producerEpoch``, ``partitionLeaderEpoch``, ``isTransactional``, ``isControl``,
  ``deleteHorizonMs`` (null when absent), ``position``, ``timestampType``, ``maxTimestamp``,
  ``size``, ``magic``, ``compressionCodec``, ``crc``, ``isValid``);
* ``{"kind":"record","offset":..,"timestamp":..,"keySize":..,"valueSize":..,"sequence":..,
  "headerKeys":[..]}`` plus, for control records, ``controlType`` (name), ``controlTypeId``
  and ``control`` (the decoded control message in Kafka's JSON form, LeaderChangeMessage
  included), or for metadata records ``payload``: ``{"type":..,"version":..,"data":{..}}``;
  a record that cannot be decoded carries ``error`` instead;
* ``{"kind":"trailing-bytes","path":..,"bytes":N}`` for a partial batch at the end;
* ``{"kind":"error","path":..,"position":N,"message":..}`` where reading had to stop.

Damaged input never raises: a bad CRC is reported as ``isvalid: false`` (as Kafka does) and
decoding goes on; a truncated tail is reported as Kafka reports it; a batch whose
records cannot be parsed ends that file with a message on stderr naming the byte
position, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import enum
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kwire.log.files import BOOTSTRAP_CHECKPOINT_FILE, LOG_SUFFIX
from kwire.log.snapshots import SNAPSHOT_SUFFIX, parse_snapshot_path
from kwire.protocol._codec import Message
from kwire.protocol.json import dumps, metadata_record_json, to_json
from kwire.protocol.messages.index import CONTROL_RECORDS, METADATA_RECORDS
from kwire.records import (
    ControlRecordType,
    CorruptRecordError,
    IncompleteBatchError,
    Record,
    RecordBatch,
    RecordBatchHeader,
    TimestampType,
    compute_batch_crc,
    decode_batch,
    decode_control_record_key,
    read_batch_header,
    unframe_metadata_record,
)

__all__ = ["DumpRelease", "dump_files", "main"]


class DumpRelease(enum.Enum):
    """The Kafka release whose ``kafka-dump-log`` text is printed."""

    KAFKA_3_9 = "3.9"
    KAFKA_4_3 = "4.3"


_HEADER_SIZE_UP_TO_MAGIC = 17  # Kafka stops (no error) with fewer bytes than this left
_INT32_MAX = 2**31 - 1
_TIMESTAMP_TYPE_NAMES = {
    TimestampType.CREATE_TIME: "CreateTime",
    TimestampType.LOG_APPEND_TIME: "LogAppendTime",
}
# How the dump labels the JSON of each control record it decodes.
_CONTROL_LABELS = {
    ControlRecordType.SNAPSHOT_HEADER: "SnapshotHeader",
    ControlRecordType.SNAPSHOT_FOOTER: "SnapshotFooter",
    ControlRecordType.KRAFT_VERSION: "KRaftVersion",
    ControlRecordType.KRAFT_VOTERS: "KRaftVoters",
}


def _increment_sequence(sequence: int, increment: int) -> int:
    # Producer sequences wrap at Integer.MAX_VALUE back to 0.
    if sequence > _INT32_MAX - increment:
        return increment - (_INT32_MAX - sequence) - 1
    return sequence + increment


def _sequence_at(base_sequence: int, delta: int) -> int:
    return -1 if base_sequence < 0 else _increment_sequence(base_sequence, delta)


@dataclass
class _Dumper:
    out: TextIO
    err: TextIO
    as_json: bool
    release: DumpRelease = DumpRelease.KAFKA_4_3
    failed: bool = False
    # Kafka collects offset gaps per file and reports them on stderr at the very end.
    gaps: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def emit(self, text: str, obj: dict[str, Any]) -> None:
        self.out.write((dumps(obj) if self.as_json else text) + "\n")

    def stop(self, path: str, position: int, message: str) -> None:
        self.failed = True
        if self.as_json:
            self.emit("", {"kind": "error", "path": path, "position": position, "message": message})
        print(f"dump_log: {path}: stopped at byte position {position}: {message}", file=self.err)

    # -- files ---------------------------------------------------------------------------

    def dump(self, arg: str) -> None:
        path = Path(arg)
        name = path.name
        if name.endswith(LOG_SUFFIX):
            stem = name.split(".")[0]
            if not stem.isdigit():
                self._unreadable(arg, f"cannot read a start offset from the name {name!r}")
                return
            self._announce(
                arg, f"Log starting offset: {int(stem)}", fileType="log", startOffset=int(stem)
            )
        elif name.endswith(SNAPSHOT_SUFFIX):
            if name == BOOTSTRAP_CHECKPOINT_FILE:
                self._announce(arg, "KRaft bootstrap snapshot", fileType="bootstrap")
            else:
                parsed = parse_snapshot_path(path)
                if parsed is None or parsed.partial or parsed.deleted:
                    self._unreadable(arg, f"{name!r} is not a <offset>-<epoch>.checkpoint name")
                    return
                sid = parsed.snapshot_id
                self._announce(
                    arg,
                    f"Snapshot end offset: {sid.end_offset}, epoch: {sid.epoch}",
                    fileType="snapshot",
                    endOffset=sid.end_offset,
                    epoch=sid.epoch,
                )
        else:
            if not self.as_json:
                self.out.write(f"Dumping {arg}\n")
            print(f"Ignoring unknown file {arg}", file=self.err)
            return
        try:
            data = path.read_bytes()
        except OSError as e:
            self.stop(arg, 0, f"cannot read the file: {e.strerror or e}")
            return
        self._dump_batches(arg, name, data)

    def _announce(self, arg: str, line: str, **info: Any) -> None:
        if self.as_json:
            self.emit("", {"kind": "file", "path": arg, **info})
        else:
            self.out.write(f"Dumping {arg}\n{line}\n")

    def _unreadable(self, arg: str, message: str) -> None:
        if not self.as_json:
            self.out.write(f"Dumping {arg}\n")
        self.stop(arg, 0, message)

    # -- batches -------------------------------------------------------------------------

    def _dump_batches(self, arg: str, name: str, data: bytes) -> None:
        position = 0
        last_offset = -1
        while len(data) - position >= _HEADER_SIZE_UP_TO_MAGIC:
            try:
                header = read_batch_header(data, position)
            except IncompleteBatchError:
                break  # a torn final batch: reported below as invalid bytes, as Kafka does
            except CorruptRecordError as e:
                self.stop(arg, position, e.reason)
                return
            valid = compute_batch_crc(data, position, header) == header.crc
            self._print_batch(header, position, valid)
            try:
                batch, _ = decode_batch(data, position, verify_crc=False)
            except CorruptRecordError as e:
                where = position if e.offset is None else e.offset
                self.stop(
                    arg, where, f"cannot decode the records of the batch at {position}: {e.reason}"
                )
                return
            for record in batch.records:
                offset = batch.offset_of(record)
                if last_offset != -1 and offset != last_offset + 1:
                    self.gaps.setdefault(str(Path(arg).absolute()), []).append(
                        (last_offset, offset)
                    )
                last_offset = offset
                self._print_record(batch, record)
            position += header.size_in_bytes
        trailing = len(data) - position
        if trailing > 0:
            self.emit(
                f"Found {trailing} invalid bytes at the end of {name}",
                {"kind": "trailing-bytes", "path": arg, "bytes": trailing},
            )

    def _print_batch(self, h: RecordBatchHeader, position: int, valid: bool) -> None:
        horizon = h.base_timestamp if h.has_delete_horizon else None
        codec = h.compression.name.lower()
        ts_type = _TIMESTAMP_TYPE_NAMES[h.timestamp_type]
        last_sequence = _sequence_at(h.base_sequence, h.last_offset_delta)
        horizon_text = "OptionalLong.empty" if horizon is None else f"OptionalLong[{horizon}]"
        text = (
            f"baseOffset: {h.base_offset} lastOffset: {h.last_offset} count: {h.records_count}"
            f" baseSequence: {h.base_sequence} lastSequence: {last_sequence}"
            f" producerId: {h.producer_id} producerEpoch: {h.producer_epoch}"
            f" partitionLeaderEpoch: {h.partition_leader_epoch}"
            f" isTransactional: {_bool(h.is_transactional)} isControl: {_bool(h.is_control)}"
            f" deleteHorizonMs: {horizon_text} position: {position}"
            f" {ts_type}: {h.max_timestamp} size: {h.size_in_bytes} magic: {h.magic}"
            f" compresscodec: {codec} crc: {h.crc} isvalid: {_bool(valid)}"
        )
        self.emit(
            text,
            {
                "kind": "batch",
                "baseOffset": h.base_offset,
                "lastOffset": h.last_offset,
                "count": h.records_count,
                "baseSequence": h.base_sequence,
                "lastSequence": last_sequence,
                "producerId": h.producer_id,
                "producerEpoch": h.producer_epoch,
                "partitionLeaderEpoch": h.partition_leader_epoch,
                "isTransactional": h.is_transactional,
                "isControl": h.is_control,
                "deleteHorizonMs": horizon,
                "position": position,
                "timestampType": ts_type,
                "maxTimestamp": h.max_timestamp,
                "size": h.size_in_bytes,
                "magic": h.magic,
                "compressionCodec": codec,
                "crc": h.crc,
                "isValid": valid,
            },
        )

    # -- records -------------------------------------------------------------------------

    def _print_record(self, batch: RecordBatch, record: Record) -> None:
        offset = batch.offset_of(record)
        timestamp = batch.timestamp_of(record)
        key_size = -1 if record.key is None else len(record.key)
        value_size = -1 if record.value is None else len(record.value)
        sequence = _sequence_at(batch.base_sequence, record.offset_delta)
        header_keys = [k for k, _ in record.headers]
        ts_type = _TIMESTAMP_TYPE_NAMES[batch.timestamp_type]
        text = (
            f"| offset: {offset} {ts_type}: {timestamp} keySize: {key_size}"
            f" valueSize: {value_size} sequence: {sequence}"
            f" headerKeys: [{','.join(header_keys)}]"
        )
        obj: dict[str, Any] = {
            "kind": "record",
            "offset": offset,
            "timestamp": timestamp,
            "keySize": key_size,
            "valueSize": value_size,
            "sequence": sequence,
            "headerKeys": header_keys,
        }
        if batch.is_control:
            suffix, extra = _describe_control(record, self.release)
        else:
            suffix, extra = _describe_metadata(offset, record)
        obj.update(extra)
        self.emit(text + suffix, obj)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _describe_control(record: Record, release: DumpRelease) -> tuple[str, dict[str, Any]]:
    try:
        key = decode_control_record_key(record.key)
    except CorruptRecordError as e:
        return f" error: {e.reason}", {"error": e.reason}
    ctype = key.type
    extra: dict[str, Any] = {"controlType": ctype.name, "controlTypeId": key.type_id}
    if ctype in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
        value = record.value or b""
        if len(value) < 6:
            return " error: end transaction marker value too short", {
                **extra,
                "error": "short value",
            }
        epoch = int.from_bytes(value[2:6], "big", signed=True)
        extra["control"] = {"coordinatorEpoch": epoch}
        return f" endTxnMarker: {ctype.name} coordinatorEpoch: {epoch}", extra
    cls: type[Message] | None = CONTROL_RECORDS.get(int(ctype))
    if cls is None:
        return f" controlType: {ctype.name}({key.type_id})", extra
    try:
        # Control values are read at version 0; their own "version" field then picks
        # the version the JSON is written at, exactly as Kafka's dump does.
        message = cls.decode(record.value or b"", 0)
        json_version = getattr(message, "version", 0)
        node = to_json(message, json_version)
    except ValueError as e:
        return f" error: {e}", {**extra, "error": str(e)}
    extra["control"] = node
    if ctype is ControlRecordType.LEADER_CHANGE:
        if release is DumpRelease.KAFKA_3_9:  # 3.9.0's tool prints only the type
            return f" controlType: {ctype.name}({key.type_id})", extra
        return f" LeaderChange: {dumps(node)}", extra
    label = _CONTROL_LABELS.get(ctype)
    if label is None:
        return f" controlType: {ctype.name}({key.type_id})", extra
    return f" {label} {dumps(node)}", extra


def _describe_metadata(offset: int, record: Record) -> tuple[str, dict[str, Any]]:
    try:
        api_key, version, body = unframe_metadata_record(record.value)
        cls: type[Message] | None = METADATA_RECORDS.get(api_key)
        if cls is None:
            raise ValueError(f"Unknown metadata id {api_key}")
        payload = metadata_record_json(cls.decode(body, version), version)
    except ValueError as e:
        message = f"Error at {offset}, skipping. {e}"
        return f" payload: {message}", {"error": message}
    return f" payload: {dumps(payload)}", {"payload": payload}


def dump_files(
    paths: Sequence[str],
    out: TextIO,
    err: TextIO,
    *,
    as_json: bool = False,
    release: DumpRelease = DumpRelease.KAFKA_4_3,
) -> int:
    """Dump each file to ``out`` as ``release``'s kafka-dump-log prints it; returns the
    exit status (1 if any file was damaged)."""
    dumper = _Dumper(out, err, as_json, release)
    for arg in paths:
        dumper.dump(arg)
    for name, pairs in dumper.gaps.items():
        print(f"Non-consecutive offsets in {name}", file=err)
        for first, second in pairs:
            print(f"  {first} is followed by {second}", file=err)
    return 1 if dumper.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kwire.tools.dump_log",
        description="Dump __cluster_metadata log segments and snapshots like kafka-dump-log.sh.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help=".log, .checkpoint files")
    parser.add_argument("--files", dest="files_csv", help="comma-separated files (Kafka's form)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--kafka-release",
        choices=[r.value for r in DumpRelease],
        default=DumpRelease.KAFKA_4_3.value,
        help="print as this Kafka release's kafka-dump-log does (default: %(default)s)",
    )
    # Accepted for command-line compatibility with kafka-dump-log.sh; always in effect.
    for flag in ("--cluster-metadata-decoder", "--print-data-log", "--deep-iteration"):
        parser.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    paths = list(args.files)
    if args.files_csv:
        paths.extend(p for p in args.files_csv.split(",") if p)
    if not paths:
        print("dump_log: no files given", file=sys.stderr)
        return 1
    try:
        return dump_files(
            paths,
            sys.stdout,
            sys.stderr,
            as_json=args.json,
            release=DumpRelease(args.kafka_release),
        )
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
