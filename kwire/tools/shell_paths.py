"""Paths in the shell's tree, as Kafka's shell resolves them: ``CommandUtils`` (splitting,
``.`` and ``..``, completion) and ``GlobVisitor``/``GlobComponent`` (per-component globs:
``*``, ``?``, ``{a,b}`` and ``\\`` escapes; a component that is no glob, or a malformed
one, matches only itself).

Rules:
- A relative path is taken from the working directory; ``..`` never climbs above ``/``.
- Matches come in sorted order of each directory's children (String.compareTo, which is
  Python's order for names without characters outside the BMP).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kwire.tools.shell_nodes import Node

__all__ = [
    "Match",
    "ShellState",
    "complete_path",
    "glob_regex",
    "split_path",
    "strip_dot_components",
    "visit",
]


@dataclass(slots=True)
class ShellState:
    """Kafka's MetadataShellState: the tree's root and the working directory."""

    root: Node
    working_directory: str = "/"


# -- paths and globs -------------------------------------------------------------------------


def split_path(path: str) -> list[str]:
    """CommandUtils.splitPath: components between slashes, empty ones dropped."""
    return [part for part in path.split("/") if part]


def strip_dot_components(parts: Sequence[str]) -> list[str]:
    """CommandUtils.stripDotPathComponents: ``.`` dropped, ``..`` pops (never above /)."""
    out: list[str] = []
    for part in parts:
        if part == "..":
            if out:
                out.pop()
        elif part != ".":
            out.append(part)
    return out


_REGEX_SPECIAL = set("$()+.[]^{|")
_GLOB_SPECIAL = set("*?\\{}")


def glob_regex(glob: str) -> str | None:
    """GlobComponent.toRegularExpression: the regular expression of one component, None
    when it is a literal. Raises ValueError for a nested or unterminated group."""
    out = ["^"]
    literal = True
    in_group = False
    i = 0
    while i < len(glob):
        c = glob[i]
        i += 1
        if c == "?":
            literal = False
            out.append(".")
        elif c == "*":
            literal = False
            out.append(".*")
        elif c == "\\":
            if i == len(glob):
                out.append(c)
            else:
                following = glob[i]
                i += 1
                if following in _GLOB_SPECIAL or following in _REGEX_SPECIAL:
                    out.append("\\")
                out.append(following)
        elif c == "{":
            if in_group:
                raise ValueError("Can't nest glob groups.")
            literal = False
            out.append("(?:(?:")
            in_group = True
        elif c == "," and in_group:
            literal = False
            out.append(")|(?:")
        elif c == "}" and in_group:
            literal = False
            out.append("))")
            in_group = False
        else:
            if c in _REGEX_SPECIAL:
                out.append("\\")
            out.append(c)
    if in_group:
        raise ValueError("Unterminated glob group.")
    if literal:
        return None
    out.append("$")
    return "".join(out)


def _component_matcher(component: str) -> Callable[[str], bool] | None:
    """None for a literal component (a malformed glob is one too, as in Kafka)."""
    try:
        regex = glob_regex(component)
        pattern = None if regex is None else re.compile(regex, re.DOTALL)
    except (ValueError, re.error):
        pattern = None
    if pattern is None:
        return None
    return lambda name: pattern.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Match:
    """GlobVisitor.MetadataNodeInfo."""

    path: tuple[str, ...]
    node: Node

    @property
    def last_component(self) -> str:
        return self.path[-1] if self.path else "/"

    @property
    def absolute_path(self) -> str:
        return "/" + "/".join(self.path)


def visit(state: ShellState, glob: str) -> list[Match]:
    """GlobVisitor: every node the glob matches, in sorted order (empty: none)."""
    full = glob if glob.startswith("/") else state.working_directory + "/" + glob
    components = strip_dot_components(split_path(full))
    found: list[Match] = []
    _visit(components, 0, state.root, (), found)
    return found


def _visit(
    components: list[str], index: int, node: Node, path: tuple[str, ...], found: list[Match]
) -> None:
    if index >= len(components):
        found.append(Match(path, node))
        return
    if not node.is_directory:
        return
    component = components[index]
    matcher = _component_matcher(component)
    if matcher is None:
        child = node.child(component)
        if child is not None:
            _visit(components, index + 1, child, (*path, component), found)
        return
    for name in sorted(node.child_names()):
        if matcher(name):
            child = node.child(name)
            if child is not None:
                _visit(components, index + 1, child, (*path, name), found)


def complete_path(state: ShellState, prefix: str) -> list[str]:
    """CommandUtils.completePath: the children of the prefix's directory whose names start
    with its last component, spelled with the prefix's directory part, directories
    ending in ``/``."""
    absolute = prefix if prefix.startswith("/") else state.working_directory + "/" + prefix
    components = strip_dot_components(split_path(absolute))
    directories = len(components) if prefix.endswith("/") else len(components) - 1
    node: Node | None = state.root
    for component in components[: max(directories, 0)]:
        node = node.child(component) if node is not None else None
        if node is None or not node.is_directory:
            return []
    assert node is not None
    last = components[directories] if 0 <= directories < len(components) else ""
    head = prefix[: prefix.rfind("/") + 1]
    found = []
    for name in sorted(node.child_names()):
        if name.startswith(last):
            child = node.child(name)
            found.append(head + name + ("/" if child is not None and child.is_directory else ""))
    return found
