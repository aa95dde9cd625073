"""Read what Kafka's generated message classes print (their ``toString()``), as in the
``.decoded.txt`` files of ../shared/captures/kafka-4.3, and compare it with a kwire message.

The printed form is ``Name(field=value, ...)``; a value is a struct, a list ``[a, b]``, a
quoted string ``'text'``, or a bare token (numbers, booleans, ``null``, uuids, and
``java.nio.HeapByteBuffer[pos=0 lim=45 cap=71]`` for zero-copy bytes). ``parse`` returns
``Struct`` for structs, ``list`` for lists, ``Quoted`` for strings and ``str`` for tokens.
The capture cuts lines longer than 4,000 characters with ``...(N chars)``: such a line
parses to values marked incomplete, and only what was printed is compared.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from typing import Any

from kwire.protocol.json import camel_case

_BUFFER = re.compile(r"java\.nio\.\w+\[pos=(\d+) lim=(\d+) cap=\d+\]")
_CUT = re.compile(r"\.\.\.\(\d+ chars\)$")


@dataclass(frozen=True, slots=True)
class Struct:
    name: str
    fields: dict[str, Any]
    complete: bool = True


@dataclass(frozen=True, slots=True)
class Quoted:
    text: str
    complete: bool = True


class CutList(list[Any]):
    """A list whose printing was cut: it holds a prefix of the items."""


class _Reader:
    def __init__(self, text: str) -> None:
        cut = _CUT.search(text)
        self.text = text if cut is None else text[: cut.start()]
        self.cut = cut is not None
        self.pos = 0

    def at_cut(self) -> bool:
        return self.cut and self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, literal: str) -> None:
        if not self.text.startswith(literal, self.pos):
            raise ValueError(
                f"expected {literal!r} at {self.pos}: {self.text[self.pos : self.pos + 40]!r}"
            )
        self.pos += len(literal)

    def value(self) -> Any:
        if self.peek() == "[":
            return self.list()
        if self.peek() == "'":
            # Kafka does not escape quotes: a string ends at a quote followed by a delimiter.
            end = self.pos + 1
            while end < len(self.text) and not (
                self.text[end] == "'" and self.text[end + 1 : end + 2] in (",", ")", "]", "")
            ):
                end += 1
            quoted = Quoted(self.text[self.pos + 1 : end], complete=end < len(self.text))
            self.pos = end + 1
            return quoted
        start = self.pos
        while self.peek() not in ("", ",", ")", "]", "(", "["):
            self.pos += 1
        token = self.text[start : self.pos]
        if self.at_cut():
            return Quoted(token, complete=False)
        if self.peek() == "(":
            return self.struct(token)
        if self.peek() == "[" and token:  # java.nio.HeapByteBuffer[pos=0 lim=45 cap=71]
            self.pos = self.text.index("]", self.pos) + 1
            return self.text[start : self.pos]
        return token

    def list(self) -> list[Any]:
        self.expect("[")
        items: list[Any] = []
        while self.peek() != "]":
            if self.at_cut():
                return CutList(items)
            items.append(self.value())
            if self.at_cut():
                return CutList(items)
            if self.peek() == ",":
                self.expect(", ")
        self.expect("]")
        return items

    def struct(self, name: str) -> Struct:
        self.expect("(")
        fields: dict[str, Any] = {}
        while self.peek() != ")":
            eq = self.text.find("=", self.pos)
            if self.at_cut() or eq < 0:
                return Struct(name, fields, complete=False)
            key = self.text[self.pos : eq]
            self.pos = eq + 1
            fields[key] = self.value()
            if self.at_cut():
                return Struct(name, fields, complete=False)
            if self.peek() == ",":
                self.expect(", ")
        self.expect(")")
        return Struct(name, fields)


def parse(text: str) -> tuple[Struct, str]:
    """The struct printed at the start of ``text``, and what follows it."""
    reader = _Reader(text)
    value = reader.value()
    if not isinstance(value, Struct):
        raise ValueError(f"not a struct: {text[:60]!r}")
    return value, reader.text[reader.pos :]


def every_field(obj: Any) -> Any:
    """A kwire message as Kafka's toString() sees it: EVERY field of the class (those the
    version does not carry hold their defaults, as in Kafka's objects), tagged ones too,
    keyed by Kafka's camelCase names; uuids as Kafka prints them, bytes as base64, records
    as ``<name>SizeInBytes``."""
    if isinstance(obj, list):
        return [every_field(item) for item in obj]
    fields = getattr(type(obj), "FIELDS", None)
    if fields is None:
        if isinstance(obj, uuid.UUID):
            return base64.urlsafe_b64encode(obj.bytes).decode("ascii").rstrip("=")
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return base64.b64encode(bytes(obj)).decode("ascii")
        return obj
    node: dict[str, Any] = {}
    for info in fields:
        value = getattr(obj, info.attribute)
        if info.type == "records":
            node[camel_case(info.name) + "SizeInBytes"] = "null" if value is None else len(value)
        else:
            node[camel_case(info.name)] = every_field(value)
    return node


def differences(printed: Any, node: Any, where: str = "") -> list[str]:
    """Where Kafka's printed value and kwire's (``every_field(message)``) disagree; every
    field either side has must be on the other."""
    if isinstance(printed, Struct):
        if not isinstance(node, dict):
            return [f"{where}: printed a struct, kwire has {node!r}"]
        out = []
        for key, value in node.items():
            if key.endswith("SizeInBytes") and key.removesuffix("SizeInBytes") in printed.fields:
                records = printed.fields[key.removesuffix("SizeInBytes")]
                size = records.fields["size"] if isinstance(records, Struct) else records
                if str(size) != str(value):
                    out.append(f"{where}.{key}: printed {size}, kwire {value}")
            elif key not in printed.fields:
                if printed.complete:
                    out.append(f"{where}.{key}: not printed by Kafka")
            else:
                out.extend(differences(printed.fields[key], value, f"{where}.{key}"))
        kwire_keys = {k.removesuffix("SizeInBytes") for k in node}
        out.extend(
            f"{where}.{k}: not in kwire's class" for k in printed.fields if k not in kwire_keys
        )
        return out
    if isinstance(printed, list):
        if isinstance(node, str):  # byte[] prints as signed bytes
            raw = base64.b64decode(node)
            return (
                []
                if [str(b - 256 if b > 127 else b) for b in raw] == printed
                else [f"{where}: bytes differ"]
            )
        if isinstance(printed, CutList) and isinstance(node, list):
            node = node[: len(printed)]
        if not isinstance(node, list) or len(node) != len(printed):
            return [f"{where}: printed {len(printed)} items, kwire {node!r:.80}"]
        return [
            d
            for i, (p, n) in enumerate(zip(printed, node, strict=True))
            for d in differences(p, n, f"{where}[{i}]")
        ]
    if isinstance(printed, Quoted):
        if not printed.complete:  # a cut string or token: what was printed is a prefix
            full = node if isinstance(node, str) else "null" if node is None else str(node)
            same = f"'{full}'".startswith("'" + printed.text) or full.startswith(printed.text)
            return [] if same else [f"{where}: printed {printed.text!r}..., kwire {node!r}"]
        return (
            [] if node == printed.text else [f"{where}: printed {printed.text!r}, kwire {node!r}"]
        )
    if (buffer := _BUFFER.fullmatch(printed)) is not None:
        length = int(buffer[2]) - int(buffer[1])
        return [] if len(base64.b64decode(node)) == length else [f"{where}: {length} bytes printed"]
    expected = (
        "null"
        if node is None
        else "true"
        if node is True
        else "false"
        if node is False
        else str(node)
    )
    return [] if printed == expected else [f"{where}: printed {printed}, kwire {expected}"]
