"""Kafka record batches (magic v2), compression, control keys and metadata framing.

Pure functions over bytes; no I/O. Every malformed input raises
:class:`CorruptRecordError` (a ``ValueError``).
"""

from kwire.records.batch import (
    LOG_OVERHEAD,
    MAGIC_V2,
    MAX_BATCH_SIZE_BYTES,
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    NO_TIMESTAMP,
    RECORD_BATCH_OVERHEAD,
    Record,
    RecordBatch,
    RecordBatchHeader,
    TimestampType,
    batch_attributes,
    build_batch,
    check_batch_crc,
    compute_batch_crc,
    decode_batch,
    decode_batches,
    decode_records,
    encode_batch,
    encode_records,
    iter_batch_headers,
    read_batch_header,
    set_base_offset_and_epoch,
)
from kwire.records.compression import (
    DEFAULT_MAX_UNCOMPRESSED_SIZE,
    CompressionType,
    compress,
    decompress,
)
from kwire.records.control import (
    ControlRecordKey,
    ControlRecordType,
    decode_control_record_key,
    encode_control_record_key,
)
from kwire.records.errors import CorruptRecordError, IncompleteBatchError
from kwire.records.metadata import (
    METADATA_FRAME_VERSION,
    frame_metadata_record,
    unframe_metadata_record,
)
from kwire.records.sizes import plain_batch_size, plain_record_size

__all__ = [
    "DEFAULT_MAX_UNCOMPRESSED_SIZE",
    "LOG_OVERHEAD",
    "MAGIC_V2",
    "METADATA_FRAME_VERSION",
    "NO_PARTITION_LEADER_EPOCH",
    "NO_PRODUCER_EPOCH",
    "NO_PRODUCER_ID",
    "NO_SEQUENCE",
    "NO_TIMESTAMP",
    "MAX_BATCH_SIZE_BYTES",
    "RECORD_BATCH_OVERHEAD",
    "CompressionType",
    "ControlRecordKey",
    "ControlRecordType",
    "CorruptRecordError",
    "IncompleteBatchError",
    "Record",
    "RecordBatch",
    "RecordBatchHeader",
    "TimestampType",
    "batch_attributes",
    "build_batch",
    "check_batch_crc",
    "compress",
    "compute_batch_crc",
    "decode_batch",
    "decode_batches",
    "decode_control_record_key",
    "decode_records",
    "decompress",
    "encode_batch",
    "encode_control_record_key",
    "encode_records",
    "frame_metadata_record",
    "iter_batch_headers",
    "plain_batch_size",
    "plain_record_size",
    "read_batch_header",
    "set_base_offset_and_epoch",
    "unframe_metadata_record",
]
