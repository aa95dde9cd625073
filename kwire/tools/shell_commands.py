"""The commands of kafka-metadata-shell (Kafka 3.9's ``shell/.../command``), their argument
parsing (argparse4j's messages) and their output, line for line.

=========  ============  ===================================================================
command    arguments     output (errors are printed on the same stream, as Kafka does)
=========  ============  ===================================================================
cat        targets+      each matched leaf's text; ``cat: T: Is a directory``,
                         ``cat: T: No such file or directory.``
cd         [target]      (interactive) ``cd: T: not a directory.``, ``cd: T: no such directory.``
exit                     (interactive) leaves the shell
find       [paths*]      every path below each match, depth first, children sorted, the path
                         spelled as given (``find: P: no such file or directory.``)
help                     (interactive) the list of commands
history    [n]           (interactive) the last n command lines, ``% 5d  line``
ls         [targets*]    matched leaves, then each matched directory's sorted children
                         (``T:`` headers when more than one); one column unless interactive,
                         where LsCommandHandler's column layout fits the terminal width;
                         ``ls: T: no such file or directory.``
man        cmd           (interactive) one command's usage
pwd                      (interactive) the working directory
tree       targets+      each match printed as ShellNodePrinter prints it: ``name:`` and
                         its children indented two spaces per level, leaves as their text;
                         ``tree: T: No such file or directory.``
=========  ============  ===================================================================

Paths are Kafka's globs (GlobComponent): ``*``, ``?``, ``{a,b}`` and ``\\`` escapes per
component, relative to the working directory, ``.`` and ``..`` resolved textually. A command
is chosen by its name or a unique prefix of it (then Kafka answers ``invalid choice: 'l':
did you mean 'ls'?``); the shell-only commands are refused when a command is given on the
command line (non-interactive), as Kafka refuses them. ``help``, ``man`` and ``-h`` print
the commands and their arguments in kwire's own layout, not argparse4j's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from kwire.tools.shell_nodes import Node
from kwire.tools.shell_paths import (
    ShellState,
    complete_path,
    split_path,
    strip_dot_components,
    visit,
)

__all__ = [
    "Commands",
    "Session",
    "ShellState",
    "complete",
    "parse_command",
    "split_path",
    "strip_dot_components",
]


@dataclass(slots=True)
class Session:
    """What only an interactive shell has: its history and the terminal's width."""

    history: list[str] = field(default_factory=list)
    screen_width: int | None = 80
    exited: bool = False


Handler = Callable[[Session | None, TextIO, ShellState], None]


@dataclass(frozen=True, slots=True)
class CommandType:
    name: str
    description: str
    shell_only: bool
    # (argument name, nargs: "+", "*", "?", "1" or "0")
    nargs: str
    argument: str = ""
    argument_help: str = ""


TYPES: dict[str, CommandType] = {
    t.name: t
    for t in (
        CommandType("cat", "Show the contents of metadata files.", False, "+", "targets",
                    "The metadata files to display."),
        CommandType("cd", "Set the current working directory.", True, "?", "target",
                    "The directory to change to."),
        CommandType("exit", "Exit the metadata shell.", True, "0"),
        CommandType("find", "Search for nodes in the directory hierarchy.", False, "*", "paths",
                    "The paths to start at."),
        CommandType("help", "Display this help message.", True, "0"),
        CommandType("history", "Print command history.", True, "?", "numEntriesToShow",
                    "The number of entries to show."),
        CommandType("ls", "List metadata nodes.", False, "*", "targets",
                    "The metadata node paths to list."),
        CommandType("man", "Show the help text for a specific command.", True, "1", "cmd",
                    "The command to get help text for."),
        CommandType("pwd", "Print the current working directory.", True, "0"),
        CommandType("tree", "Show the contents of metadata nodes in a tree structure.", False, "+", "targets",
                    "The metadata nodes to display."),
    )
}  # fmt: skip


# -- completion (InteractiveShell's completer) -----------------------------------------------


def complete_command(prefix: str) -> list[str]:
    """CommandUtils.completeCommand: every command name starting with ``prefix``."""
    return [name for name in sorted(TYPES) if name.startswith(prefix)]


def complete(state: ShellState, words: Sequence[str]) -> list[str]:
    """MetadataShellCompleter: a command name for the first word, else what the command
    completes (paths for cat, find, ls and tree; cd only its one argument; man a command)."""
    if len(words) <= 1:
        return complete_command(words[0] if words else "")
    command, rest = words[0], words[1:]
    match command:
        case "cat" | "find" | "ls" | "tree":
            return complete_path(state, rest[-1])
        case "cd" if len(rest) == 1:
            return complete_path(state, rest[0])
        case "man" if len(rest) == 1:
            return complete_command(rest[0])
    return []


# -- output ----------------------------------------------------------------------------------


class ShellPrinter:
    """ShellNodePrinter: ``name:`` to enter a node, text lines, two spaces a level."""

    __slots__ = ("out", "level")

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.level = 0

    def enter_node(self, name: str) -> None:
        self.out.write(f"{'  ' * self.level}{name}:\n")
        self.level += 1

    def leave_node(self) -> None:
        self.level -= 1

    def output(self, text: str) -> None:
        self.out.write(f"{'  ' * self.level}{text}\n")


def _effective_paths(paths: Sequence[str]) -> list[str]:
    """CommandUtils.getEffectivePaths: empty strings dropped, ``.`` when none is left."""
    return [p for p in paths if p] or ["."]


def run_cat(targets: Sequence[str], out: TextIO, state: ShellState) -> None:
    for target in targets:
        matches = visit(state, target)
        if not matches:
            out.write(f"cat: {target}: No such file or directory.\n")
        for match in matches:
            if match.node.is_directory:
                out.write(f"cat: {target}: Is a directory\n")
            else:
                match.node.print(ShellPrinter(out))


def run_tree(targets: Sequence[str], out: TextIO, state: ShellState) -> None:
    for target in targets:
        matches = visit(state, target)
        if not matches:
            out.write(f"tree: {target}: No such file or directory.\n")
        for match in matches:
            match.node.print(ShellPrinter(out))


def run_find(paths: Sequence[str], out: TextIO, state: ShellState) -> None:
    for path in _effective_paths(paths):
        matches = visit(state, path)
        if not matches:
            out.write(f"find: {path}: no such file or directory.\n")
        for match in matches:
            _find(out, path, match.node)


def _find(out: TextIO, path: str, node: Node) -> None:
    # Iterative (Kafka recurses): a deep tree cannot exhaust Python's stack.
    stack = [(path, node)]
    while stack:
        here, current = stack.pop()
        out.write(here + "\n")
        if current.is_directory:
            children = []
            for name in sorted(current.child_names()):
                child = current.child(name)
                if child is not None:
                    children.append((here + name if here == "/" else here + "/" + name, child))
            stack.extend(reversed(children))


def run_ls(
    targets: Sequence[str], out: TextIO, state: ShellState, screen_width: int | None
) -> None:
    files: list[str] = []
    directories: list[tuple[str, list[str]]] = []
    for target in _effective_paths(targets):
        matches = visit(state, target)
        if not matches:
            out.write(f"ls: {target}: no such file or directory.\n")
        for match in matches:
            if match.node.is_directory:
                directories.append((match.last_component, sorted(match.node.child_names())))
            else:
                files.append(match.last_component)
    print_entries(out, "", screen_width, files)
    need_intro = bool(files) or len(directories) > 1
    first_intro = not files
    for name, children in directories:
        intro = ""
        if need_intro:
            intro = ("" if first_intro else "\n") + name + ":"
            first_intro = False
        print_entries(out, intro, screen_width, children)


def print_entries(out: TextIO, intro: str, width: int | None, entries: list[str]) -> None:
    """LsCommandHandler.printEntries: column-major, each column as wide as its longest
    entry plus two (the last not padded)."""
    if not entries:
        return
    if intro:
        out.write(intro + "\n")
    widths, per_column = column_schema(width, entries)
    columns = len(widths)
    lines = (len(entries) + columns - 1) // columns
    for line in range(lines):
        parts = []
        for column in range(columns):
            index = line + column * per_column
            if index < len(entries):
                entry = entries[index]
                parts.append(entry)
                if column < columns - 1:
                    parts.append(" " * (widths[column] - len(entry)))
        out.write("".join(parts) + "\n")


def column_schema(width: int | None, entries: list[str]) -> tuple[list[int], int]:
    """LsCommandHandler.calculateColumnSchema: (column widths, entries per column), the
    most columns whose last is used and whose total fits ``width`` (one without a width)."""
    max_columns = 0 if width is None else width // 4
    if max_columns <= 1:
        return [0], len(entries)
    for columns in range(max_columns, 1, -1):
        per_column = (len(entries) + columns - 1) // columns
        widths = [0] * columns
        for index, entry in enumerate(entries):
            column = index // per_column
            widths[column] = max(widths[column], len(entry) + 2)
        if widths[-1] != 0 and sum(widths) <= width:  # type: ignore[operator]
            return widths, per_column
    return [0], len(entries)


# -- parsing ---------------------------------------------------------------------------------


def parse_command(words: Sequence[str], *, interactive: bool) -> Handler:
    """Commands.parseCommand: a handler for the words, one that prints the parse error
    (ErroneousCommandHandler) for bad ones, or one doing nothing for none."""
    args = list(words)
    while args and not args[-1]:
        args.pop()
    if not args:
        return _noop
    available = {n: t for n, t in TYPES.items() if interactive or not t.shell_only}
    first = args[0]
    command = first if first in available else None
    if command is None and first:
        candidates = sorted(n for n in available if n.startswith(first))
        if len(candidates) > 1:
            return _error(f"ambiguous command: {first} could match {', '.join(candidates)}")
        if candidates:
            command = candidates[0]
    if command is None:
        listed = ", ".join(f"'{n}'" for n in available)
        return _error(f"invalid choice: '{first}' (choose from {listed})")
    kind = available[command]
    rest = args[1:]
    if "-h" in rest or "--help" in rest:
        return lambda session, out, state: _man(kind, out)
    flags = [a for a in rest if a.startswith("-") and len(a) > 1 and not _is_number(a)]
    if flags:
        return _error(f"unrecognized arguments: '{' '.join(flags)}'")
    error = _check_count(kind, rest)
    if error:
        return _error(error)
    if command != first:
        return _error(f"invalid choice: '{first}': did you mean '{command}'?")
    return _handler(kind, rest)


def _is_number(text: str) -> bool:
    return re.fullmatch(r"-\d+(\.\d+)?", text) is not None


def _check_count(kind: CommandType, rest: list[str]) -> str | None:
    match kind.nargs:
        case "+" if not rest:
            return "too few arguments"
        case "1" if not rest:
            return "too few arguments"
        case "1" if len(rest) > 1:
            return f"unrecognized arguments: '{' '.join(rest[1:])}'"
        case "?" if len(rest) > 1:
            return f"unrecognized arguments: '{' '.join(rest[1:])}'"
        case "0" if rest:
            return f"unrecognized arguments: '{' '.join(rest)}'"
    if kind.name == "history" and rest:
        try:
            int(rest[0])
        except ValueError:
            return (
                f"argument numEntriesToShow: could not convert '{rest[0]}' to Integer "
                f'(For input string: "{rest[0]}")'
            )
    return None


def _noop(session: Session | None, out: TextIO, state: ShellState) -> None:
    return None


def _error(message: str) -> Handler:
    def handler(session: Session | None, out: TextIO, state: ShellState) -> None:
        out.write(message + "\n")

    return handler


def _handler(kind: CommandType, rest: list[str]) -> Handler:
    def run(session: Session | None, out: TextIO, state: ShellState) -> None:
        match kind.name:
            case "cat":
                run_cat(rest, out, state)
            case "tree":
                run_tree(rest, out, state)
            case "find":
                run_find(rest, out, state)
            case "ls":
                run_ls(rest, out, state, None if session is None else session.screen_width)
            case "cd":
                _cd(rest[0] if rest else "/", out, state)
            case "pwd":
                out.write(state.working_directory + "\n")
            case "exit":
                if session is not None:
                    session.exited = True
            case "help":
                out.write("Welcome to the Apache Kafka metadata shell.\n\n")
                _usage(out)
            case "history":
                _history(session, int(rest[0]) if rest else 2**31 - 1, out)
            case "man":
                target = TYPES.get(rest[0])
                if target is None:
                    out.write(
                        f"man: unknown command {rest[0]}. Type help to get a list of commands.\n"
                    )
                else:
                    _man(target, out)

    return run


def _cd(target: str, out: TextIO, state: ShellState) -> None:
    matches = visit(state, target)
    if not matches:
        out.write(f"cd: {target}: no such directory.\n")
    for match in matches:
        if not match.node.is_directory:
            out.write(f"cd: {target}: not a directory.\n")
        else:
            state.working_directory = match.absolute_path


def _history(session: Session | None, count: int, out: TextIO) -> None:
    """InteractiveShell.history: the last ``count`` lines, numbered from 0."""
    if session is None:
        raise RuntimeError("The history command requires a shell.")
    lines = session.history
    first = max(0, len(lines) - max(count, 0))
    for number in range(first, len(lines)):
        out.write(f"{number:5d}  {lines[number]}\n")


def _usage(out: TextIO) -> None:
    names = ",".join(TYPES)
    out.write(f"usage: {{{names}}} ...\n\npositional arguments:\n  {{{names}}}\n")
    for kind in TYPES.values():
        out.write(f"    {kind.name.ljust(20)} {kind.description}\n")


def _man(kind: CommandType, out: TextIO) -> None:
    out.write(f"{kind.name}: {kind.description}\n\n")
    shapes = {"+": "{0} [{0} ...]", "*": "[{0} [{0} ...]]", "?": "[{0}]", "1": "{0}", "0": ""}
    usage = shapes[kind.nargs].format(kind.argument)
    out.write(f"usage: {kind.name} {usage}".rstrip() + "\n")
    if kind.argument:
        out.write(f"\npositional arguments:\n  {kind.argument.ljust(22)} {kind.argument_help}\n")


class Commands:
    """Runs command lines against a state, as Kafka's Commands and handlers do."""

    def __init__(self, state: ShellState, *, interactive: bool) -> None:
        self.state = state
        self.interactive = interactive

    def run(self, words: Sequence[str], out: TextIO, session: Session | None = None) -> None:
        parse_command(words, interactive=self.interactive)(session, out, self.state)
