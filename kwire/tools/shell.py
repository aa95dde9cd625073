"""``kwire shell``: browse the metadata image as Kafka's ``kafka-metadata-shell`` does.

Usage::

    kwire shell --snapshot FILE [command ...]         # a .checkpoint or .log file (Kafka's option)
    kwire shell --directory DIR [command ...]         # a metadata log directory
    kwire shell --bootstrap-controller HOST:PORT [--command-config FILE] [command ...]

With a command (``ls``, ``cat``, ``find`` or ``tree`` and its paths) the shell prints its
output and exits, as Kafka's does in non-interactive mode; without one it prompts ``>> ``
for commands until end of input or ``exit`` (and also takes ``cd``, ``pwd``, ``history``,
``help``, ``man``). The tree, each leaf's text and each message are Kafka's
(kwire.tools.shell_nodes, kwire.tools.shell_commands), as printed by the release chosen
with ``--kafka-release`` (default ``4.3``: Kafka 4.3.1's; ``3.9``: Kafka 3.9.0's, whose
``/image/acls`` lists ACL ids directly and whose features carry ``zkMigrationState``).

Sources (kwire.tools.shell_load, kwire.tools.shell_live):

- ``--snapshot FILE``: every data batch of the file, as Kafka's SnapshotFileReader reads it.
- ``--directory DIR``: the newest snapshot, then the log after it; nothing is written.
- ``--bootstrap-controller``: a running controller (kwire or Kafka) is read over the network
  as a non-replica fetcher (Fetch and FetchSnapshot with replica id -1), following the
  leader; the controller opens nothing new and tracks no replica for it. ``--command-config``
  takes the client's ``security.protocol``, ``ssl.*`` (PEM) and ``sasl.*`` (PLAIN,
  SCRAM-SHA-256/512) settings; the listener's authorization applies (Fetch needs
  CLUSTER_ACTION on the cluster).

Exit status: 0 once the command ran (Kafka's shell also exits 0 after printing a path
error), 1 when the metadata could not be read (``Error: <reason>`` on stderr), 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from kwire.controller.image import MetadataImage
from kwire.tools.shell_commands import Commands, Session, ShellState, complete
from kwire.tools.shell_format import Provenance, ShellRelease
from kwire.tools.shell_load import ShellLoadError, load_directory, load_file
from kwire.tools.shell_nodes import root_node

__all__ = ["main", "run_commands"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kwire shell", description="Browse the KRaft metadata image (kafka-metadata-shell)."
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--snapshot", "-s", help="The snapshot (or log segment) file to read.")
    source.add_argument("--directory", "-d", help="The metadata log directory to read.")
    source.add_argument(
        "--bootstrap-controller", help="HOST:PORT of a controller to read the metadata from."
    )
    parser.add_argument(
        "--command-config", help="Client properties (security.protocol, ssl.*, sasl.*)."
    )
    parser.add_argument(
        "--kafka-release",
        choices=[r.value for r in ShellRelease],
        default=ShellRelease.KAFKA_4_3.value,
        help="Whose kafka-metadata-shell output to reproduce (default 4.3).",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="The command to run.")
    return parser


def load(args: argparse.Namespace) -> tuple[MetadataImage, Provenance]:
    """The image from the chosen source; raises ShellLoadError."""
    if args.snapshot is not None:
        path = Path(args.snapshot)
        if not path.is_file():
            raise ShellLoadError(f"{path}: no such file")
        return load_file(path)
    if args.directory is not None:
        return load_directory(Path(args.directory))
    from kwire.tools.shell_live import fetch_image

    return fetch_image(args.bootstrap_controller, args.command_config)


def run_commands(
    image: MetadataImage,
    provenance: Provenance,
    release: ShellRelease,
    words: Sequence[str],
    out: TextIO,
) -> None:
    """Run one command line non-interactively, as Kafka's shell does with arguments."""
    state = ShellState(root_node(image, provenance, release))
    Commands(state, interactive=False).run(words, out)


def interactive(
    image: MetadataImage, provenance: Provenance, release: ShellRelease, out: TextIO
) -> None:
    """Kafka's InteractiveShell.runMainLoop with plain ``input``: ``>> `` prompts until end
    of input or ``exit``; Ctrl-C prints ``^C`` and prompts again."""
    state = ShellState(root_node(image, provenance, release))
    commands = Commands(state, interactive=True)
    session = Session()
    if sys.stdin.isatty():
        _line_editing(state)
    out.write("[ Kafka Metadata Shell ]\n")
    while not session.exited:
        out.flush()
        try:
            line = input(">> ")
        except EOFError:
            return
        except KeyboardInterrupt:
            out.write("^C\n")
            continue
        if line.strip():
            session.history.append(line)
        try:
            words = shlex.split(line)
        except ValueError as error:
            out.write(f"{error}\n")
            continue
        session.screen_width = _screen_width()
        commands.run(words, out, session)


def _screen_width() -> int | None:
    """The terminal's width for ``ls`` columns; None (one column) when the output is not a
    terminal, as on JLine's dumb terminal (width 0)."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def _line_editing(state: ShellState) -> None:
    """Line editing, history and Tab completion (Kafka's completer) where Python's readline
    is available; plain ``input`` otherwise."""
    try:
        import readline
    except ImportError:
        return

    def completer(text: str, index: int) -> str | None:
        line = readline.get_line_buffer()[: readline.get_endidx()]
        words = line.split()
        if line.endswith(" ") or not words:
            words.append("")
        found = complete(state, words)
        return found[index] if index < len(found) else None

    readline.set_completer_delims(" \t\n")
    readline.set_completer(completer)
    readline.parse_and_bind("tab: complete")


def main(argv: Sequence[str] | None = None) -> int:
    """``kwire shell ...``; returns the exit status (see the module docstring)."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command_config is not None and args.bootstrap_controller is None:
        print("kwire shell: --command-config needs --bootstrap-controller", file=sys.stderr)
        return 2
    release = ShellRelease(args.kafka_release)
    words = list(args.command)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        print("Loading...")
    try:
        image, provenance = load(args)
    except ShellLoadError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    try:
        if words:
            run_commands(image, provenance, release, words, sys.stdout)
        else:
            print("Starting...")
            interactive(image, provenance, release, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        sys.stdout = None  # nothing left to flush at exit
    return 0


if __name__ == "__main__":
    sys.exit(main())
