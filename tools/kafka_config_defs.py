"""Read the broker config definitions (name, type, default) out of a Kafka source tree.

KafkaConfig's ConfigDef is AbstractKafkaConfig.CONFIG_DEF, a merge of the ConfigDefs of
several classes, each built as one chain ``new ConfigDef().define(...).define(...);``.
This tool finds those chains in a git tree (no checkout), takes every ``.define(`` call
(``defineInternal`` configs are not listed by DescribeConfigs, so they are left out) and
resolves its name and default: string/number/boolean literals, ``static final``
constants of any class (``X``, ``Class.X``), arithmetic, ``TimeUnit.U.toMillis(n)``,
``List.of``/``Arrays.asList``/``Collections.emptyList()``, ``Long.MAX_VALUE`` and the like.
A default it cannot resolve is kept as :class:`Unresolved` with its source text, for the
caller to resolve by reading. Documentation text is never read.

    python tools/kafka_config_defs.py REPO REF   # prints name, type, default per line
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kwire.controller.config_definitions import TOPIC_CONFIG_SYNONYMS

# Where each release line's AbstractKafkaConfig.CONFIG_DEF comes from: (class, ConfigDef).
SOURCES_3_9 = (
    ("RemoteLogManagerConfig", "configDef()"),
    ("ZkConfigs", "CONFIG_DEF"),
    ("ServerConfigs", "CONFIG_DEF"),
    ("KRaftConfigs", "CONFIG_DEF"),
    ("SocketServerConfigs", "CONFIG_DEF"),
    ("ReplicationConfigs", "CONFIG_DEF"),
    ("GroupCoordinatorConfig", "GROUP_COORDINATOR_CONFIG_DEF"),
    ("GroupCoordinatorConfig", "NEW_GROUP_CONFIG_DEF"),
    ("GroupCoordinatorConfig", "OFFSET_MANAGEMENT_CONFIG_DEF"),
    ("GroupCoordinatorConfig", "CONSUMER_GROUP_CONFIG_DEF"),
    ("GroupCoordinatorConfig", "SHARE_GROUP_CONFIG_DEF"),
    ("CleanerConfig", "CONFIG_DEF"),
    ("LogConfig", "SERVER_CONFIG_DEF"),
    ("ShareGroupConfig", "CONFIG_DEF"),
    ("TransactionLogConfigs", "CONFIG_DEF"),
    ("TransactionStateManagerConfigs", "CONFIG_DEF"),
    ("QuorumConfig", "CONFIG_DEF"),
    ("MetricConfigs", "CONFIG_DEF"),
    ("QuotaConfigs", "CONFIG_DEF"),
    ("BrokerSecurityConfigs", "CONFIG_DEF"),
    ("DelegationTokenManagerConfigs", "CONFIG_DEF"),
    ("PasswordEncoderConfigs", "CONFIG_DEF"),
)
SOURCES_4_3 = (
    ("RemoteLogManagerConfig", "configDef()"),
    ("ServerConfigs", "CONFIG_DEF"),
    ("KRaftConfigs", "CONFIG_DEF"),
    ("MetadataLogConfig", "CONFIG_DEF"),
    ("SocketServerConfigs", "CONFIG_DEF"),
    ("ReplicationConfigs", "CONFIG_DEF"),
    ("GroupCoordinatorConfig", "CONFIG_DEF"),
    ("CleanerConfig", "CONFIG_DEF"),
    ("LogConfig", "SERVER_CONFIG_DEF"),
    ("ShareGroupConfig", "CONFIG_DEF"),
    ("ShareCoordinatorConfig", "CONFIG_DEF"),
    ("TransactionLogConfig", "CONFIG_DEF"),
    ("TransactionStateManagerConfig", "CONFIG_DEF"),
    ("QuorumConfig", "CONFIG_DEF"),
    ("MetricConfigs", "CONFIG_DEF"),
    ("QuotaConfig", "CONFIG_DEF"),
    ("BrokerSecurityConfigs", "CONFIG_DEF"),
    ("DelegationTokenManagerConfigs", "CONFIG_DEF"),
    ("AddPartitionsToTxnConfig", "CONFIG_DEF"),
)

_TYPES = ("BOOLEAN", "STRING", "INT", "SHORT", "LONG", "DOUBLE", "LIST", "CLASS", "PASSWORD")
_IMPORTANCE = re.compile(r"(?:ConfigDef\.)?(?:Importance\.)?(HIGH|MEDIUM|LOW)")
_CONSTANT = re.compile(
    r"(?:public|private|protected)?\s*(?:static\s+final|final\s+static)\s+"
    r"[\w.<>\[\], ?]+?\s+([A-Z][A-Z0-9_]*)\s*=\s*"
)
_UNITS = {
    "MILLISECONDS": 1,
    "SECONDS": 1000,
    "MINUTES": 60_000,
    "HOURS": 3_600_000,
    "DAYS": 86_400_000,
}
_WELL_KNOWN = {
    "Long.MAX_VALUE": 2**63 - 1,
    "Long.MIN_VALUE": -(2**63),
    "Integer.MAX_VALUE": 2**31 - 1,
    "Integer.MIN_VALUE": -(2**31),
    "Short.MAX_VALUE": 2**15 - 1,
    "Double.MAX_VALUE": 1.7976931348623157e308,
}


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A default expression this tool cannot evaluate, as written in the source."""

    text: str


class _NoValue:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT = _NoValue()


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    type: str  # a ConfigDef.Type name
    default: object  # str/int/float/bool/list/None, NO_DEFAULT or Unresolved


class _Fail(Exception):
    pass


class JavaTree:
    """The main Java sources of one git ref, read through ``git cat-file``."""

    def __init__(self, repo: Path, ref: str) -> None:
        listing = subprocess.run(
            ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", ref],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        paths = [p for p in listing if "/src/main/java/" in p and p.endswith(".java")]
        batch = "".join(f"{ref}:{p}\n" for p in paths).encode()
        out = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "--batch"],
            input=batch,
            check=True,
            capture_output=True,
        ).stdout
        self.files: dict[str, str] = {}  # class name -> source (first met)
        self.packages: dict[str, str] = {}  # class name -> its package
        pos = 0
        for path in paths:
            header_end = out.index(b"\n", pos)
            size = int(out[pos:header_end].split()[2])
            body = out[header_end + 1 : header_end + 1 + size].decode("utf-8", "replace")
            pos = header_end + 1 + size + 1
            with contextlib.suppress(IndexError, ValueError):  # sources this reader cannot lex
                self.files.setdefault(Path(path).stem, _strip_comments(body))
                package = re.search(r"^package\s+([\w.]+);", body, re.M)
                if package is not None:
                    self.packages.setdefault(Path(path).stem, package.group(1))
        self.constants: dict[tuple[str, str], str] = {}
        self.by_name: dict[str, list[str]] = {}
        for cls, text in self.files.items():
            for m in _CONSTANT.finditer(text):
                expr = _statement(text, m.end())
                self.constants[(cls, m.group(1))] = expr
                self.by_name.setdefault(m.group(1), []).append(cls)

    def definitions(self, sources: tuple[tuple[str, str], ...]) -> dict[str, Definition]:
        found: dict[str, Definition] = {}
        for cls, field in sources:
            for args in _define_calls(self._chain(cls, field)):
                name = self.evaluate(args[0], cls)
                assert isinstance(name, str), (cls, args[0])
                kind = args[1].split(".")[-1]
                assert kind in _TYPES, (cls, args)
                if (
                    len(args) == 4
                    or _IMPORTANCE.fullmatch(args[2])
                    or args[2].endswith("NO_DEFAULT_VALUE")
                ):
                    default: object = NO_DEFAULT
                else:
                    try:
                        default = self.evaluate(args[2], cls)
                    except _Fail:
                        default = Unresolved(args[2])
                found.setdefault(name, Definition(name, kind, default))
        return found

    def _chain(self, cls: str, field: str) -> str:
        text = self.files[cls]
        if field.endswith("()"):
            m = re.search(rf"\b{re.escape(field[:-2])}\(\)\s*\{{\s*return\s+", text)
        else:
            m = re.search(rf"\b{field}\s*=\s*", text)
        assert m is not None, (cls, field)
        return _statement(text, m.end())

    def evaluate(self, expr: str, cls: str) -> object:
        return _Evaluator(self, cls).run(expr)

    def constant(self, cls: str | None, name: str, here: str) -> object:
        if cls is None:
            owners = [here] if (here, name) in self.constants else self.by_name.get(name, [])
            values = set()
            for owner in dict.fromkeys(owners):
                with contextlib.suppress(_Fail, RecursionError):
                    values.add(repr(self.constant(owner, name, owner)))
            if len(values) != 1:  # unknown, or classes that disagree: ambiguous
                raise _Fail(name)
            return self.constant(owners[0], name, owners[0])
        if (cls, name) not in self.constants:
            raise _Fail(f"{cls}.{name}")
        return self.evaluate(self.constants[(cls, name)], cls)


def _strip_comments(text: str) -> str:
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if text.startswith('"""', i):
            j = text.index('"""', i + 3) + 3
            out.append(text[i:j])
            i = j
        elif c in "\"'":
            j = i + 1
            while text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            i = text.find("*/", i) + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _statement(text: str, start: int) -> str:
    """The text from ``start`` to the next ';' outside strings and brackets."""
    depth = 0
    i = start
    while True:
        c = text[i]
        if c == '"':
            i += 1
            while text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == ";" and depth == 0:
            return text[start:i].strip()
        i += 1


def _split_args(text: str) -> list[str]:
    args, depth, current, i = [], 0, [], 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            current.append(text[i : j + 1])
            i = j + 1
            continue
        if c in "([{<" and not (c == "<" and depth == 0 and not current):
            depth += c != "<"
        if c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(c)
        i += 1
    args.append("".join(current).strip())
    return args


def _define_calls(chain: str) -> list[list[str]]:
    calls = []
    for m in re.finditer(r"\.define\(", chain):
        depth, i = 1, m.end()
        while depth:
            c = chain[i]
            if c == '"':
                i += 1
                while chain[i] != '"':
                    i += 2 if chain[i] == "\\" else 1
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            i += 1
        calls.append(_split_args(chain[m.end() : i - 1]))
    return calls


_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:\\.|[^"\\])*")|(?P<num>[\d_]+\.[\d_]*(?:[eE][+-]?\d+)?[dDfF]?|[\d_]+[lL]?)'
    r"|(?P<name>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)|(?P<op>[-+*/(),]))"
)


class _Evaluator:
    """A small recursive-descent evaluator of Java constant expressions."""

    def __init__(self, tree: JavaTree, cls: str) -> None:
        self.tree = tree
        self.cls = cls
        self.tokens: list[tuple[str, str]] = []
        self.pos = 0

    def run(self, expr: str) -> object:
        pos = 0
        expr = expr.strip()
        while pos < len(expr):
            m = _TOKEN.match(expr, pos)
            if m is None or m.end() == pos:
                raise _Fail(expr)
            kind = m.lastgroup
            assert kind is not None
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(expr) and expr[pos].isspace():
                pos += 1
        value = self.sum()
        if self.pos != len(self.tokens):
            raise _Fail(expr)
        return value

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, op: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (op is not None and token != ("op", op)):
            raise _Fail(str(token))
        self.pos += 1
        return token

    def sum(self) -> object:
        value = self.product()
        while (t := self.peek()) in (("op", "+"), ("op", "-")):
            self.take()
            right = self.product()
            if t == ("op", "+"):
                if isinstance(value, str) or isinstance(right, str):
                    value = _java_str(value) + _java_str(right)
                else:
                    value = value + right  # type: ignore[operator]
            else:
                value = value - right  # type: ignore[operator]
        return value

    def product(self) -> object:
        value = self.unary()
        while (t := self.peek()) in (("op", "*"), ("op", "/")):
            self.take()
            right = self.unary()
            if t == ("op", "*"):
                value = value * right  # type: ignore[operator]
            elif isinstance(value, int) and isinstance(right, int):
                value = int(value / right)
            else:
                value = value / right  # type: ignore[operator]
        return value

    def unary(self) -> object:
        if self.peek() == ("op", "-"):
            self.take()
            return -self.unary()  # type: ignore[operator]
        if self.peek() == ("op", "("):
            self.take()
            nxt = self.peek()
            if nxt in (("name", "int"), ("name", "long"), ("name", "short"), ("name", "double")):
                self.take()
                self.take(")")
                value = self.unary()
                return float(value) if nxt == ("name", "double") else int(value)  # type: ignore[arg-type]
            value = self.sum()
            self.take(")")
            return value
        return self.atom()

    def args(self) -> list[object]:
        self.take("(")
        values: list[object] = []
        if self.peek() == ("op", ")"):
            self.take()
            return values
        while True:
            values.append(self.sum())
            if self.take() == ("op", ")"):
                return values

    def atom(self) -> object:
        kind, text = self.take()
        if kind == "str":
            return bytes(text[1:-1], "utf-8").decode("unicode_escape")
        if kind == "num":
            text = text.replace("_", "")
            if text[-1] in "lL":
                return int(text[:-1])
            if "." in text or text[-1] in "dDfF":
                return float(text.rstrip("dDfF"))
            return int(text)
        if kind != "name":
            raise _Fail(text)
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if text in _WELL_KNOWN:
            return _WELL_KNOWN[text]
        parts = text.split(".")
        if parts[0] == "TimeUnit" and len(parts) == 3 and parts[2] == "toMillis":
            (n,) = self.args()
            return int(n) * _UNITS[parts[1]]  # type: ignore[call-overload]
        if text in ("List.of", "Arrays.asList", "Set.of"):
            return [_java_str(v) for v in self.args()]
        if text in ("Collections.emptyList", "List.of", "Collections.emptySet"):
            self.args()
            return []
        if text == "ServerTopicConfigSynonyms.serverSynonym":
            # The broker config that first gives a topic config's default
            # (ALL_TOPIC_CONFIG_SYNONYMS, alike in 3.9 and 4.3.1 but for 4.3.1's removals).
            (topic_name,) = self.args()
            return TOPIC_CONFIG_SYNONYMS[_java_str(topic_name)][0][0]
        if text == "String.join":
            sep, *items = self.args()
            flat = [x for v in items for x in (v if isinstance(v, list) else [v])]
            return str(sep).join(_java_str(v) for v in flat)
        if parts[-1] in ("name", "getName", "toString") and len(parts) >= 2:
            if self.peek() == ("op", "("):
                self.args()
            return self.enum_or_class(parts[:-1])
        if self.peek() == ("op", "("):
            raise _Fail(text)
        if len(parts) == 1:
            return self.tree.constant(None, text, self.cls)
        if len(parts) == 2 and parts[0][0].isupper() and parts[1].isupper():
            return self.tree.constant(parts[0], parts[1], self.cls)
        if len(parts) == 3 and parts[1][0].isupper():
            return self.tree.constant(parts[1], parts[2], self.cls)
        raise _Fail(text)

    def enum_or_class(self, parts: list[str]) -> str:
        # Enum.CONSTANT.name (an enum constant's name is itself) or SomeClass.class.getName.
        if parts[-1] == "class" and len(parts) == 2 and parts[0] in self.tree.packages:
            return f"{self.tree.packages[parts[0]]}.{parts[0]}"
        if len(parts) == 2 and parts[1].isupper():
            return parts[1]
        raise _Fail(".".join(parts))


def _java_str(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def main() -> None:
    repo, ref = Path(sys.argv[1]), sys.argv[2]
    sources = SOURCES_3_9 if ref.startswith("3.") else SOURCES_4_3
    for name, definition in sorted(JavaTree(repo, ref).definitions(sources).items()):
        print(name, definition.type, repr(definition.default), sep="\t")


if __name__ == "__main__":
    main()
