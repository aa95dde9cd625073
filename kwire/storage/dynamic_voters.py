"""``--initial-controllers`` and ``--standalone``: the KIP-853 voters a format starts with.

As Kafka 4.3.1's ``org.apache.kafka.raft.DynamicVoter`` / ``DynamicVoters``: the text is a
comma-separated list of ``id@host:port:directory-id`` (an IPv6 host in brackets), and a
refusal carries Kafka's message (an IllegalArgumentException there, printed here as one
line by ``python -m kwire.storage``).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from kwire.raft.voter_set import (
    SUPPORTED_KRAFT_VERSIONS,
    ReplicaKey,
    VoterEndpoint,
    VoterNode,
    VoterSet,
)

__all__ = ["DynamicVoter", "DynamicVoterError", "DynamicVoters", "parse_kafka_uuid"]

_INT_MAX = 2**31 - 1
_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class DynamicVoterError(ValueError):
    """The voters text does not parse; the message is Kafka's."""


def _java_int(text: str) -> int | None:
    # Integer.parseInt: an optional sign and decimal digits, within 32 bits.
    body = text[1:] if text[:1] in ("-", "+") else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    return value if -_INT_MAX - 1 <= value <= _INT_MAX else None


def parse_kafka_uuid(text: str) -> uuid.UUID:
    """Kafka's Uuid.fromString: at most 24 characters of URL-safe base64 (padding
    optional) decoding to 16 bytes. Raises ValueError."""
    body = text.rstrip("=")
    if len(text) > 24 or not body or set(body) - _BASE64URL or len(body) % 4 == 1:
        raise ValueError(f"bad Kafka uuid {text!r}")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    if len(raw) != 16:
        raise ValueError(f"bad Kafka uuid {text!r}: {len(raw)} bytes")
    return uuid.UUID(bytes=raw)


def _kafka_uuid_text(value: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(value.bytes).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class DynamicVoter:
    """One ``id@host:port:directory-id``."""

    node_id: int
    host: str
    port: int
    directory_id: uuid.UUID

    @classmethod
    def parse(cls, text: str) -> DynamicVoter:
        text = text.strip()
        at = text.find("@")
        if at < 0:
            raise DynamicVoterError("No @ found in dynamic voter string.")
        if at == 0:
            raise DynamicVoterError("Invalid @ at beginning of dynamic voter string.")
        node_id = _java_int(text[:at])
        if node_id is None:
            raise DynamicVoterError("Failed to parse node id in dynamic voter string.")
        if node_id < 0:
            raise DynamicVoterError(f"Invalid negative node id {node_id} in dynamic voter string.")
        rest = text[at + 1 :]
        if not rest:
            raise DynamicVoterError("No hostname found after node id.")
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise DynamicVoterError(
                    "Hostname began with left bracket, but no right bracket was found."
                )
            host, rest = rest[1:end], rest[end + 1 :]
        else:
            colon = rest.find(":")
            if colon < 0:
                raise DynamicVoterError("No colon following hostname could be found.")
            host, rest = rest[:colon], rest[colon:]
        if not rest.startswith(":"):
            raise DynamicVoterError("Port section must start with a colon.")
        rest = rest[1:]
        colon = rest.find(":")
        if colon < 0:
            raise DynamicVoterError("No colon following port could be found.")
        port = _java_int(rest[:colon])
        if port is None:
            raise DynamicVoterError("Failed to parse port in dynamic voter string.")
        if not 0 <= port <= 65535:
            raise DynamicVoterError(f"Invalid port {port} in dynamic voter string.")
        try:
            directory_id = parse_kafka_uuid(rest[colon + 1 :])
        except ValueError:
            raise DynamicVoterError(
                "Failed to parse directory ID in dynamic voter string."
            ) from None
        return cls(node_id, host, port, directory_id)

    def to_voter_node(self, listener: str) -> VoterNode:
        """DynamicVoter.toVoterNode: one endpoint on the (upper-cased) controller
        listener, kraft.version 0..1 supported."""
        return VoterNode(
            ReplicaKey(self.node_id, self.directory_id),
            (VoterEndpoint(listener.upper(), self.host, self.port),),
            SUPPORTED_KRAFT_VERSIONS,
        )

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.node_id}@{host}:{self.port}:{_kafka_uuid_text(self.directory_id)}"


@dataclass(frozen=True, slots=True)
class DynamicVoters:
    """The voters by node id, ascending (Kafka keeps them in a TreeMap)."""

    voters: tuple[DynamicVoter, ...]

    @classmethod
    def of(cls, voters: Iterable[DynamicVoter]) -> DynamicVoters:
        by_id: dict[int, DynamicVoter] = {}
        for voter in voters:
            if voter.node_id in by_id:
                raise DynamicVoterError(f"Node id {voter.node_id} was specified more than once.")
            by_id[voter.node_id] = voter
        if not by_id:
            raise DynamicVoterError("No voters given.")
        return cls(tuple(by_id[i] for i in sorted(by_id)))

    @classmethod
    def parse(cls, text: str) -> DynamicVoters:
        """DynamicVoters.parse: empty items between commas are skipped."""
        return cls.of(DynamicVoter.parse(item) for item in text.strip().split(",") if item)

    def get(self, node_id: int) -> DynamicVoter | None:
        return next((v for v in self.voters if v.node_id == node_id), None)

    def to_voter_set(self, listener: str) -> VoterSet:
        return VoterSet.from_nodes(v.to_voter_node(listener) for v in self.voters)

    def __str__(self) -> str:
        return ",".join(str(v) for v in self.voters)
