"""Render every schema into `kwire/protocol/messages/`: load, validate, plan, emit, format."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import jinja2

from codegen.emit import ModuleCode, emit_message
from codegen.emit_c import CModule, emit_c_message
from codegen.merge import merge_specs
from codegen.plan import (
    CONTROL_RECORDS,
    ENTITY_ALIASES,
    FieldPlan,
    MessagePlan,
    StructPlan,
    module_name,
    plan_message,
)
from codegen.schema import MessageSpec, SchemaError, Versions, load_schema

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEMAS = ROOT.parent / "shared" / "kafka-schemas"
DEFAULT_OUTPUT = ROOT / "kwire" / "protocol" / "messages"
MANIFEST = ROOT / "schemas" / "manifest.json"
SCHEMA_FOLDERS = ("message", "metadata", "raft")
# The release lines kwire speaks, oldest first: (release, its folder under the schema root).
# Where both define a version, the newer decides (codegen.merge).
RELEASES = (("3.9.0", "3.9"), ("4.3.1", "4.3"))
KAFKA_RELEASE = " and ".join(release for release, _ in RELEASES)
SPEEDUPS_SOURCE = "_speedups.c"  # the optional compiled readers, beside the Python ones

_RUNTIME_NAMES = [
    "DEFAULT",
    "StructBase",
    "ZERO_UUID",
    "Buffer",
    "accelerate",
    "FieldInfo",
    "Message",
    "RawTaggedField",
    "bad_count",
    "bad_string_length",
    "bad_tagged_size",
    "eof",
    "non_default_on_write",
    "null_on_write",
    "null_value",
    "new_instance",
    "read_uvarint_tail",
    "run_too_short",
    "string_too_long",
    "tagged_in_rigid_version",
    "too_short",
    "uuid_from_bytes",
    "write_tagged_fields",
    "write_uvarint",
]


class ManifestMismatch(Exception):
    """The schema files differ from the ones the manifest records."""


@dataclass(slots=True)
class RenderedMessage:
    plan: MessagePlan
    structs_in_order: list[StructPlan]
    constants: list[tuple[str, tuple[str, str]]]
    aliases: list[tuple[str, str]]
    reader_table: list[str]
    writer_table: list[str]
    field_tables: dict[str, list[str]]
    nested_structs: list[StructPlan]

    @property
    def root(self) -> StructPlan:
        return self.plan.root


def release_folders(schemas: Path) -> list[Path]:
    """The release folders under ``schemas`` (3.9/ and 4.3/), or ``schemas`` itself when it
    holds one release's message/, metadata/ ... folders directly."""
    found = [schemas / folder for _, folder in RELEASES if (schemas / folder).is_dir()]
    return found or [schemas]


def schema_files(schemas: Path, folders: tuple[str, ...] = SCHEMA_FOLDERS) -> list[Path]:
    files: list[Path] = []
    for release in release_folders(schemas):
        for folder in folders:
            files.extend(sorted((release / folder).glob("*.json")))
    if not files:
        raise FileNotFoundError(f"no schema files under {schemas} ({', '.join(folders)})")
    return files


def _folder_rank(spec: MessageSpec, folders: tuple[str, ...]) -> int:
    folder = spec.path.parent.name
    return folders.index(folder) if folder in folders else len(folders)


@dataclass(slots=True)
class LoadedSchemas:
    """Every message of every release, merged; ``sources`` names the files behind each."""

    specs: list[MessageSpec]
    sources: dict[str, list[Path]]
    superseded: set[str]  # older names of an API the newer release renamed (not indexed)


def load_specs(schemas: Path, folders: tuple[str, ...] = SCHEMA_FOLDERS) -> LoadedSchemas:
    """Load each release's schemas and merge the messages they share, by name."""
    merged: dict[str, MessageSpec] = {}
    sources: dict[str, list[Path]] = defaultdict(list)
    newest_key: dict[tuple[str, int], str] = {}
    for release in release_folders(schemas):
        for path in schema_files(release, folders):
            spec = load_schema(path)
            previous = merged.get(spec.name)
            merged[spec.name] = spec if previous is None else merge_specs(previous, spec)
            sources[spec.name].append(path)
            if spec.api_key is not None and spec.type in ("request", "response"):
                newest_key[(spec.type, spec.api_key)] = spec.name
    superseded = {
        spec.name
        for spec in merged.values()
        if spec.api_key is not None
        and spec.type in ("request", "response")
        and newest_key[(spec.type, spec.api_key)] != spec.name
    }
    specs = sorted(merged.values(), key=lambda s: (_folder_rank(s, folders), s.name))
    return LoadedSchemas(specs, dict(sources), superseded)


def file_digests(schemas: Path, files: list[Path]) -> dict[str, str]:
    return {
        f.relative_to(schemas).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files
    }


def check_manifest(schemas: Path, files: list[Path], manifest: Path) -> None:
    if not manifest.exists():
        raise ManifestMismatch(f"{manifest} is missing; run with --update-manifest")
    recorded = json.loads(manifest.read_text())
    actual = file_digests(schemas, files)
    expected: dict[str, str] = recorded["files"]
    problems = [
        f"changed: {k}" for k in sorted(actual) if k in expected and actual[k] != expected[k]
    ]
    problems += [f"new: {k}" for k in sorted(set(actual) - set(expected))]
    problems += [f"missing: {k}" for k in sorted(set(expected) - set(actual))]
    if problems:
        raise ManifestMismatch(
            f"schemas under {schemas} differ from {manifest} "
            f"(Kafka {recorded.get('kafka_release')}): " + "; ".join(problems[:10])
        )


def write_manifest(schemas: Path, files: list[Path], manifest: Path) -> None:
    manifest.parent.mkdir(parents=True, exist_ok=True)
    body = {"kafka_release": KAFKA_RELEASE, "files": file_digests(schemas, files)}
    manifest.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def _render_message(plan: MessagePlan) -> RenderedMessage:
    spec = plan.spec
    first_flexible = None if spec.flexible_versions.empty else spec.flexible_versions.lowest
    constants: list[tuple[str, tuple[str, str]]] = [
        ("KIND", ("str", repr(spec.type))),
        ("API_KEY", ("int | None", repr(spec.api_key))),
        ("LOWEST_VERSION", ("int", str(spec.valid_versions.lowest))),
        ("HIGHEST_VERSION", ("int", str(spec.valid_versions.highest))),
        ("FIRST_FLEXIBLE_VERSION", ("int | None", repr(first_flexible))),
    ]
    if spec.type == "request":
        constants.append(
            (
                "LISTENERS",
                (
                    "frozenset[str]",
                    f"frozenset({tuple(sorted(spec.listeners))!r})",
                ),
            )
        )
        constants.append(("LATEST_VERSION_UNSTABLE", ("bool", repr(spec.latest_version_unstable))))
    if spec.name in CONTROL_RECORDS:
        constants.append(("CONTROL_RECORD_TYPE", ("int", str(CONTROL_RECORDS[spec.name]))))
    aliases: list[tuple[str, str]] = []
    highest = spec.valid_versions.highest
    reader_table = [plan.root.readers.get(v, "None") for v in range(highest + 1)]
    writer_table = [plan.root.writers.get(v, "None") for v in range(highest + 1)]
    field_tables = {
        struct.class_name: [_field_info(f) for f in struct.fields]
        for struct in plan.all_structs_leaves_first()
    }
    return RenderedMessage(
        plan=plan,
        field_tables=field_tables,
        nested_structs=[s for s in plan.all_structs_leaves_first() if not s.is_root],
        structs_in_order=plan.all_structs_leaves_first(),
        constants=constants,
        aliases=aliases,
        reader_table=reader_table,
        writer_table=writer_table,
    )


def _range(versions: Versions) -> str:
    return f"({versions.lowest}, {versions.highest})"


def _field_info(f: FieldPlan) -> str:
    spec = f.spec
    return (
        f"FieldInfo({spec.name!r}, {f.attribute!r}, {str(spec.type)!r}, {_range(spec.versions)}, "
        f"{_range(spec.nullable_versions)}, {_range(spec.tagged_versions)}, {spec.tag!r}, "
        f"{f.struct_class}, {spec.zero_copy!r})"
    )


def render_module(
    specs: list[MessageSpec],
    schemas: Path,
    env: jinja2.Environment,
    c_module: CModule,
    sources: dict[str, list[Path]],
) -> str:
    module = ModuleCode()
    plans = [plan_message(spec) for spec in specs]
    c_readers: dict[tuple[str, int], str] = {}
    for plan in plans:
        emit_message(module, plan)
        emit_c_message(c_module, plan, c_readers)
    entity_names = sorted(
        {
            ENTITY_ALIASES[f.spec.entity_type]
            for plan in plans
            for struct in [plan.root, *plan.structs.values()]
            for f in struct.fields
            if f.spec.entity_type is not None
        }
    )
    runtime = sorted(set(_RUNTIME_NAMES) | module.helpers)
    names = " and ".join(s.name for s in specs)
    return env.get_template("module.py.j2").render(
        title=f"{names}: Kafka's wire format for every version.",
        release=KAFKA_RELEASE,
        sources=[p.relative_to(schemas).as_posix() for s in specs for p in sources[s.name]],
        runtime_names=runtime,
        entity_names=entity_names,
        struct_constants=sorted(module.structs.items(), key=lambda item: item[1]),
        messages=[_render_message(plan) for plan in plans],
        functions=module.functions,
    )


def render_index(
    specs: list[MessageSpec],
    env: jinja2.Environment,
    superseded: frozenset[str] | set[str] = frozenset(),
) -> str:
    by_key: dict[int, dict[str, MessageSpec]] = defaultdict(dict)
    imports: dict[str, list[str]] = defaultdict(list)
    metadata: list[tuple[int, str]] = []
    control: list[tuple[int, str]] = []
    for spec in specs:
        if spec.name in superseded:
            continue
        if spec.type in ("request", "response"):
            assert spec.api_key is not None
            by_key[spec.api_key][spec.type] = spec
        elif spec.type == "metadata":
            assert spec.api_key is not None
            metadata.append((spec.api_key, spec.name))
        elif spec.name in CONTROL_RECORDS:
            control.append((CONTROL_RECORDS[spec.name], spec.name))
        else:
            continue
        # Records are imported with the index (every load of the log reads them); an API's
        # messages are imported by ApiSpec on first use, so the index names their module.
        if spec.type not in ("request", "response"):
            imports[module_name(spec)].append(spec.name)
    apis = []
    for key in sorted(by_key):
        request, response = by_key[key]["request"], by_key[key]["response"]
        name = request.name.removesuffix("Request")
        if request.name != f"{name}Request" or response.name != f"{name}Response":
            raise SchemaError(
                f"{response.name}.json",
                f"API {key}",
                f"ApiSpec finds its classes as <name>Request and <name>Response, "
                f"but they are {request.name} and {response.name}",
            )
        flexible = request.flexible_versions
        apis.append(
            {
                "key": key,
                "name": name,
                "module": module_name(request),
                "lowest": request.valid_versions.lowest,
                "highest": request.valid_versions.highest,
                "first_flexible": None if flexible.empty else flexible.lowest,
                "listeners": repr(sorted(request.listeners)),
                "unstable": request.latest_version_unstable,
            }
        )
    return env.get_template("index.py.j2").render(
        release=KAFKA_RELEASE,
        imports=sorted((m, sorted(n)) for m, n in imports.items()),
        apis=apis,
        metadata_records=sorted(metadata),
        control_records=sorted(control),
    )


def group_modules(specs: list[MessageSpec]) -> dict[str, list[MessageSpec]]:
    modules: dict[str, list[MessageSpec]] = defaultdict(list)
    for spec in specs:
        modules[module_name(spec)].append(spec)
    order = {"request": 0, "header": 0, "response": 1}
    for group in modules.values():
        group.sort(key=lambda s: (order.get(s.type, 0), s.name))
    return dict(sorted(modules.items()))


_PACKAGE_DOCS = {
    "": "Generated codecs for Kafka's messages (see codegen/). Do not edit.",
    "metadata_records": "Generated codecs for Kafka's metadata records. Do not edit.",
    "control": "Generated codecs for KRaft's control records. Do not edit.",
    "data": "Generated codecs for Kafka's other data schemas. Do not edit.",
}


def render_all(schemas: Path, folders: tuple[str, ...] = SCHEMA_FOLDERS) -> dict[str, str]:
    """Every output file, by path relative to the output folder, unformatted."""
    loaded = load_specs(schemas, folders)
    specs = loaded.specs
    env = _environment()
    outputs: dict[str, str] = {}
    c_modules: list[CModule] = []
    for name, group in group_modules(specs).items():
        c_module = CModule(python_module=f"kwire.protocol.messages.{name}")
        outputs[name.replace(".", "/") + ".py"] = render_module(
            group, schemas, env, c_module, loaded.sources
        )
        c_modules.append(c_module)
    outputs[SPEEDUPS_SOURCE] = env.get_template("speedups.c.j2").render(
        release=KAFKA_RELEASE,
        modules=[
            {
                "python_module": m.python_module,
                "key": m.python_module.rsplit("messages.", 1)[1].replace(".", "_"),
                "structs": m.structs,
                "runs": m.runs,
                "functions": m.functions,
                "entries": m.entries,
            }
            for m in c_modules
        ],
    )
    for package, doc in _PACKAGE_DOCS.items():
        if any(k.startswith(package + "/") for k in outputs) or package == "":
            outputs[(package + "/" if package else "") + "__init__.py"] = f'"""{doc}"""\n'
    if "message" in folders:
        outputs["index.py"] = render_index(specs, env, loaded.superseded)
    return outputs


def format_sources(outputs: dict[str, str]) -> dict[str, str]:
    """Format with ruff, as the committed code is, so generated code passes `ruff format --check`."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for name, text in outputs.items():
            path = base / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
        subprocess.run(
            [ruff, "format", "--quiet", "--config", str(ROOT / "pyproject.toml"), str(base)],
            check=True,
        )
        return {name: (base / name).read_text() for name in outputs}


def generate(schemas: Path, folders: tuple[str, ...] = SCHEMA_FOLDERS) -> dict[str, str]:
    return format_sources(render_all(schemas, folders))


def write_outputs(outputs: dict[str, str], out_dir: Path) -> None:
    # Remove generated files that are no longer generated; keep build products (the
    # compiled accelerator) and caches.
    if out_dir.exists():
        for path in [*out_dir.rglob("*.py"), *out_dir.rglob("*.c")]:
            if path.relative_to(out_dir).as_posix() not in outputs:
                path.unlink()
    for name, text in outputs.items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def stale_files(outputs: dict[str, str], out_dir: Path) -> list[str]:
    problems = []
    for name, text in outputs.items():
        path = out_dir / name
        if not path.exists():
            problems.append(f"missing: {name}")
        elif path.read_text() != text:
            problems.append(f"stale: {name}")
    if out_dir.exists():
        for path in sorted([*out_dir.rglob("*.py"), *out_dir.rglob("*.c")]):
            name = path.relative_to(out_dir).as_posix()
            if name not in outputs:
                problems.append(f"extra: {name}")
    return problems
