"""Feeding a stored batch's metadata records to a controller, as a standby replays them."""

from __future__ import annotations

from kwire.controller.controller import QuorumController
from kwire.protocol.messages.index import METADATA_RECORDS
from kwire.records import unframe_metadata_record
from kwire.sim.memory_log import StoredBatch


def replay_batch(controller: QuorumController, batch: StoredBatch, start: int, end: int) -> int:
    """Replay the metadata records of `batch` whose offsets lie in [start, end); control
    batches carry none. Returns how many were replayed."""
    decoded = batch.decode()
    if decoded.is_control:
        return 0
    count = 0
    for record in decoded.records:
        offset = batch.base_offset + record.offset_delta
        if start <= offset < end:
            api_key, version, body = unframe_metadata_record(record.value)
            message = METADATA_RECORDS[api_key].decode(body, version)
            controller.replay(message, version, offset)
            count += 1
    return count
