"""Timelines of a metadata log: each record that concerns a broker or a topic, in words,
with its offset and its batch's append time.

The log is replayed from where history starts (``MetadataDirectory.history_start``: offset
0, or the oldest snapshot the log continues from when it was cleaned); each record is put
in words against the image just before it and the broker changes of its batch
(kwire.controller.record_words), then applied. NoOpRecords are left out. The raft
layer's control records (who led each epoch, voter changes) come on request. A record
inside a metadata transaction says so (it takes effect at the transaction's end, or never
if it is aborted: the AbortTransactionRecord's line says from which offset on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from kwire.controller.image_load import ImageLoader
from kwire.controller.record_words import (
    Subjects,
    batch_context,
    record_sentence,
    record_subjects,
)
from kwire.controller.transactions import MARKERS
from kwire.protocol._codec import Message
from kwire.protocol.messages.control.kraft_version_record import KRaftVersionRecord
from kwire.protocol.messages.control.leader_change_message import LeaderChangeMessage
from kwire.protocol.messages.control.voters_record import VotersRecord
from kwire.protocol.messages.metadata_records.no_op_record import NoOpRecord
from kwire.tools.history_source import MetadataDirectory

__all__ = [
    "Filter",
    "TimelineLine",
    "broker_filter",
    "control_sentence",
    "timeline",
    "topic_filter",
]

Filter = Callable[[Subjects], bool]


@dataclass(frozen=True, slots=True)
class TimelineLine:
    """One record in words: its offset, its batch's append time (ms) and the sentence."""

    offset: int
    timestamp_ms: int
    sentence: str

    def text(self) -> str:
        """``offset  time (UTC, ms)  sentence``."""
        return f"{self.offset:>8}  {utc_text(self.timestamp_ms)}  {self.sentence}"


def utc_text(timestamp_ms: int) -> str:
    """``2026-11-22T07:23:55.652Z`` for a time in ms since the epoch."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{timestamp_ms % 1000:03d}Z"


def control_sentence(record: Message, epoch: int) -> str:
    """A raft control record in words (Kafka's LeaderChangeMessage, KRaftVersionRecord,
    VotersRecord; KIP-595, KIP-853), ``epoch`` being its batch's leader epoch."""
    match record:
        case LeaderChangeMessage():
            granted = ", ".join(str(v.voter_id) for v in record.granting_voters)
            voters = ", ".join(str(v.voter_id) for v in record.voters)
            return (
                f"controller {record.leader_id} became the quorum leader of epoch {epoch}"
                f" (voters [{voters}], votes from [{granted}]) -- LeaderChangeMessage"
            )
        case KRaftVersionRecord():
            return f"kraft.version {record.kraft_version} -- KRaftVersionRecord"
        case VotersRecord():
            voters = "; ".join(
                f"{v.voter_id} ({', '.join(f'{e.name}://{e.host}:{e.port}' for e in v.endpoints)})"
                for v in record.voters
            )
            return f"the voters are now {voters} -- VotersRecord"
        case _:
            return type(record).__name__


def broker_filter(broker: int) -> Filter:
    """Records concerning ``broker`` (see record_words.Subjects)."""
    return lambda subjects: broker in subjects.brokers


def topic_filter(topic: str, partition: int | None = None) -> Filter:
    """Records of ``topic`` (of its partition ``partition`` and the topic as a whole)."""

    def select(subjects: Subjects) -> bool:
        if subjects.topic != topic:
            return False
        return partition is None or subjects.partition in (None, partition)

    return select


def timeline(
    directory: MetadataDirectory,
    select: Filter,
    *,
    start: int = 0,
    end: int | None = None,
    notes: list[str] | None = None,
    quorum: bool = False,
) -> Iterator[TimelineLine]:
    """The records that ``select`` keeps, with offsets in ``[start, end)``, and with
    ``quorum`` the raft layer's control records (leader elections, kraft.version and
    voter set changes). When history starts above ``start`` (a cleaned log) a sentence
    saying so is appended to ``notes``. Raises HistoryUnavailable when no history can be
    rebuilt."""
    loaded = directory.history_start()
    if loaded.end_offset > start and notes is not None:
        notes.append(
            f"the log below offset {loaded.end_offset} was cleaned: history starts at"
            f" snapshot {loaded.snapshot.end_offset if loaded.snapshot else 0}"
        )
    image = loaded.image
    loader = ImageLoader(image)
    try:
        for batch in directory.batches(loaded.end_offset, end, control=quorum):
            if batch.is_control:
                for offset, record, _ in batch.records:
                    if offset >= start:
                        sentence = control_sentence(record, batch.epoch)
                        yield TimelineLine(offset, batch.timestamp_ms, sentence)
                continue
            context = batch_context(record for _, record, _ in batch.records)
            for offset, record, version in batch.records:
                wanted = offset >= start and type(record) is not NoOpRecord
                if wanted and select(record_subjects(record, image)):
                    sentence = record_sentence(record, image, context)
                    start_of = image.transaction_start_offset
                    if start_of >= 0 and type(record) not in MARKERS:
                        # It takes effect at the End, or never (an Abort, or no end).
                        words, _, summary = sentence.partition(" -- ")
                        sentence = (
                            f"{words} (in the metadata transaction begun at offset {start_of})"
                            f" -- {summary}"
                        )
                    yield TimelineLine(offset, batch.timestamp_ms, sentence)
                loader.replay(record, version, offset)
    finally:
        loader.finish()
