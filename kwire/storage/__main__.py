"""``python -m kwire.storage``: Kafka's ``kafka-storage.sh`` for a kwire controller.

    python -m kwire.storage format -c controller.properties -t CLUSTER_ID
        [--release-version 4.3-IV0] [--feature name=level ...] [--ignore-formatted]
        [--standalone | --initial-controllers ID@HOST:PORT:DIRID,... | --no-initial-controllers]
        [--override key=value ...]
    python -m kwire.storage info -c controller.properties [--override key=value ...]
    python -m kwire.storage random-uuid

Refusals print one line on stderr and exit with status 1, as kafka-storage does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from kwire.metadata_version import LATEST_PRODUCTION, MINIMUM_VERSION
from kwire.server.config import ConfigError, ControllerServerConfig, parse_overrides
from kwire.storage.bootstrap import BootstrapError
from kwire.storage.dynamic_voters import DynamicVoter, DynamicVoterError, DynamicVoters
from kwire.storage.feature_levels import FeatureLevelError
from kwire.storage.formatter import (
    STATIC_AND_INITIAL_VOTERS,
    FormatterError,
    format_storage,
    random_directory_uuid,
    random_uuid,
    storage_info,
)
from kwire.storage.release import ReleaseVersionError

logger = logging.getLogger("kwire.storage")


class _Refusal(Exception):
    """A one-line refusal for stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One clear line and status 1, rather than argparse's usage dump and status 2.
        raise _Refusal(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kafka-storage", description="The Kafka storage tool (kwire).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    info = commands.add_parser(
        "info", help="Get information about the log directories on this node."
    )
    fmt = commands.add_parser("format", help="Format the log directories on this node.")
    commands.add_parser("random-uuid", help="Print a random UUID.")
    for sub in (info, fmt):
        sub.add_argument(
            "--config", "-c", required=True, help="The Kafka configuration file to use."
        )
        sub.add_argument(
            "--override",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Override a configuration property.",
        )
    fmt.add_argument("--cluster-id", "-t", required=True, help="The cluster ID to use.")
    fmt.add_argument("--ignore-formatted", "-g", action="store_true")
    fmt.add_argument(
        "--release-version",
        "-r",
        help=f"The release version to use for the initial feature settings. The minimum is "
        f"{MINIMUM_VERSION.version}; the default is {LATEST_PRODUCTION.version}",
    )
    fmt.add_argument(
        "--feature",
        "-f",
        action="append",
        default=[],
        help="The setting to use for a specific feature, in feature=level format. For "
        "example: `kraft.version=1`.",
    )
    quorum = fmt.add_mutually_exclusive_group()
    quorum.add_argument(
        "--standalone",
        "-s",
        action="store_true",
        help="Used to initialize a controller as a single-node dynamic quorum. When setting "
        "this flag, the controller.quorum.voters config must not be set, and "
        "controller.quorum.bootstrap.servers is set instead.",
    )
    quorum.add_argument(
        "--no-initial-controllers",
        "-N",
        action="store_true",
        help="Used to initialize a server without specifying a dynamic quorum. When setting "
        "this flag, the controller.quorum.voters config should not be set, and "
        "controller.quorum.bootstrap.servers is set instead.",
    )
    quorum.add_argument(
        "--initial-controllers",
        "-I",
        help="Used to initialize a server with the specified dynamic quorum. The argument is "
        "a comma-separated list of id@hostname:port:directory. The same values must be used "
        "to format all nodes. For example: 0@example.com:8082:JEXY6aqzQY-32P5TStzaFg,"
        "1@example.com:8083:MvDxzVmcRsaTz33bUuRU6A,2@example.com:8084:07R5amHmR32VDA6jHkGbTA. "
        "When setting this flag, the controller.quorum.voters config must not be set, and "
        "controller.quorum.bootstrap.servers is set instead.",
    )
    # Accepted so that its refusal is explicit rather than an "unrecognized argument".
    fmt.add_argument("--add-scram", "-S", action="append", help=argparse.SUPPRESS)
    return parser


def _load_config(args: argparse.Namespace) -> ControllerServerConfig:
    config = ControllerServerConfig.load(Path(args.config), parse_overrides(args.override))
    for key in config.unknown_keys:
        logger.debug("ignoring configuration key %s, which a kwire controller does not use", key)
    return config


def _standalone_voters(config: ControllerServerConfig) -> DynamicVoters:
    """StorageTool.createStandaloneDynamicVoters: this node on its first advertised
    controller listener (``localhost`` when that listener names no host), with a fresh
    directory id. (Kafka builds the text ``id@host:port:dir`` and parses it, which fails
    for an IPv6 host; kwire takes the host as it is.)"""
    listener = config.controller_listener
    host = listener.host or "localhost"
    voter = DynamicVoter(config.node_id, host, listener.port, random_directory_uuid())
    return DynamicVoters.of([voter])


def _format(args: argparse.Namespace) -> int:
    """Kafka 4.3.1's StorageTool.runFormatCommand, in its order of checks."""
    if args.add_scram:
        raise _Refusal("kwire does not support --add-scram: SCRAM credentials are not implemented")
    config = _load_config(args)
    if config.quorum_voters and (args.initial_controllers is not None or args.standalone):
        raise _Refusal(STATIC_AND_INITIAL_VOTERS)
    initial = None
    if args.initial_controllers is not None:
        initial = DynamicVoters.parse(args.initial_controllers)
    if args.standalone:
        initial = _standalone_voters(config)
    if not config.quorum_voters and not args.no_initial_controllers and initial is None:
        raise _Refusal(
            "Because controller.quorum.voters is not set on this controller, you must specify "
            "one of the following: --standalone, --initial-controllers, or --no-initial-controllers."
        )
    result = format_storage(
        config,
        args.cluster_id,
        args.release_version,
        args.ignore_formatted,
        args.feature,
        initial_controllers=initial,
    )
    for line in result.lines:
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run(argv)


def run(argv: Sequence[str] | None = None) -> int:
    """The command without the logging set-up `main` does (for a caller in its own
    process, e.g. kwire.testing): prints to sys.stdout and sys.stderr, returns the exit
    status (0, or 1 after a one-line refusal on stderr)."""
    try:
        args = _parser().parse_args(argv)
        if args.command == "random-uuid":
            print(random_uuid())
            return 0
        if args.command == "info":
            lines, status = storage_info(_load_config(args).all_log_dirs)
            for line in lines:
                print(line)
            return status
        return _format(args)
    except (
        _Refusal,
        ConfigError,
        FormatterError,
        FeatureLevelError,
        ReleaseVersionError,
        BootstrapError,
        DynamicVoterError,
    ) as e:
        print(str(e), file=sys.stderr)
        return 1
    except OSError as e:
        print(f"I/O error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
