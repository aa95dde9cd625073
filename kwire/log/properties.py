"""``meta.properties`` as Kafka 3.9 writes it (java.util.Properties.store with an empty
comment): ``#``, ``#<date>``, then ``key=value`` lines in the iteration order of the
Properties' internal ConcurrentHashMap, which we reproduce so the file is identical."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kwire.log.checkpoints import uuid_from_kafka_string, uuid_to_kafka_string
from kwire.log.files import atomic_write

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class PropertiesFormatError(ValueError):
    """meta.properties is missing a required key or has a bad value."""


def _java_string_hash(text: str) -> int:
    # Java hashes UTF-16 code units, with int overflow.
    raw = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(raw), 2):
        h = (31 * h + (raw[i] << 8 | raw[i + 1])) & 0xFFFFFFFF
    return h


def java_properties_order(keys: list[str]) -> list[str]:
    """Iteration order of a fresh ``java.util.Properties`` holding ``keys`` inserted in
    this order: bins of a 16-slot ConcurrentHashMap, insertion order within a bin.
    Exact for up to 12 keys (the map's first resize threshold)."""
    if len(keys) > 12:
        raise ValueError("table resizes above 12 keys; order not modelled")

    def bin_of(key: str) -> int:
        h = _java_string_hash(key)
        return ((h ^ (h >> 16)) & 0x7FFFFFFF) & 15

    return sorted(keys, key=lambda k: (bin_of(k), keys.index(k)))


def _escape(text: str, is_key: bool) -> str:
    out = []
    for i, ch in enumerate(text):
        if ch == " " and (is_key or i == 0):
            out.append("\\ ")
        elif ch in "\\=:#!":
            out.append("\\" + ch)
        elif ch in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[ch])
        else:
            out.append(ch)
    return "".join(out)


def java_date(epoch_seconds: float) -> str:
    """``java.util.Date.toString()`` in UTC: ``Sun Nov 22 07:02:30 UTC 2026``."""
    t = time.gmtime(epoch_seconds)
    return (
        f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} UTC {t.tm_year}"
    )


def format_properties(props: dict[str, str], now: float | None = None) -> bytes:
    lines = ["#", "#" + java_date(time.time() if now is None else now)]
    for key in java_properties_order(list(props)):
        lines.append(f"{_escape(key, True)}={_escape(props[key], False)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def parse_properties(data: bytes) -> dict[str, str]:
    """The subset of Properties.load that meta.properties files use: comments, ``=`` /
    ``:`` / whitespace separators, backslash escapes and line continuations."""
    text = data.decode("utf-8")
    props: dict[str, str] = {}
    logical = ""
    for raw_line in text.splitlines():
        line = raw_line.lstrip(" \t\f")
        if not logical and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            logical += line[:-1]
            continue
        logical += line
        key, value = _split_property(logical)
        props[key] = value
        logical = ""
    if logical:
        key, value = _split_property(logical)
        props[key] = value
    return props


def _unescape(text: str) -> str:
    out = []
    it = iter(text)
    for ch in it:
        if ch == "\\":
            nxt = next(it, "")
            out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


def _split_property(line: str) -> tuple[str, str]:
    # The key ends at the first unescaped '=', ':' or whitespace; then whitespace, at
    # most one '=' or ':', and more whitespace separate it from the value.
    i = 0
    while i < len(line) and line[i] not in "=: \t\f":
        i += 2 if line[i] == "\\" else 1
    key = line[:i]
    j = i
    while j < len(line) and line[j] in " \t\f":
        j += 1
    if j < len(line) and line[j] in "=:":
        j += 1
    while j < len(line) and line[j] in " \t\f":
        j += 1
    return _unescape(key), _unescape(line[j:])


@dataclass(frozen=True, slots=True)
class MetaProperties:
    """The contents of ``meta.properties`` (version 1 for KRaft)."""

    cluster_id: str
    node_id: int
    directory_id: uuid.UUID | None = None
    version: int = 1

    def to_properties(self) -> dict[str, str]:
        # Insertion order matters for ConcurrentHashMap bin collisions; Kafka's order.
        props = {"version": str(self.version), "cluster.id": self.cluster_id}
        props["node.id" if self.version == 1 else "broker.id"] = str(self.node_id)
        if self.directory_id is not None:
            props["directory.id"] = uuid_to_kafka_string(self.directory_id)
        return props

    @classmethod
    def from_properties(cls, props: dict[str, str]) -> MetaProperties:
        try:
            version = int(props.get("version", "0"))
            if version not in (0, 1):
                raise PropertiesFormatError(f"unsupported meta.properties version {version}")
            id_key = "node.id" if version == 1 else "broker.id"
            if "cluster.id" not in props or id_key not in props:
                raise PropertiesFormatError(f"meta.properties needs cluster.id and {id_key}")
            directory = props.get("directory.id")
            return cls(
                cluster_id=props["cluster.id"],
                node_id=int(props[id_key]),
                directory_id=uuid_from_kafka_string(directory) if directory else None,
                version=version,
            )
        except ValueError as e:
            if isinstance(e, PropertiesFormatError):
                raise
            raise PropertiesFormatError(f"bad meta.properties value: {e}") from None


def read_meta_properties(path: Path) -> MetaProperties:
    return MetaProperties.from_properties(parse_properties(path.read_bytes()))


def write_meta_properties(path: Path, meta: MetaProperties, now: float | None = None) -> None:
    atomic_write(path, format_properties(meta.to_properties(), now))
