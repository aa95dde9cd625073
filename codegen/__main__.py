"""`python -m codegen`: generate kwire's codecs from Kafka's JSON schemas."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codegen.generate import (
    DEFAULT_OUTPUT,
    DEFAULT_SCHEMAS,
    MANIFEST,
    ManifestMismatch,
    check_manifest,
    generate,
    schema_files,
    stale_files,
    write_manifest,
    write_outputs,
)
from codegen.schema import SchemaError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codegen",
        description="Generate kwire/protocol/messages from Kafka's JSON message schemas.",
    )
    parser.add_argument(
        "--schemas",
        type=Path,
        default=DEFAULT_SCHEMAS,
        help="folder holding one folder per release line (3.9/ and 4.3/, each with message/, "
        "metadata/ and raft/), merged as codegen.merge describes (default: %(default)s); "
        "a folder holding message/, metadata/ and raft/ directly is one release alone",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT, help="output folder")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the committed generated code is stale",
    )
    parser.add_argument(
        "--update-manifest",
        action="store_true",
        help="accept the given schemas and record their checksums in schemas/manifest.json",
    )
    args = parser.parse_args(argv)
    schemas: Path = args.schemas
    if not schemas.is_dir():
        print(f"error: schema folder {schemas} does not exist", file=sys.stderr)
        return 2
    try:
        files = schema_files(schemas)
        if args.update_manifest:
            write_manifest(schemas, files, MANIFEST)
        else:
            check_manifest(schemas, files, MANIFEST)
        outputs = generate(schemas)
    except (SchemaError, ManifestMismatch, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = stale_files(outputs, args.out)
        if problems:
            print(f"{args.out} is out of date: run python -m codegen", file=sys.stderr)
            for problem in problems[:20]:
                print(f"  {problem}", file=sys.stderr)
            return 1
        print(f"{args.out}: {len(outputs)} generated files are up to date")
        return 0
    write_outputs(outputs, args.out)
    print(f"wrote {len(outputs)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
