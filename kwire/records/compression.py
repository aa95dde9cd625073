"""Record batch compression codecs, framed exactly as Kafka 3.9's Java client frames them.

* gzip: a single gzip member, header as ``java.util.zip.GZIPOutputStream`` writes it
  (mtime 0, XFL 0, OS 255); reading accepts concatenated members like GZIPInputStream.
* snappy: xerial ``SnappyOutputStream`` framing (16-byte header, then big-endian
  length-prefixed raw snappy blocks of at most 32 KiB input). Reading also accepts a
  single raw snappy block, which is what SnappyInputStream falls back to when the
  xerial magic is absent.
* lz4: Kafka's ``Lz4BlockOutputStream`` frame: LZ4 frame magic, FLG 0x60 (version 1,
  independent blocks, no checksums, no content size), BD 0x40 (64 KiB blocks), header
  checksum, blocks, end mark. Reading rejects what Kafka's reader rejects (dependent
  blocks, reserved bits, other versions).
* zstd: a zstd frame without content size or checksum, as zstd-jni's streaming
  output writes it.

Every decompressor takes ``max_size`` and raises :class:`CorruptRecordError` as soon as
the output would exceed it, so a compression bomb never allocates unboundedly.
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum

import cramjam
import lz4.block
import lz4.frame
import zstandard

from kwire.records.errors import CorruptRecordError
from kwire.records.varint import BytesLike, read_unsigned_varint


class CompressionType(IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


DEFAULT_MAX_UNCOMPRESSED_SIZE = 64 * 1024 * 1024

# Kafka's defaults (compression.*.level); lz4 level 9 selects the fast compressor.
GZIP_DEFAULT_LEVEL = 6
LZ4_DEFAULT_LEVEL = 9
ZSTD_DEFAULT_LEVEL = 3

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK_SIZE = 32 * 1024
_INT32 = struct.Struct(">i")

_LZ4_MAGIC = b"\x04\x22\x4d\x18"
# FLG 0x60, BD 0x40 and their xxh32-derived header checksum 0x82 are constant for Kafka.
_LZ4_KAFKA_HEADER = _LZ4_MAGIC + b"\x60\x40\x82"
_LZ4_BLOCK_SIZE = 64 * 1024
_LZ4_UNCOMPRESSED_FLAG = 0x80000000
_UINT32_LE = struct.Struct("<I")


def compress(codec: CompressionType, data: BytesLike, level: int | None = None) -> bytes:
    """Compress ``data`` (the concatenated records of a batch) with ``codec``."""
    if codec == CompressionType.NONE:
        return bytes(data)
    if codec == CompressionType.GZIP:
        return _gzip_compress(data, GZIP_DEFAULT_LEVEL if level is None else level)
    if codec == CompressionType.SNAPPY:
        return _xerial_compress(data)
    if codec == CompressionType.LZ4:
        return _lz4_compress(data, LZ4_DEFAULT_LEVEL if level is None else level)
    if codec == CompressionType.ZSTD:
        cctx = zstandard.ZstdCompressor(
            level=ZSTD_DEFAULT_LEVEL if level is None else level,
            write_content_size=False,
            write_checksum=False,
        )
        # zstd-jni streams: data, then a flush on close of the buffered stream, then end.
        cobj = cctx.compressobj()
        out = cobj.compress(data)
        out += cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        out += cobj.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
        return out
    raise ValueError(f"unknown compression codec {codec!r}")


def decompress(
    codec: CompressionType,
    data: BytesLike,
    max_size: int = DEFAULT_MAX_UNCOMPRESSED_SIZE,
    at: int | None = None,
) -> bytes:
    """Decompress; ``at`` is the byte offset reported in errors (the batch position)."""
    try:
        if codec == CompressionType.NONE:
            out = bytes(data)
        elif codec == CompressionType.GZIP:
            out = _gzip_decompress(data, max_size)
        elif codec == CompressionType.SNAPPY:
            out = _xerial_decompress(data, max_size)
        elif codec == CompressionType.LZ4:
            out = _lz4_decompress(data, max_size)
        elif codec == CompressionType.ZSTD:
            out = _zstd_decompress(data, max_size)
        else:
            raise CorruptRecordError(f"unknown compression codec id {int(codec)}")
    except CorruptRecordError as e:
        raise CorruptRecordError(f"{codec.name.lower()}: {e.reason}", at) from None
    except (
        zlib.error,
        zstandard.ZstdError,
        cramjam.DecompressionError,
        RuntimeError,
        ValueError,
        OSError,
    ) as e:
        raise CorruptRecordError(f"{codec.name.lower()} decompression failed: {e}", at) from None
    if len(out) > max_size:
        raise CorruptRecordError(f"decompressed size exceeds limit of {max_size} bytes", at)
    return out


def _too_big(max_size: int) -> CorruptRecordError:
    return CorruptRecordError(f"decompressed size exceeds limit of {max_size} bytes")


# java.util.zip.GZIPOutputStream's fixed header: no flags, mtime 0, XFL 0, OS 255.
_GZIP_HEADER = bytes.fromhex("1f8b08000000000000ff")


def _gzip_compress(data: BytesLike, level: int) -> bytes:
    deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(data) + deflater.flush()
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return _GZIP_HEADER + body + trailer


def _gzip_decompress(data: BytesLike, max_size: int) -> bytes:
    out = bytearray()
    rest = bytes(data)
    if not rest:
        raise CorruptRecordError("empty gzip stream")
    while True:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        chunk = d.decompress(rest, max_size + 1 - len(out))
        out += chunk
        if len(out) > max_size:
            raise _too_big(max_size)
        if not d.eof:
            if d.unconsumed_tail:
                raise _too_big(max_size)
            raise CorruptRecordError("truncated gzip stream")
        rest = d.unused_data
        # GZIPInputStream reads further members and silently ignores trailing junk.
        if len(rest) < 10 or rest[:2] != b"\x1f\x8b":
            return bytes(out)


def _xerial_compress(data: BytesLike) -> bytes:
    view = memoryview(data)
    out = bytearray(_XERIAL_HEADER)
    for start in range(0, len(view), _XERIAL_BLOCK_SIZE):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK_SIZE]))
        out += _INT32.pack(len(block))
        out += block
    return bytes(out)


def _raw_snappy(block: BytesLike, budget: int, max_size: int) -> bytes:
    # The raw format starts with the uncompressed length: check it before allocating.
    length, _ = read_unsigned_varint(block, 0, len(block))
    if length > budget:
        raise CorruptRecordError(
            f"decompressed size exceeds limit of {max_size} bytes (block claims {length})"
        )
    return bytes(cramjam.snappy.decompress_raw(block))


def _xerial_decompress(data: BytesLike, max_size: int) -> bytes:
    view = memoryview(data)
    if len(view) < len(_XERIAL_HEADER) or bytes(view[:8]) != _XERIAL_MAGIC:
        return _raw_snappy(view, max_size, max_size)
    version, _compatible = struct.unpack_from(">ii", view, 8)
    if version < 1:
        raise CorruptRecordError(f"unsupported xerial snappy version {version}")
    out = bytearray()
    pos = len(_XERIAL_HEADER)
    while pos < len(view):
        # snappy-java tolerates concatenated streams: a repeated header starts a new one.
        if bytes(view[pos : pos + 8]) == _XERIAL_MAGIC:
            pos += len(_XERIAL_HEADER)
            continue
        if len(view) - pos < 4:
            raise CorruptRecordError("truncated xerial chunk length")
        (size,) = _INT32.unpack_from(view, pos)
        pos += 4
        if size < 0 or size > len(view) - pos:
            raise CorruptRecordError(f"bad xerial chunk length {size}")
        out += _raw_snappy(view[pos : pos + size], max_size - len(out), max_size)
        pos += size
    return bytes(out)


def _lz4_compress(data: BytesLike, level: int) -> bytes:
    view = memoryview(data)
    out = bytearray(_LZ4_KAFKA_HEADER)
    for start in range(0, len(view), _LZ4_BLOCK_SIZE):
        block = bytes(view[start : start + _LZ4_BLOCK_SIZE])
        if level == LZ4_DEFAULT_LEVEL:
            packed = lz4.block.compress(block, mode="default", store_size=False)
        else:
            packed = lz4.block.compress(
                block, mode="high_compression", compression=level, store_size=False
            )
        if len(packed) >= len(block):
            out += _UINT32_LE.pack(len(block) | _LZ4_UNCOMPRESSED_FLAG)
            out += block
        else:
            out += _UINT32_LE.pack(len(packed))
            out += packed
    out += b"\x00\x00\x00\x00"
    return bytes(out)


def _lz4_decompress(data: BytesLike, max_size: int) -> bytes:
    view = memoryview(data)
    if len(view) < 7:
        raise CorruptRecordError("truncated lz4 frame header")
    if bytes(view[:4]) != _LZ4_MAGIC:
        raise CorruptRecordError("bad lz4 frame magic")
    flg, bd = view[4], view[5]
    if flg & 0x03:
        raise CorruptRecordError("lz4 FLG reserved bits set")
    if not flg & 0x20:
        raise CorruptRecordError("lz4 dependent blocks are unsupported")
    if flg >> 6 != 1:
        raise CorruptRecordError(f"lz4 frame version {flg >> 6} is unsupported")
    if bd & 0x8F or not 4 <= (bd >> 4) & 0x7 <= 7:
        raise CorruptRecordError(f"bad lz4 BD byte {bd:#x}")
    # The C library checks the header checksum and any block checksums for us.
    dec = lz4.frame.LZ4FrameDecompressor()
    out = dec.decompress(bytes(view), max_length=max_size + 1)
    if len(out) > max_size:
        raise _too_big(max_size)
    if not dec.eof:
        raise CorruptRecordError("truncated lz4 frame")
    return bytes(out)


_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE_MASK = 0xFFFFFFF0
_ZSTD_SKIPPABLE_MAGIC = 0x184D2A50


def _check_zstd_frames(view: memoryview) -> None:
    """Walk frame and block headers (no decoding) so a truncated or garbage-suffixed
    stream is an error; the streaming decoder would silently stop short."""
    pos, end = 0, len(view)
    if end == 0:
        raise CorruptRecordError("empty zstd stream")
    while pos < end:
        if end - pos < 4:
            raise CorruptRecordError("trailing bytes after zstd frame", pos)
        magic = int.from_bytes(view[pos : pos + 4], "little")
        if magic & _ZSTD_SKIPPABLE_MASK == _ZSTD_SKIPPABLE_MAGIC:
            if end - pos < 8:
                raise CorruptRecordError("truncated skippable frame", pos)
            pos += 8 + int.from_bytes(view[pos + 4 : pos + 8], "little")
            if pos > end:
                raise CorruptRecordError("truncated skippable frame")
            continue
        if magic != _ZSTD_MAGIC:
            raise CorruptRecordError(f"bad zstd frame magic {magic:#x}", pos)
        pos += 4
        if pos >= end:
            raise CorruptRecordError("truncated zstd frame header", pos)
        fhd = view[pos]
        single_segment = (fhd >> 5) & 1
        fcs_size = (1 if single_segment else 0, 2, 4, 8)[fhd >> 6]
        header_size = 1 + (0 if single_segment else 1) + (0, 1, 2, 4)[fhd & 3] + fcs_size
        pos += header_size
        while True:
            if end - pos < 3:
                raise CorruptRecordError("truncated zstd block header", pos)
            bh = int.from_bytes(view[pos : pos + 3], "little")
            block_type = (bh >> 1) & 3
            pos += 3 + (1 if block_type == 1 else bh >> 3)
            if block_type == 3:
                raise CorruptRecordError("reserved zstd block type", pos)
            if pos > end:
                raise CorruptRecordError("truncated zstd block")
            if bh & 1:
                break
        if fhd & 0x04:
            pos += 4
            if pos > end:
                raise CorruptRecordError("truncated zstd checksum")


def _zstd_decompress(data: BytesLike, max_size: int) -> bytes:
    view = memoryview(data)
    _check_zstd_frames(view)
    reader = zstandard.ZstdDecompressor().stream_reader(bytes(view), read_across_frames=True)
    out = bytearray()
    while True:
        chunk = reader.read(min(1 << 20, max_size + 1 - len(out)))
        if not chunk:
            return bytes(out)
        out += chunk
        if len(out) > max_size:
            raise _too_big(max_size)
