"""The metadata image of a running controller, read over the network as a non-replica
fetcher (``kwire shell --bootstrap-controller HOST:PORT``).

Kafka 3.9's KafkaRaftClient serves a Fetch whose replica id is negative (ReplicaState.ReplicaId
from Fetch v15, the top-level ReplicaId before) like any other, but LeaderState
.updateReplicaState ignores it: no observer is tracked and the high watermark does not
move; FetchSnapshot is served the same way. kwire's leader does the same
(kwire.raft.serving). So the shell opens nothing on the controller: it is one client
connection, authenticated and authorized as any (Fetch and FetchSnapshot need
CLUSTER_ACTION on the cluster when an authorizer is set).

The conversation:

1. Fetch at offset 0 with epoch 0: a leader of a later epoch answers FENCED_LEADER_EPOCH,
   and any controller names the leader (CurrentLeader, and from Fetch v17 the leader's
   endpoint in NodeEndpoints); NOT_LEADER_OR_FOLLOWER and UNKNOWN_LEADER_EPOCH likewise.
   The shell takes the epoch, moves to the leader and asks again.
2. An answer naming a snapshot (SnapshotId): FetchSnapshot from position 0 until its size,
   spooled to a temporary file and loaded (all records at its end offset - 1), then Fetch
   from the snapshot's end.
3. Records: the whole batches below the answer's high watermark are applied (only
   committed metadata is shown, as Kafka's MetadataLoader shows it); the next Fetch starts
   after them. Done once the fetch offset reaches the high watermark.

Fetches do not wait (MaxWaitMs 0). The read gives up after ``timeout_s`` (default 60 s)
without progress (no batch or snapshot taken), so a large image takes as long as it needs
while a lost leader or a silent controller ends it; a leader that cannot be found, a
refused connection, an error code or a diverging log raise ShellLoadError with a clear
message.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from kwire.controller.image import MetadataImage
from kwire.log.snapshot_io import read_last_contained_log_timestamp
from kwire.log.snapshots import SnapshotId, snapshot_path
from kwire.protocol.error_codes import ErrorCode
from kwire.protocol.messages.fetch import FetchRequest, FetchResponse
from kwire.protocol.messages.fetch_snapshot import FetchSnapshotRequest, FetchSnapshotResponse
from kwire.raft.state import METADATA_PARTITION, METADATA_TOPIC, METADATA_TOPIC_ID
from kwire.records import IncompleteBatchError, iter_batch_headers
from kwire.server.client import KafkaClient
from kwire.server.peer_channel import choose_version
from kwire.tools.shell_client import ClientSecurity, connect, error_name, security_from_properties
from kwire.tools.shell_format import Provenance
from kwire.tools.shell_load import ImageBuilder, ShellLoadError, iter_file_batches

__all__ = ["fetch_image", "parse_bootstrap"]

FETCH_KEY, FETCH_SNAPSHOT_KEY = 1, 59
MAX_FETCH_BYTES = 8 * 1024 * 1024
RETRY_DELAY_S = 0.1
LEADER_ERRORS = (
    ErrorCode.FENCED_LEADER_EPOCH,
    ErrorCode.NOT_LEADER_OR_FOLLOWER,
    ErrorCode.UNKNOWN_LEADER_EPOCH,
)


def parse_bootstrap(text: str) -> list[tuple[str, int]]:
    """``host:port[,host:port...]``; raises ShellLoadError for a malformed address."""
    addresses = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ShellLoadError(f"--bootstrap-controller: bad address {item!r} (HOST:PORT)")
        addresses.append((host.strip("[]"), int(port)))
    if not addresses:
        raise ShellLoadError("--bootstrap-controller: no address given")
    return addresses


def fetch_image(
    bootstrap: str, command_config: str | None, *, timeout_s: float = 60.0
) -> tuple[MetadataImage, Provenance]:
    """The committed image of the controller quorum at ``bootstrap`` (see the module
    docstring); raises ShellLoadError."""
    addresses = parse_bootstrap(bootstrap)
    security = security_from_properties(command_config)
    return trio.run(_fetch_within, addresses, security, timeout_s)


async def _fetch_within(
    addresses: list[tuple[str, int]], security: ClientSecurity, timeout_s: float
) -> tuple[MetadataImage, Provenance]:
    fetcher = _Fetcher(addresses, security, timeout_s=timeout_s)
    try:
        with fetcher.scope:
            fetcher.scope.deadline = trio.current_time() + timeout_s
            return await fetcher.run()
        raise ShellLoadError(
            f"no progress in {timeout_s:g} s reading the metadata ({fetcher.progress()})"
        )
    except (OSError, trio.BrokenResourceError, ConnectionError) as error:
        raise ShellLoadError(f"{fetcher.address_text()}: {error}") from None
    finally:
        await fetcher.close()


@dataclass(slots=True)
class _Fetcher:
    addresses: list[tuple[str, int]]
    security: ClientSecurity
    timeout_s: float = 60.0
    # Its deadline moves timeout_s ahead at each step of progress.
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    builder: ImageBuilder = field(default_factory=ImageBuilder)
    address: tuple[str, int] = ("", 0)
    epoch: int = 0
    fetch_offset: int = 0
    last_fetched_epoch: int = 0
    _clients: dict[tuple[str, int], tuple[KafkaClient, dict[int, tuple[int, int]]]] = field(
        default_factory=dict
    )

    def made_progress(self) -> None:
        self.scope.deadline = trio.current_time() + self.timeout_s

    def address_text(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def progress(self) -> str:
        return f"at offset {self.fetch_offset} from {self.address_text()}, epoch {self.epoch}"

    async def close(self) -> None:
        for client, _ in self._clients.values():
            with trio.move_on_after(1):
                await client.aclose()

    async def _client(self) -> tuple[KafkaClient, dict[int, tuple[int, int]]]:
        found = self._clients.get(self.address)
        if found is None:
            found = self._clients[self.address] = await connect(*self.address, self.security)
        return found

    async def run(self) -> tuple[MetadataImage, Provenance]:
        self.address = self.addresses[0]
        tried: set[tuple[str, int]] = set()
        while True:
            client, versions = await self._client()
            version = choose_version(FETCH_KEY, versions.get(FETCH_KEY))
            if version is None:
                raise ShellLoadError(f"{self.address_text()}: serves no Fetch version kwire speaks")
            answer = await client.request(self._fetch_request(), version)
            assert isinstance(answer, FetchResponse)
            partition = _only_partition(answer)
            error = answer.error_code or partition.error_code
            if error in LEADER_ERRORS:
                tried.add(self.address)
                await self._follow_leader(answer, partition, tried)
                continue
            if error != ErrorCode.NONE:
                raise ShellLoadError(f"Fetch from {self.address_text()}: {error_name(error)}")
            if partition.snapshot_id.end_offset >= 0 and partition.snapshot_id.epoch >= 0:
                snapshot = SnapshotId(partition.snapshot_id.end_offset, partition.snapshot_id.epoch)
                await self._load_snapshot(client, versions, snapshot)
                continue
            if partition.diverging_epoch.epoch >= 0:
                raise ShellLoadError(
                    f"the log diverged at epoch {partition.diverging_epoch.epoch} below "
                    f"offset {self.fetch_offset}"
                )
            high_watermark = partition.high_watermark
            before = self.fetch_offset
            self._apply(bytes(partition.records or b""), high_watermark)
            if 0 <= high_watermark <= self.fetch_offset:
                return self.builder.finish()
            if self.fetch_offset != before:
                self.made_progress()
            else:
                # Nothing committed to take yet (a new leader has no high watermark).
                await trio.sleep(RETRY_DELAY_S)

    def _fetch_request(self) -> FetchRequest:
        partition = FetchRequest.FetchPartition(
            partition=METADATA_PARTITION,
            current_leader_epoch=self.epoch,
            fetch_offset=self.fetch_offset,
            last_fetched_epoch=self.last_fetched_epoch,
            partition_max_bytes=MAX_FETCH_BYTES,
        )
        return FetchRequest(
            replica_id=-1,
            replica_state=FetchRequest.ReplicaState(replica_id=-1, replica_epoch=-1),
            max_wait_ms=0,
            min_bytes=0,
            max_bytes=MAX_FETCH_BYTES,
            topics=[
                FetchRequest.FetchTopic(
                    topic=METADATA_TOPIC, topic_id=METADATA_TOPIC_ID, partitions=[partition]
                )
            ],
        )

    async def _follow_leader(
        self,
        answer: FetchResponse,
        partition: FetchResponse.PartitionData,
        tried: set[tuple[str, int]],
    ) -> None:
        leader = partition.current_leader
        if leader.leader_epoch > self.epoch:
            self.epoch = leader.leader_epoch
            if self.last_fetched_epoch > self.epoch:
                self.last_fetched_epoch = self.epoch
            return  # ask the same node again at the new epoch: it may be the leader
        endpoint = next((e for e in answer.node_endpoints if e.node_id == leader.leader_id), None)
        if endpoint is not None and (endpoint.host, endpoint.port) != self.address:
            self.address = (endpoint.host, endpoint.port)
            return
        untried = [a for a in self.addresses if a not in tried]
        if untried:
            self.address = untried[0]
            return
        tried.clear()  # no leader known yet (an election): ask again shortly
        await trio.sleep(RETRY_DELAY_S)

    def _apply(self, records: bytes, high_watermark: int) -> None:
        try:
            for pos, header in iter_batch_headers(records, allow_truncated_tail=True):
                if header.last_offset >= high_watermark:
                    break  # not committed yet: fetched again once it is
                if not header.is_control:
                    self.builder.add_batch(
                        records, pos, header, where="fetched records", skip_below=self.fetch_offset
                    )
                self.fetch_offset = header.next_offset
                self.last_fetched_epoch = header.partition_leader_epoch
        except (IncompleteBatchError, ValueError) as error:
            if isinstance(error, ShellLoadError):
                raise
            raise ShellLoadError(
                f"fetched records at offset {self.fetch_offset}: {error}"
            ) from None

    async def _load_snapshot(
        self, client: KafkaClient, versions: dict[int, tuple[int, int]], snapshot: SnapshotId
    ) -> None:
        version = choose_version(FETCH_SNAPSHOT_KEY, versions.get(FETCH_SNAPSHOT_KEY))
        if version is None:
            raise ShellLoadError(f"{self.address_text()}: serves no FetchSnapshot version")
        with tempfile.TemporaryDirectory(prefix="kwire-shell-") as spool:
            path = snapshot_path(Path(spool), snapshot)
            with open(path, "wb") as out:
                position, size = 0, None
                while size is None or position < size:
                    answer = await client.request(
                        self._snapshot_request(snapshot, position), version
                    )
                    assert isinstance(answer, FetchSnapshotResponse)
                    part = _only_snapshot_partition(answer)
                    error = answer.error_code or part.error_code
                    if error != ErrorCode.NONE:
                        raise ShellLoadError(
                            f"FetchSnapshot {snapshot} from {self.address_text()}: "
                            f"{error_name(error)}"
                        )
                    chunk = bytes(part.unaligned_records or b"")
                    if part.position != position or (not chunk and part.size > position):
                        raise ShellLoadError(f"FetchSnapshot {snapshot}: no progress at {position}")
                    out.write(chunk)
                    position += len(chunk)
                    self.made_progress()
                    size = part.size
            offset = snapshot.end_offset - 1
            for data, header in iter_file_batches(path):
                if not header.is_control:
                    self.builder.add_batch(data, 0, header, where=str(snapshot), at_offset=offset)
            time_ms = read_last_contained_log_timestamp(Path(spool), snapshot)
        self.builder.provenance = Provenance(offset, snapshot.epoch, time_ms)
        self.fetch_offset, self.last_fetched_epoch = snapshot.end_offset, snapshot.epoch
        self.made_progress()

    def _snapshot_request(self, snapshot: SnapshotId, position: int) -> FetchSnapshotRequest:
        return FetchSnapshotRequest(
            replica_id=-1,
            max_bytes=MAX_FETCH_BYTES,
            topics=[
                FetchSnapshotRequest.TopicSnapshot(
                    name=METADATA_TOPIC,
                    partitions=[
                        FetchSnapshotRequest.PartitionSnapshot(
                            partition=METADATA_PARTITION,
                            current_leader_epoch=self.epoch,
                            snapshot_id=FetchSnapshotRequest.SnapshotId(
                                end_offset=snapshot.end_offset, epoch=snapshot.epoch
                            ),
                            position=position,
                        )
                    ],
                )
            ],
        )


def _only_partition(answer: FetchResponse) -> FetchResponse.PartitionData:
    partitions: Sequence[FetchResponse.PartitionData] = (
        answer.responses[0].partitions if answer.responses else []
    )
    if not partitions:
        if answer.error_code:
            return FetchResponse.PartitionData(error_code=answer.error_code)
        raise ShellLoadError("Fetch: the answer holds no partition")
    return partitions[0]


def _only_snapshot_partition(
    answer: FetchSnapshotResponse,
) -> FetchSnapshotResponse.PartitionSnapshot:
    if not answer.topics or not answer.topics[0].partitions:
        if answer.error_code:
            return FetchSnapshotResponse.PartitionSnapshot(error_code=answer.error_code)
        raise ShellLoadError("FetchSnapshot: the answer holds no partition")
    return answer.topics[0].partitions[0]
