"""Comparing kwire's messages with the genuine ones, field by field and byte for byte,
with named rules for the values that differ by nature.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kwire.protocol._codec import Message
from kwire.protocol.framing import decode_request, decode_response, encode_request, encode_response
from quorum_replay.capture import Exchange


@dataclass(frozen=True, slots=True)
class Difference:
    path: str  # e.g. "topics[0].partitions[0].vote_granted"
    genuine: Any
    kwire: Any


def differences(genuine: Any, kwire: Any, path: str = "") -> list[Difference]:
    """Every leaf where two decoded messages differ."""
    if dataclasses.is_dataclass(genuine) and type(genuine) is type(kwire):
        found = []
        for f in dataclasses.fields(genuine):
            sub = f"{path}.{f.name}" if path else f.name
            found += differences(getattr(genuine, f.name), getattr(kwire, f.name), sub)
        return found
    if isinstance(genuine, list | tuple) and isinstance(kwire, list | tuple):
        if len(genuine) != len(kwire):
            return [Difference(f"{path}.len", len(genuine), len(kwire))]
        found = []
        for i, (g, k) in enumerate(zip(genuine, kwire, strict=True)):
            found += differences(g, k, f"{path}[{i}]")
        return found
    return [] if genuine == kwire else [Difference(path, genuine, kwire)]


@dataclass(frozen=True, slots=True)
class Rule:
    """A named, narrow exception: in `api`'s `kind` ("answer" or "request") messages, a
    difference at a path that `where` accepts is by nature, for the reason given. A rule
    for one moment of one capture names the exchanges (transcript lines) it covers."""

    name: str
    api: str
    kind: str
    where: Callable[[str], bool]
    why: str
    exchanges: frozenset[int] | None = None

    def excuses(self, exchange: Exchange, kind: str, difference: Difference) -> bool:
        return (
            exchange.api == self.api
            and kind == self.kind
            and (self.exchanges is None or exchange.index in self.exchanges)
            and self.where(difference.path)
        )


@dataclass(slots=True)
class Comparison:
    """kwire's message beside the genuine one."""

    exchange: Exchange
    kind: str  # "answer": kwire answered the genuine request; "request": kwire sent it
    time_ms: int
    kwire: Message
    bytes_equal: bool
    unexcused: list[Difference]
    excused: list[tuple[str, Difference]]  # (rule name, difference)

    @property
    def matches(self) -> bool:
        return not self.unexcused

    def __str__(self) -> str:
        shown = "; ".join(
            f"{d.path}: genuine {d.genuine!r}, kwire {d.kwire!r}" for d in self.unexcused
        )
        return f"{self.exchange} {self.kind}: {shown or 'matches'}"


def _encode(exchange: Exchange, kind: str, message: Message) -> tuple[bytes, Message]:
    if kind == "request":
        raw = encode_request(exchange.header, message)
        return raw, decode_request(raw)[1]
    raw = encode_response(
        exchange.api_key, exchange.api_version, exchange.header.correlation_id, message
    )
    return raw, decode_response(raw, exchange.api_key, exchange.api_version)[1]


def compare(
    exchange: Exchange, kind: str, kwire: Message, time_ms: int, rules: Iterable[Rule]
) -> Comparison:
    genuine = exchange.request if kind == "request" else exchange.response
    genuine_raw = exchange.request_raw if kind == "request" else exchange.response_raw
    raw, decoded = _encode(exchange, kind, kwire)
    unexcused: list[Difference] = []
    excused: list[tuple[str, Difference]] = []
    for difference in differences(genuine, decoded):
        rule = next((r for r in rules if r.excuses(exchange, kind, difference)), None)
        if rule is None:
            unexcused.append(difference)
        else:
            excused.append((rule.name, difference))
    return Comparison(exchange, kind, time_ms, kwire, raw == genuine_raw, unexcused, excused)
