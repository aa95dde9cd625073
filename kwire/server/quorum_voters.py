"""The voters of a dynamic quorum (kraft.version 1, KIP-853), read from the metadata log.

A node formatted with ``--standalone`` or ``--initial-controllers`` has no
``controller.quorum.voters``: its voters live in the log, first in the bootstrap snapshot
``00000000000000000000-0000000000.checkpoint`` (KRaftVersionRecord + VotersRecord after
the snapshot header), then in every leader's start-of-epoch batch. At start Kafka's
KafkaRaftClient.initialize builds its KRaftControlRecordStateMachine from the newest
snapshot and the log after it; `read_control_records` does the same for the raft core
(`RaftCore(control_records=...)`), and `voters_on_listener` turns the voter set into the
endpoints the edge connects to (each voter's endpoint on the controller listener, as
Kafka's RaftManager looks voters up by `controller.listener.names`' first name).
"""

from __future__ import annotations

from collections.abc import Iterable

from kwire.log import MetadataLog
from kwire.log.snapshots import snapshot_path
from kwire.raft.state import Voter
from kwire.raft.voter_set import KRaftControlRecords, VoterEndpoint, VoterSet
from kwire.records import decode_batch
from kwire.records.batch import iter_batch_headers, read_batch_header
from kwire.server.properties import Endpoint

__all__ = ["local_endpoints", "read_control_records", "voters_on_listener"]

# The batch header's length field ends at this byte: base offset (8) + batch length (4).
_LENGTH_END = 12


def _snapshot_head(metadata_log: MetadataLog) -> tuple[int, bytes] | None:
    """(end offset, first batch bytes) of the newest snapshot, None without one. Only the
    first batch is read: the header, KRaftVersion and Voters records all live there."""
    latest = metadata_log.latest_snapshot_id()
    if latest is None:
        return None
    with open(snapshot_path(metadata_log.directory, latest), "rb") as f:
        head = f.read(_LENGTH_END)
        if len(head) < _LENGTH_END:
            raise ValueError(f"snapshot {latest}: {len(head)} bytes, shorter than a batch header")
        length = int.from_bytes(head[8:12], "big", signed=True)
        if length <= 0 or length > 8 * 1024 * 1024:
            raise ValueError(f"snapshot {latest}: first batch length {length} is out of range")
        data = head + f.read(length)
    read_batch_header(data)  # raises CorruptRecordError (a ValueError) when truncated
    return latest.end_offset, data


def read_control_records(
    metadata_log: MetadataLog, static_voters: VoterSet | None = None
) -> KRaftControlRecords:
    """The kraft.version and voter history of `metadata_log`: its newest snapshot's first
    batch, then every control batch of the log from the snapshot's end to the log's end. Raises
    ValueError (CorruptRecordError, VoterSetError) for an unreadable snapshot head or a
    control record that does not decode."""
    records = KRaftControlRecords(static_voters)
    head = _snapshot_head(metadata_log)
    if head is not None:
        end_offset, data = head
        records.load_snapshot(end_offset, [decode_batch(data, 0, verify_crc=True)[0]])
    offset = max(records.next_offset, metadata_log.log_start_offset, 0)
    records.skip_to(offset)
    # Only control batches can hold KRaft records: the others are stepped over by their
    # headers, without decoding (or decompressing) their records.
    while offset < metadata_log.end_offset and (data := metadata_log.read(offset)):
        before = offset
        for pos, header in iter_batch_headers(data, verify_crc=False):
            if header.is_control:
                records.skip_to(header.base_offset)
                records.append([decode_batch(data, pos, verify_crc=True)[0]])
            offset = header.next_offset
        if offset <= before:
            raise ValueError(f"the log does not advance past offset {offset}")
    records.skip_to(max(offset, metadata_log.end_offset))
    return records


def voters_on_listener(voters: VoterSet, listener_name: str) -> tuple[Voter, ...]:
    """Each voter with its endpoint on `listener_name` (case-insensitive, as Kafka's
    ListenerName upper-cases); a voter without one is left out (nothing can reach it)."""
    found = []
    for node in voters:
        endpoint = node.endpoint(listener_name.upper())
        if endpoint is not None:
            found.append(Voter(node_id=node.key.id, host=endpoint.host, port=endpoint.port))
    return tuple(found)


def local_endpoints(listeners: Iterable[Endpoint]) -> tuple[VoterEndpoint, ...]:
    """This node's controller listeners as a VotersRecord names them (upper-case names)."""
    return tuple(
        VoterEndpoint(name=e.listener_name.upper(), host=e.host or "", port=e.port)
        for e in listeners
    )
