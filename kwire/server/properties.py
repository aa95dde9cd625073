"""Kafka's configuration text: java.util.Properties files, value types and the parsers the
configuration modules share. Every bad value raises :class:`ConfigError`, whose message
names the key, the value and what was expected."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
RECORDS_LOG_OVERHEAD = 12
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
DEFAULT_LISTENERS = "PLAINTEXT://:9092"
DEFAULT_LOG_DIR = "/tmp/kafka-logs"
NON_ROUTABLE_HOST = "0.0.0.0"

# Kafka's host[:port] patterns (Utils.HOST_PORT_PATTERN, EndPoint's listener pattern).
_HOST_PORT = re.compile(r"^(?:[0-9a-zA-Z\-%._]*://)?\[?([0-9a-zA-Z\-%._:]*)]?:([0-9]+)$")
_LISTENER = re.compile(r"^(.*)://\[?([0-9a-zA-Z\-%._:]*)]?:(-?[0-9]+)$")


class ConfigError(ValueError):
    """A configuration value is missing, malformed or unsupported."""


# -- java.util.Properties ------------------------------------------------------------------


def _logical_lines(text: str) -> Iterable[str]:
    """Join continuation lines (an odd number of trailing backslashes) and drop comments."""
    pending: str | None = None
    for raw in re.split(r"\r\n|\r|\n", text):
        line = raw.lstrip(" \t\f")
        if pending is None:
            if not line or line[0] in "#!":
                continue
            pending = ""
        backslashes = len(line) - len(line.rstrip("\\"))
        if backslashes % 2 == 1:
            pending += line[:-1]
            continue
        yield pending + line
        pending = None
    if pending:
        yield pending


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if ch != "\\" or i >= len(text):
            out.append(ch)
            continue
        ch = text[i]
        i += 1
        if ch == "u":
            digits = text[i : i + 4]
            if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ConfigError(f"malformed \\uxxxx escape in {text!r}")
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(ch, ch))
    return "".join(out)


def _split_key_value(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line) and line[i] not in "=: \t\f":
        i += 2 if line[i] == "\\" else 1
    key_end = min(i, len(line))
    while i < len(line) and line[i] in " \t\f":
        i += 1
    if i < len(line) and line[i] in "=:":
        i += 1
    while i < len(line) and line[i] in " \t\f":
        i += 1
    return _unescape(line[:key_end]), _unescape(line[i:])


def parse_java_properties(text: str) -> dict[str, str]:
    """``java.util.Properties.load`` semantics: ``#``/``!`` comments, ``key=value``,
    ``key: value`` or ``key value``, backslash continuations and escapes (``\\uXXXX``)."""
    props: dict[str, str] = {}
    for line in _logical_lines(text):
        key, value = _split_key_value(line)
        props[key] = value
    return props


def load_properties(path: Path) -> dict[str, str]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read configuration file {path}: {e.strerror or e}") from None
    # Kafka loads through Properties.load(InputStream), which reads ISO-8859-1.
    return parse_java_properties(raw.decode("latin-1"))


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``--override key=value`` arguments."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {pair!r}: expected key=value")
        out[key.strip()] = value
    return out


# -- value types ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuorumVoter:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A listener: ``NAME://host:port``; ``host`` is "" for all interfaces."""

    listener_name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.listener_name}://{host}:{self.port}"


def _bad(key: str, value: str, expected: str) -> ConfigError:
    return ConfigError(f"{key}={value}: {expected}")


def _int(key: str, value: str, low: int = INT32_MIN, high: int = INT32_MAX) -> int:
    text = value.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return _raise(_bad(key, value, "expected an integer"))
    number = int(text)
    if number > high:
        return _raise(_bad(key, value, f"expected an integer no greater than {high}"))
    if number < low:
        return _raise(_bad(key, value, f"expected an integer of at least {low}"))
    return number


def _raise(error: ConfigError) -> Any:
    raise error


def _bool(key: str, value: str) -> bool:
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise _bad(key, value, "expected true or false")
    return text == "true"


def _list(value: str) -> list[str]:
    text = value.strip()
    return [] if not text else [item.strip() for item in text.split(",")]


def _host_port(key: str, entry: str, form: str) -> tuple[str, int]:
    match = _HOST_PORT.match(entry)
    if match is None:
        raise ConfigError(f"{key}: cannot parse host and port from {entry!r}: expected {form}")
    port = int(match.group(2))
    if port > 65535:
        raise ConfigError(f"{key}: port {port} in {entry!r} is above 65535")
    return match.group(1), port


def _parse_voters(value: str) -> tuple[QuorumVoter, ...]:
    key = "controller.quorum.voters"
    voters: dict[int, QuorumVoter] = {}
    for entry in _list(value):
        id_text, sep, address = entry.partition("@")
        if not sep or "@" in address:
            raise _bad(key, value, f"entry {entry!r} is not in the form {{id}}@{{host}}:{{port}}")
        node_id = _int(key, id_text, 0)
        host, port = _host_port(key, address, "{id}@{host}:{port}")
        if host == NON_ROUTABLE_HOST:
            raise _bad(key, value, f"host {host} in {entry!r} is not routable")
        if node_id in voters:
            # Kafka's QuorumConfig keeps the last entry (a HashMap put); kwire refuses, in
            # the words of Kafka's DynamicVoters for the same mistake in --initial-controllers.
            raise _bad(key, value, f"Node id {node_id} was specified more than once.")
        voters[node_id] = QuorumVoter(node_id, host, port)
    return tuple(voters.values())


def _parse_protocol_map(value: str) -> dict[str, str]:
    key = "listener.security.protocol.map"
    mapping: dict[str, str] = {}
    for entry in _list(value):
        name, sep, protocol = entry.rpartition(":")
        if not sep or not name.strip():
            raise _bad(key, value, f"entry {entry!r} is not in the form NAME:PROTOCOL")
        protocol = protocol.strip().upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise _bad(key, value, f"unknown security protocol {protocol!r}")
        mapping[name.strip().upper()] = protocol
    return mapping


def _parse_listeners(key: str, value: str, protocols: Mapping[str, str]) -> tuple[Endpoint, ...]:
    endpoints: list[Endpoint] = []
    for entry in _list(value):
        match = _LISTENER.match(entry)
        if match is None:
            raise _bad(key, value, f"listener {entry!r} is not in the form NAME://host:port")
        name = match.group(1).upper()
        port = int(match.group(3))
        if not 0 <= port <= 65535:
            raise _bad(key, value, f"port {port} of listener {name} is not between 0 and 65535")
        protocol = protocols.get(name)
        if protocol is None:
            raise _bad(
                key,
                value,
                f"no security protocol is defined for listener {name} in listener.security.protocol.map",
            )
        if any(e.listener_name == name for e in endpoints):
            raise _bad(key, value, f"listener name {name} appears twice")
        endpoints.append(Endpoint(name, match.group(2), port, protocol))
    return tuple(endpoints)


def _parse_ip_overrides(value: str) -> dict[str, int]:
    """``host:count,...`` (Kafka's Csv.parseCsvMap: the count follows the last ':', so
    IPv6 addresses need no brackets)."""
    key = "max.connections.per.ip.overrides"
    overrides: dict[str, int] = {}
    if not value:
        return overrides
    entries = re.split(r"\s*,\s*", value)
    while entries and not entries[-1]:
        entries.pop()  # Java's String.split drops trailing empty strings
    for entry in entries:
        host, sep, count = entry.rpartition(":")
        if not sep:
            raise _bad(key, value, f"entry {entry!r} is not in the form host:count")
        host = host.strip()
        if not re.fullmatch(r"[0-9a-zA-Z\-%._:]*", host):
            raise _bad(key, value, f"contains invalid addresses : {host}")
        try:
            overrides[host] = _int(key, count)
        except ConfigError:
            raise _bad(
                key, value, f"the count {count.strip()!r} for {host!r} is not a 32-bit integer"
            ) from None
    return overrides
