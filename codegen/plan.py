"""The generator's model of one output module: which classes, fields and versions it holds.

Everything the templates print is decided here or in `codegen.emit`: the templates only
lay the pieces out. A struct's versions are the message's valid versions narrowed by
every field on the path to it, as in Kafka's StructRegistry.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from uuid import UUID

from codegen.schema import (
    FieldSpec,
    FieldType,
    MessageSpec,
    Primitive,
    StructSpec,
    Versions,
    parse_int_default,
    to_snake_case,
)

ENTITY_ALIASES = {
    "brokerId": "BrokerId",
    "topicName": "TopicName",
    "groupId": "GroupId",
    "producerId": "ProducerId",
    "transactionalId": "TransactionalId",
}

_PYTHON_TYPES = {
    Primitive.BOOL: "bool",
    Primitive.INT8: "int",
    Primitive.INT16: "int",
    Primitive.UINT16: "int",
    Primitive.INT32: "int",
    Primitive.UINT32: "int",
    Primitive.INT64: "int",
    Primitive.FLOAT64: "float",
    Primitive.UUID: "UUID",
    Primitive.STRING: "str",
    Primitive.BYTES: "bytes",
    Primitive.RECORDS: "bytes | memoryview",
}

# Names the generated classes define themselves; a schema field may not take them.
RESERVED_ATTRIBUTES = {"encode", "decode", "read", "write", "unknown_tagged_fields"}


@dataclass(slots=True)
class FieldPlan:
    spec: FieldSpec
    attribute: str  # the Python attribute name
    annotation: str  # the type hint
    default: str  # the __init__ parameter's default: a literal, or DEFAULT with a factory
    default_value: str  # a Python expression that builds the default value afresh
    factory: str | None  # what builds the default per instance (list, _new<Class>), or None
    struct_class: str | None  # the class of a struct or struct-array element


@dataclass(slots=True)
class StructPlan:
    spec: StructSpec
    class_name: str  # the module-level class name
    public_name: str  # how users name it: FetchRequest.FetchTopic
    versions: set[int]
    flexible: bool  # has a flexible version, so carries unknown tagged fields
    fields: list[FieldPlan] = field(default_factory=list)
    readers: dict[int, str] = field(default_factory=dict)
    writers: dict[int, str] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)  # struct names it uses

    @property
    def is_root(self) -> bool:
        return "." not in self.public_name

    @property
    def slots(self) -> str:
        """The class's fields in order (its ``__slots__`` and ``__match_args__``), a tuple
        literal."""
        names = [f.attribute for f in self.fields]
        if self.flexible:
            names.append("unknown_tagged_fields")
        return (
            "(" + ", ".join(f'"{name}"' for name in names) + ("," if len(names) == 1 else "") + ")"
        )

    @property
    def factories(self) -> str | None:
        """``_FACTORIES``, a dict literal: each field whose default is built per instance,
        with what builds it; None when there is none."""
        pairs = [f'"{f.attribute}": {f.factory}' for f in self.fields if f.factory]
        return "{" + ", ".join(pairs) + "}" if pairs else None


@dataclass(slots=True)
class MessagePlan:
    spec: MessageSpec
    root: StructPlan
    structs: dict[str, StructPlan]  # nested structs by schema name

    def all_structs_leaves_first(self) -> list[StructPlan]:
        order: list[StructPlan] = []
        seen: set[str] = set()

        def visit(plan: StructPlan) -> None:
            for child in plan.children:
                if child not in seen:
                    seen.add(child)
                    visit(self.structs[child])
            order.append(plan)

        visit(self.root)
        return order


def plan_message(spec: MessageSpec) -> MessagePlan:
    versions_of: dict[str, set[int]] = {}
    _collect_versions(spec.fields, spec, set(spec.valid_versions), versions_of)
    flexible = spec.flexible_versions
    structs: dict[str, StructPlan] = {}
    for name, struct_spec in spec.structs.items():
        if name not in versions_of:
            continue  # a common struct no field uses
        versions = versions_of[name]
        plan = StructPlan(
            spec=struct_spec,
            class_name=f"_{spec.name}_{name}",
            public_name=f"{spec.name}.{name}",
            versions=versions,
            flexible=any(v in flexible for v in versions),
        )
        structs[name] = plan
    root = StructPlan(
        spec=spec.root,
        class_name=spec.name,
        public_name=spec.name,
        versions=set(spec.valid_versions),
        flexible=not flexible.intersect(spec.valid_versions).empty,
    )
    for plan in [root, *structs.values()]:
        plan.fields = [_plan_field(f, structs, spec) for f in plan.spec.fields]
        plan.children = [f.spec.type.struct for f in plan.fields if f.spec.type.struct is not None]
    return MessagePlan(spec=spec, root=root, structs=structs)


def _collect_versions(
    fields: list[FieldSpec], spec: MessageSpec, parent: set[int], out: dict[str, set[int]]
) -> None:
    for f in fields:
        name = f.type.struct
        if name is None:
            continue
        present = {v for v in parent if v in f.versions}
        known = out.setdefault(name, set())
        if present <= known:
            continue
        known |= present
        _collect_versions(spec.structs[name].fields, spec, present, out)


def _plan_field(f: FieldSpec, structs: dict[str, StructPlan], spec: MessageSpec) -> FieldPlan:
    attribute = to_snake_case(f.name)
    if attribute in RESERVED_ATTRIBUTES:
        attribute += "_"
    struct_class = structs[f.type.struct].class_name if f.type.struct is not None else None
    public_class = structs[f.type.struct].public_name if f.type.struct is not None else None
    nullable = not f.nullable_versions.empty
    element = _element_annotation(f, public_class)
    annotation = f"list[{element}]" if f.type.array else element
    # A records field defaults to null in every version, as in Kafka.
    if nullable or f.type.primitive is Primitive.RECORDS:
        annotation += " | None"
    default, fresh, factory = _default(f, struct_class)
    return FieldPlan(
        spec=f,
        attribute=attribute,
        annotation=annotation,
        default=default,
        default_value=fresh,
        factory=factory,
        struct_class=struct_class,
    )


def _element_annotation(f: FieldSpec, struct_class: str | None) -> str:
    if struct_class is not None:
        return struct_class
    if f.entity_type is not None:
        return ENTITY_ALIASES[f.entity_type]
    prim = f.type.primitive
    assert prim is not None
    if prim is Primitive.BYTES and f.zero_copy:
        return "bytes | memoryview"
    return _PYTHON_TYPES[prim]


def _default(f: FieldSpec, struct_class: str | None) -> tuple[str, str, str | None]:
    """The __init__ default, an expression that builds the default value afresh, and the
    factory that builds it per instance (None for an immutable literal)."""
    text = f.default
    if text == "null":
        return "None", "None", None
    t: FieldType = f.type
    if t.array:
        return "DEFAULT", "[]", "list"
    if struct_class is not None:
        # Nested classes cannot name their siblings while the message class is being
        # built, so a struct default comes from a module-level factory, looked up late.
        return "DEFAULT", f"{struct_class}()", f"_new{struct_class}"
    value = python_literal(f)
    return value, value, None


def python_literal(f: FieldSpec) -> str:
    """The field's default as a Python literal (not for arrays and structs)."""
    prim = f.type.primitive
    text = f.default
    if text == "null":
        return "None"
    if prim is Primitive.BOOL:
        return "True" if text.lower() == "true" else "False"
    if prim is Primitive.FLOAT64:
        return repr(float(text)) if text else "0.0"
    if prim is Primitive.STRING:
        return repr(text)
    if prim is Primitive.BYTES:
        return 'b""'
    if prim is Primitive.RECORDS:
        return "None"
    if prim is Primitive.UUID:
        if not text:
            return "ZERO_UUID"
        value = UUID(bytes=base64.urlsafe_b64decode(text + "=="))
        return "ZERO_UUID" if value.int == 0 else f'UUID("{value}")'
    if not text:
        return "0"
    value_int = parse_int_default(text)
    return hex(value_int) if text.lower().startswith(("0x", "-0x")) else str(value_int)


def module_name(spec: MessageSpec) -> str:
    """The module a schema renders into, relative to kwire.protocol.messages."""
    name = spec.name
    if spec.type in ("request", "response"):
        base = name.removesuffix("Request").removesuffix("Response")
        return to_snake_case(base)
    if spec.type == "header":
        return "headers" if name in ("RequestHeader", "ResponseHeader") else to_snake_case(name)
    if spec.type == "metadata":
        return "metadata_records." + to_snake_case(name)
    if name in CONTROL_RECORDS:
        return "control." + to_snake_case(name)
    return "data." + to_snake_case(name)


CONTROL_RECORDS = {
    "LeaderChangeMessage": 2,
    "SnapshotHeaderRecord": 3,
    "SnapshotFooterRecord": 4,
    "KRaftVersionRecord": 5,
    "VotersRecord": 6,
}


def versions_list(versions: Versions) -> list[int]:
    return list(versions)
