"""The ``kwire`` command: one entry point for kwire's server and its operator tools.

``kwire <command> [arguments]``, where each command is a module with its own
``main(argv) -> int`` (exit status) and ``--help``:

========== ============================== ==========================================
command    module                         Kafka counterpart
========== ============================== ==========================================
server     kwire.server.__main__          kafka-server-start (process.roles=controller)
storage    kwire.storage.__main__         kafka-storage
dump-log   kwire.tools.dump_log           kafka-dump-log --cluster-metadata-decoder
shell      kwire.tools.shell              kafka-metadata-shell
history    kwire.tools.history            (none: the image at an offset, diffs, timelines)
quorum     kwire.tools.quorum             kafka-metadata-quorum
========== ============================== ==========================================

Modules are imported only when their command runs, so ``kwire --help`` is instant and a
command's dependencies never slow another's start.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "server": ("kwire.server.__main__", "run a controller (python -m kwire.server)"),
    "storage": ("kwire.storage.__main__", "format a metadata directory (kafka-storage)"),
    "dump-log": ("kwire.tools.dump_log", "print __cluster_metadata files (kafka-dump-log)"),
    "shell": ("kwire.tools.shell", "browse the metadata image (kafka-metadata-shell)"),
    "history": ("kwire.tools.history", "the image at an offset, diffs and timelines"),
    "quorum": ("kwire.tools.quorum", "describe a quorum (kafka-metadata-quorum)"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: kwire <command> [arguments]   (kwire <command> --help for each)", ""]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kwire <command> ...``; returns the command's exit status (2 for a bad command)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"kwire: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    command: Callable[[list[str]], int] = module.main
    return command(rest)


if __name__ == "__main__":
    sys.exit(main())
