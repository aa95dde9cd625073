"""The generator: schema validation, the test-only schemas, determinism, freshness."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
from pathlib import Path
from uuid import UUID

import pytest

from codegen.generate import (
    DEFAULT_OUTPUT,
    DEFAULT_SCHEMAS,
    ManifestMismatch,
    _environment,
    check_manifest,
    format_sources,
    generate,
    render_all,
    render_index,
    schema_files,
    stale_files,
    write_manifest,
)
from codegen.plan import plan_message
from codegen.schema import (
    MessageSpec,
    SchemaError,
    Versions,
    load_schema,
    parse_message,
    to_snake_case,
)
from codegen.sizes import MinimumSizes

needs_schemas = pytest.mark.skipif(
    not DEFAULT_SCHEMAS.is_dir(),
    reason=f"Kafka's schemas are not at {DEFAULT_SCHEMAS} (../shared is absent)",
)


def message(fields: list[dict[str, object]], **top: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "name": "TestMessage",
        "type": "data",
        "validVersions": "0-3",
        "flexibleVersions": "2+",
        "fields": fields,
    }
    raw.update(top)
    return raw


BAD_SCHEMAS = {
    "unknown type": (
        message([{"name": "A", "type": "int33", "versions": "0+"}]),
        "unknown type",
        "field A",
    ),
    "bad version range": (
        message([{"name": "A", "type": "int32", "versions": "3-1"}]),
        "bad version range",
        "field A",
    ),
    "duplicate tag": (
        message(
            [
                {"name": "A", "type": "int32", "versions": "2+", "taggedVersions": "2+", "tag": 0},
                {"name": "B", "type": "int32", "versions": "2+", "taggedVersions": "2+", "tag": 0},
            ]
        ),
        "duplicate tag 0",
        "field B",
    ),
    "tagged field outside flexible versions": (
        message(
            [{"name": "A", "type": "int32", "versions": "0+", "taggedVersions": "1+", "tag": 0}]
        ),
        "tagged field outside flexible versions",
        "field A",
    ),
    "nullable field that cannot be": (
        message([{"name": "A", "type": "int32", "versions": "0+", "nullableVersions": "0+"}]),
        "cannot be nullable",
        "field A",
    ),
    "mapKey on a top-level field": (
        message([{"name": "A", "type": "int32", "versions": "0+", "mapKey": True}]),
        "mapKey",
        "field A",
    ),
    "mapKey on a tagged field": (
        message(
            [
                {
                    "name": "Items",
                    "type": "[]Item",
                    "versions": "0+",
                    "fields": [
                        {
                            "name": "K",
                            "type": "int32",
                            "versions": "2+",
                            "mapKey": True,
                            "taggedVersions": "2+",
                            "tag": 0,
                        }
                    ],
                }
            ]
        ),
        "mapKey misuse",
        "field K",
    ),
    "null default on a field not always nullable": (
        message(
            [
                {
                    "name": "A",
                    "type": "string",
                    "versions": "0+",
                    "nullableVersions": "1+",
                    "default": "null",
                }
            ]
        ),
        "null cannot be the default",
        "field A",
    ),
    "tags that skip a number": (
        message(
            [{"name": "A", "type": "int32", "versions": "2+", "taggedVersions": "2+", "tag": 1}]
        ),
        "not contiguous",
        "TestMessage",
    ),
    "default out of range": (
        message([{"name": "A", "type": "int8", "versions": "0+", "default": "300"}]),
        "out of range",
        "field A",
    ),
    "flexibleVersions that end": (
        message([], flexibleVersions="1-2"),
        "open-ended",
        "message TestMessage",
    ),
    "struct field without fields": (
        message([{"name": "A", "type": "Missing", "versions": "0+"}]),
        "unknown type",
        "field A",
    ),
}


@pytest.mark.parametrize("case", BAD_SCHEMAS, ids=list(BAD_SCHEMAS))
def test_each_validation_error_names_the_file_and_the_field(case: str) -> None:
    raw, problem, where = BAD_SCHEMAS[case]
    with pytest.raises(SchemaError) as caught:
        parse_message(raw, Path("schemas/TestMessage.json"))
    text = str(caught.value)
    assert "schemas/TestMessage.json" in text
    assert where in text
    assert problem in text


def test_a_valid_schema_passes_validation() -> None:
    spec = parse_message(
        message(
            [
                {"name": "A", "type": "int32", "versions": "0+", "default": "0x7f"},
                {"name": "B", "type": "string", "versions": "2+", "taggedVersions": "2+", "tag": 0},
            ]
        ),
        Path("x.json"),
    )
    assert [f.name for f in spec.fields] == ["A", "B"]
    assert spec.fields[1].tagged_versions == Versions.parse("2+")


def api_pair(request: str, response: str) -> list[MessageSpec]:
    return [
        parse_message(
            message([], name=name, type=kind, apiKey=90, **extra),
            Path(f"{name}.json"),
        )
        for name, kind, extra in (
            (request, "request", {"listeners": ["controller"]}),
            (response, "response", {}),
        )
    ]


def test_the_index_names_each_apis_module_and_imports_only_records() -> None:
    text = render_index(api_pair("ProbeRequest", "ProbeResponse"), _environment())
    assert 'module="probe",' in text
    assert "import ProbeRequest" not in text


def test_an_api_whose_response_is_not_named_for_it_fails_generation() -> None:
    # ApiSpec finds an API's classes by name; Kafka's schemas always pair XRequest/XResponse.
    with pytest.raises(SchemaError, match="<name>Request and <name>Response"):
        render_index(api_pair("ProbeRequest", "OtherResponse"), _environment())


def test_versions_parse_every_form() -> None:
    assert Versions.parse("3+") == Versions(3, 0x7FFF)
    assert Versions.parse("1-4") == Versions(1, 4)
    assert Versions.parse("2") == Versions(2, 2)
    assert Versions.parse("none").empty
    assert str(Versions.parse("1-4").intersect(Versions.parse("3+"))) == "3-4"


@pytest.mark.parametrize(
    ("kafka", "python"),
    [("BrokerId", "broker_id"), ("ISRNodes", "isrnodes"), ("TopicID", "topic_id"), ("A", "a")],
)
def test_snake_case_follows_kafkas_rule(kafka: str, python: str) -> None:
    assert to_snake_case(kafka) == python


TINY = {
    "name": "TinyMessage",
    "type": "data",
    "validVersions": "0-1",
    "flexibleVersions": "1+",
    "fields": [
        {"name": "Id", "type": "int32", "versions": "0+"},
        {"name": "Name", "type": "string", "versions": "1+", "nullableVersions": "1+"},
    ],
}

TINY_READER_V0 = """def _read_TinyMessage_v0(buf: Buffer, pos: int) -> tuple[TinyMessage, int]:
    o = new_instance(TinyMessage)
    try:
        (o.id,) = _ST_int32.unpack_from(buf, pos)
    except struct_error:
        raise run_too_short((("id", 4),), pos, len(buf) - pos) from None
    pos += 4
    o.name = ""
    o.unknown_tagged_fields = ()
    return o, pos
"""


def test_the_generator_emits_straight_line_code(tmp_path: Path) -> None:
    (tmp_path / "message").mkdir()
    (tmp_path / "message" / "TinyMessage.json").write_text(json.dumps(TINY))
    outputs = format_sources(render_all(tmp_path, ("message",)))
    text = outputs["data/tiny_message.py"]
    assert TINY_READER_V0 in text
    assert "for " not in text.split("def _read_TinyMessage_v0")[1].split("\ndef ")[0]


# -- the test-only schemas, rendered and imported ------------------------------------------


@pytest.fixture(scope="module")
def test_only_modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if not DEFAULT_SCHEMAS.is_dir():
        pytest.skip(f"Kafka's schemas are not at {DEFAULT_SCHEMAS} (../shared is absent)")
    outputs = generate(DEFAULT_SCHEMAS / "3.9", ("test-only",))
    root = tmp_path_factory.mktemp("generated") / "kwire_test_only"
    root.mkdir()
    for name, text in outputs.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    sys.path.insert(0, str(root.parent))
    try:
        return {
            name: importlib.import_module(f"kwire_test_only.{name}")
            for name in (
                "simple_example_message",
                "nullable_struct_message",
                "simple_arrays_message",
                "simple_records_message",
            )
        }
    finally:
        sys.path.remove(str(root.parent))


def test_simple_example_defaults_follow_the_schema(test_only_modules: dict[str, object]) -> None:
    cls = test_only_modules["simple_example_message"].SimpleExampleMessage  # type: ignore[attr-defined]
    default = cls()
    assert default.my_int16 == 123
    assert default.my_float64 == 12.34
    assert default.tagged_long == 0xCAFCACAFCACAFCA
    assert default.tagged_uuid == UUID(bytes=bytes.fromhex("1f728a3b835344f6825ad1269b7bd6ec"))
    assert default.my_nullable_string is None
    assert default.my_uint16 == 33000
    assert default.my_common_struct.foo == 123


def test_simple_example_tagged_fields_round_trip(test_only_modules: dict[str, object]) -> None:
    cls = test_only_modules["simple_example_message"].SimpleExampleMessage  # type: ignore[attr-defined]
    value = cls(
        process_id=UUID(int=5),
        my_tagged_int_array=[1, 2, 3],
        my_nullable_string="tagged",
        my_int16=7,
        my_string="s",
        my_bytes=b"\x01\x02",
    )
    for version in (1, 2):
        data = value.encode(version)
        again = cls.decode(data, version)
        assert again.my_tagged_int_array == [1, 2, 3]
        assert again.my_nullable_string == "tagged"
        assert again.my_int16 == 7
        assert again.encode(version) == data


def test_tagged_fields_at_their_default_are_not_written(
    test_only_modules: dict[str, object],
) -> None:
    cls = test_only_modules["simple_example_message"].SimpleExampleMessage  # type: ignore[attr-defined]
    plain = cls().encode(1)
    with_tag = cls(my_int16=124).encode(1)
    # Tag 2 (my_int16) costs: tag 1 byte, size 1 byte, value 2 bytes.
    assert len(with_tag) == len(plain) + 4


def test_nullable_struct_encodes_a_marker(test_only_modules: dict[str, object]) -> None:
    cls = test_only_modules["nullable_struct_message"].NullableStructMessage  # type: ignore[attr-defined]
    for version in range(cls.LOWEST_VERSION, cls.HIGHEST_VERSION + 1):
        data = cls().encode(version)
        assert cls.decode(data, version).encode(version) == data


def test_records_are_zero_copy(test_only_modules: dict[str, object]) -> None:
    cls = test_only_modules["simple_records_message"].SimpleRecordsMessage  # type: ignore[attr-defined]
    value = cls(topic="t", record_set=b"\x00" * 64)
    data = bytearray(value.encode(1))
    decoded = cls.decode(data, 1)
    assert isinstance(decoded.record_set, memoryview)
    data[-10] ^= 0xFF  # the view sees the buffer: nothing was copied
    assert bytes(decoded.record_set) != b"\x00" * 64


# -- determinism, freshness and the manifest ------------------------------------------------


@needs_schemas
def test_two_runs_give_identical_bytes() -> None:
    first = render_all(DEFAULT_SCHEMAS)
    second = render_all(DEFAULT_SCHEMAS)
    assert first == second
    assert all(
        text.startswith('"""' if name.endswith(".py") else "/*") and "kwire's codegen" in text
        for name, text in first.items()
        if not name.endswith("__init__.py")
    )


@needs_schemas
def test_committed_generated_code_is_fresh() -> None:
    problems = stale_files(generate(DEFAULT_SCHEMAS), DEFAULT_OUTPUT)
    assert problems == [], "run python -m codegen: " + ", ".join(problems[:5])


@needs_schemas
def test_the_manifest_refuses_changed_schemas(tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    for release in ("3.9", "4.3"):
        for folder in ("message", "metadata", "raft"):
            shutil.copytree(DEFAULT_SCHEMAS / release / folder, copy / release / folder)
    manifest = tmp_path / "manifest.json"
    write_manifest(copy, schema_files(copy), manifest)
    check_manifest(copy, schema_files(copy), manifest)
    target = copy / "4.3" / "message" / "VoteRequest.json"
    target.write_text(target.read_text().replace('"0-2"', '"0-3"'))
    with pytest.raises(ManifestMismatch, match="changed: 4.3/message/VoteRequest.json"):
        check_manifest(copy, schema_files(copy), manifest)


def test_the_c_accelerator_has_a_twin_for_every_top_level_reader(tmp_path: Path) -> None:
    (tmp_path / "message").mkdir()
    (tmp_path / "message" / "TinyMessage.json").write_text(json.dumps(TINY))
    source = render_all(tmp_path, ("message",))["_speedups.c"]
    # Each Python reader is bound to its compiled twin by name.
    for version in (0, 1):
        assert f'{{"_read_TinyMessage_v{version}", (PyCFunction)' in source
        assert f"r_TinyMessage_v{version}(Reader *r, Py_ssize_t *ppos)" in source
    # The same check, in the same order, as the Python: the run, then the bound on the name.
    v1 = source.split("r_TinyMessage_v1(Reader *r, Py_ssize_t *ppos)")[1].split("\n}\n")[0]
    assert v1.index("raise_run_too_short") < v1.index('raise_too_short("name"')
    assert "for (" in v1  # the tagged-field loop: the only loop in a struct of scalars
    assert v1.count("for (") == 1


# -- minimum encoded sizes: the bound on an array's claimed count ------------------------------

SIZED = {
    "name": "SizedMessage",
    "type": "data",
    "validVersions": "0-2",
    "flexibleVersions": "2+",
    "fields": [
        {"name": "Id", "type": "int32", "versions": "0+"},
        {"name": "Name", "type": "string", "versions": "0+"},
        {"name": "Blob", "type": "bytes", "versions": "1+"},
        {
            "name": "Inner",
            "type": "Inner",
            "versions": "0+",
            "nullableVersions": "1+",
            "fields": [
                {"name": "A", "type": "int64", "versions": "0+"},
                {"name": "Ids", "type": "[]int16", "versions": "0+"},
            ],
        },
        {
            "name": "Items",
            "type": "[]Item",
            "versions": "0+",
            "fields": [
                {"name": "Key", "type": "uuid", "versions": "0+"},
                {"name": "Label", "type": "string", "versions": "0+", "nullableVersions": "0+"},
                {
                    "name": "Extra",
                    "type": "int32",
                    "versions": "2+",
                    "taggedVersions": "2+",
                    "tag": 0,
                },
            ],
        },
    ],
}


def sized_plan() -> MinimumSizes:
    return MinimumSizes(plan_message(parse_message(SIZED, Path("SizedMessage.json"))))


@pytest.mark.parametrize(
    ("struct", "version", "minimum"),
    [
        # int64 8 + rigid array count 4
        ("Inner", 0, 12),
        # int64 8 + compact array count 1 + tagged-field count 1
        ("Inner", 2, 10),
        # uuid 16 + rigid string length 2 (null costs the same)
        ("Item", 0, 18),
        # uuid 16 + compact string 1 + tagged-field count 1; the tagged Extra costs nothing
        ("Item", 2, 18),
        # Id 4 + Name 2 + Inner (not yet nullable) 12 + Items count 4; Blob is absent
        (None, 0, 22),
        # Id 4 + Name 2 + Blob length 4 + Inner's null marker 1 + Items count 4
        (None, 1, 15),
        # Id 4 + Name 1 + Blob 1 + marker 1 + Items 1 + tagged-field count 1
        (None, 2, 9),
    ],
)
def test_minimum_sizes_add_up_each_fields_smallest_encoding(
    struct: str | None, version: int, minimum: int
) -> None:
    assert sized_plan().struct(struct, version) == minimum


def test_an_arrays_bound_is_its_elements_minimum() -> None:
    sizes = sized_plan()
    plan = sizes.message
    items = next(f.spec for f in plan.root.fields if f.attribute == "items")
    ids = next(f.spec for f in plan.structs["Inner"].fields if f.attribute == "ids")
    assert [sizes.array_bound(items, v) for v in (0, 1, 2)] == [18, 18, 18]
    assert [sizes.array_bound(ids, v) for v in (0, 2)] == [2, 2]


@needs_schemas
@pytest.mark.parametrize(
    ("struct", "version", "minimum"),
    [
        # topic string length 2 + partitions count 4
        ("FetchTopic", 4, 6),
        # compact topic 1 + compact partitions 1 + tagged-field count 1
        ("FetchTopic", 12, 3),
        # topic_id uuid 16 + compact partitions 1 + tagged-field count 1
        ("FetchTopic", 13, 18),
        # partition 4 + fetch_offset 8 + partition_max_bytes 4
        ("FetchPartition", 0, 16),
        # partition 4, current_leader_epoch 4, fetch_offset 8, last_fetched_epoch 4,
        # log_start_offset 8, partition_max_bytes 4, tagged-field count 1
        ("FetchPartition", 12, 33),
        # replica_id, max_wait_ms, min_bytes, max_bytes 4 each + isolation_level 1 + topics 4
        (None, 4, 21),
    ],
)
def test_fetch_request_minimum_sizes_match_a_count_by_hand(
    struct: str | None, version: int, minimum: int
) -> None:
    spec = load_schema(DEFAULT_SCHEMAS / "3.9" / "message" / "FetchRequest.json")
    assert MinimumSizes(plan_message(spec)).struct(struct, version) == minimum


def test_both_readers_check_the_count_against_the_elements_minimum(tmp_path: Path) -> None:
    (tmp_path / "message").mkdir()
    (tmp_path / "message" / "SizedMessage.json").write_text(json.dumps(SIZED))
    outputs = render_all(tmp_path, ("message",))
    python, c = outputs["data/sized_message.py"], outputs["_speedups.c"]
    # Items elements take at least 18 bytes, Inner.ids elements 2, in every version.
    python_v0 = python.split("def _read_SizedMessage_v0")[1].split("\ndef ")[0]
    assert "elif count3 * 18 > len(buf) - pos:" in python_v0
    assert "raise bad_count('items', pos, count3, 18, len(buf) - pos)" in python_v0
    assert 'raise_bad_count("items", pos, count2, 18, len - pos);' in c
    assert 'raise_bad_count("Inner.ids", pos, count1, 2, len - pos);' in c
    # The C reserves the list only after the check.
    reader = c.split("r_SizedMessage_v0(Reader *r, Py_ssize_t *ppos)")[1].split("\n}\n")[0]
    assert reader.index("count2 * 18 > len - pos") < reader.index("PyList_New(count2)")


SHARED_VERSIONS = {
    "name": "SharedMessage",
    "type": "data",
    "validVersions": "0-2",
    "flexibleVersions": "2+",
    "fields": [
        {"name": "Id", "type": "int32", "versions": "0+"},
        {
            "name": "Items",
            "type": "[]Item",
            "versions": "0+",
            "fields": [{"name": "Key", "type": "int64", "versions": "0+"}],
        },
        {"name": "Name", "type": "string", "versions": "1+"},
    ],
}


def test_versions_sharing_a_python_reader_share_one_c_function(tmp_path: Path) -> None:
    (tmp_path / "message").mkdir()
    (tmp_path / "message" / "SharedMessage.json").write_text(json.dumps(SHARED_VERSIONS))
    outputs = render_all(tmp_path, ("message",))
    python, c = outputs["data/shared_message.py"], outputs["_speedups.c"]
    # Item reads the same run in v0 and v1 (one Python reader); v2 adds a tag count.
    assert "def _read_SharedMessage_Item_v1" not in python
    assert "r_SharedMessage_Item_v0(Reader *r" in c
    assert "r_SharedMessage_Item_v1(Reader *r" not in c
    assert "r_SharedMessage_Item_v2(Reader *r" in c
    # Each Python reader has exactly one C twin, bound by its name.
    python_readers = re.findall(r"^def (_read_\w+)\(", python, re.MULTILINE)
    c_functions = re.findall(r"^(r_\w+)\(Reader \*r, Py_ssize_t \*ppos\)$", c, re.MULTILINE)
    assert [name.removeprefix("_read_") for name in python_readers] == [
        name.removeprefix("r_") for name in c_functions
    ]
    bound = re.findall(r'\{"(_read_\w+)", \(PyCFunction\)', c)
    assert (
        sorted(bound)
        == sorted(set(bound))
        == ["_read_SharedMessage_v0", "_read_SharedMessage_v1", "_read_SharedMessage_v2"]
    )
