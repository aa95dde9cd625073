"""Emit the straight-line read and write functions of every struct at every version.

One method per kind of member, as in Kafka's MessageDataGenerator. The code for a
version holds no version checks: the version is fixed when the function is chosen.
Versions whose code comes out the same share one function.

Generated readers take `(buf: bytes | memoryview, pos: int)` and return `(value, pos)`;
writers take `(o, out: bytearray)` and append. Every read checks its bound first, so bad
input raises `DecodeError` naming the field and offset, never IndexError.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from codegen.plan import FieldPlan, MessagePlan, StructPlan
from codegen.schema import FieldSpec, FieldType, Primitive
from codegen.sizes import MinimumSizes

_ARRAY_STRUCTS = {
    Primitive.INT8: "INT8_ARRAY",
    Primitive.INT16: "INT16_ARRAY",
    Primitive.UINT16: "UINT16_ARRAY",
    Primitive.INT32: "INT32_ARRAY",
    Primitive.UINT32: "UINT32_ARRAY",
    Primitive.INT64: "INT64_ARRAY",
    Primitive.FLOAT64: "FLOAT64_ARRAY",
    Primitive.BOOL: "BOOL_ARRAY",
}


_NULL_INT16 = repr(b"\xff\xff")
_NULL_INT32 = repr(b"\xff\xff\xff\xff")


class Code:
    """Lines of Python with an indentation level."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 1

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.level + line)

    def indent(self) -> Code:
        self.level += 1
        return self

    def dedent(self) -> None:
        self.level -= 1

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(slots=True)
class Function:
    name: str
    signature: str
    body: str


@dataclass(slots=True)
class ModuleCode:
    """What the emitter hands the template for one module."""

    structs: dict[str, struct_type] = field(default_factory=dict)  # format -> constant name
    functions: list[Function] = field(default_factory=list)
    helpers: set[str] = field(default_factory=set)

    def struct_constant(self, fmt: str, names: list[str]) -> str:
        existing = self.structs.get(fmt)
        if existing is not None:
            return existing
        name = "_ST_" + "_".join(names)
        self.structs[fmt] = name
        return name


struct_type = str


def field_mode(f: FieldSpec, version: int) -> str:
    if version not in f.versions:
        return "absent"
    if version in f.tagged_versions:
        return "tagged"
    return "regular"


class StructEmitter:
    """Emits the readers and writers of one struct (or message) for each of its versions."""

    def __init__(
        self, module: ModuleCode, message: MessagePlan, plan: StructPlan, sizes: MinimumSizes
    ) -> None:
        self.module = module
        self.message = message
        self.plan = plan
        self.sizes = sizes
        self.prefix = plan.class_name.lstrip("_")
        self.path_prefix = "" if plan.is_root else plan.spec.name + "."
        self._counter = 0

    # -- helpers ----------------------------------------------------------------------------

    def fresh(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}{self._counter}"

    def path(self, f: FieldPlan) -> str:
        return repr(self.path_prefix + f.attribute)

    def flexible(self, version: int) -> bool:
        return version in self.message.spec.flexible_versions

    def field_flexible(self, f: FieldSpec, version: int) -> bool:
        if f.flexible_override is not None:
            return version in f.flexible_override
        return self.flexible(version)

    def child_function(self, f: FieldPlan, version: int, kind: str) -> str:
        assert f.spec.type.struct is not None
        child = self.message.structs[f.spec.type.struct]
        table = child.readers if kind == "read" else child.writers
        return table[version]

    # -- the per-version driver ---------------------------------------------------------------

    def emit(self) -> None:
        for kind in ("read", "write"):
            bodies: dict[str, str] = {}
            for version in sorted(self.plan.versions):
                self._counter = 0
                code = Code()
                if kind == "read":
                    self.emit_reader(code, version)
                else:
                    self.emit_writer(code, version)
                body = code.text()
                name = bodies.get(body)
                if name is None:
                    name = f"_{kind}_{self.prefix}_v{version}"
                    bodies[body] = name
                    cls = self.plan.class_name
                    signature = (
                        f"def {name}(buf: Buffer, pos: int) -> tuple[{cls}, int]:"
                        if kind == "read"
                        else f"def {name}(o: {cls}, out: bytearray) -> None:"
                    )
                    self.module.functions.append(Function(name, signature, body))
                (self.plan.readers if kind == "read" else self.plan.writers)[version] = name

    # -- reading ------------------------------------------------------------------------------

    def emit_reader(self, code: Code, version: int) -> None:
        # The instance is made with object.__new__ and its slots filled one by one: about
        # a third faster than calling the class's __init__, which decoding pays per struct.
        code(f"o = new_instance({self.plan.class_name})")
        values: dict[str, str] = {}  # attribute -> expression, for those not yet stored
        run: list[FieldPlan] = []
        for f in self.plan.fields:
            mode = field_mode(f.spec, version)
            if mode == "regular" and f.spec.type.fixed_width is not None:
                run.append(f)
                continue
            self.read_run(code, run, values)
            run = []
            if mode == "absent":
                values[f.attribute] = f.default_value
            elif mode == "tagged":
                values[f.attribute] = f"f_{f.attribute}"
            else:
                target = f"f_{f.attribute}"
                self.read_value(code, f, f.spec.type, version, target, self.path(f))
                values[f.attribute] = target
        flexible = self.flexible(version)
        # A flexible struct ending in fixed-width fields reads its tag count (one byte when
        # under 128, as it nearly always is) in the same unpack as those fields.
        self.read_run(code, run, values, with_tag_count=flexible)
        if flexible:
            self.read_tagged_section(code, version, values, count_read=bool(run))
        for f in self.plan.fields:
            if f.attribute in values:
                code(f"o.{f.attribute} = {values[f.attribute]}")
        if self.plan.flexible:
            code(f"o.unknown_tagged_fields = {'unknown' if self.flexible(version) else '()'}")
        code("return o, pos")

    def read_run(
        self,
        code: Code,
        run: list[FieldPlan],
        values: dict[str, str],
        *,
        with_tag_count: bool = False,
    ) -> None:
        if not run:
            return
        prims = [f.spec.type.primitive for f in run]
        fmt = ">" + "".join(p.struct_code for p in prims)  # type: ignore[union-attr]
        width = sum(p.fixed_width for p in prims)  # type: ignore[union-attr,misc]
        names = [p.value for p in prims]  # type: ignore[union-attr]
        # Fixed-width values go straight into their slots; uuids pass through a local.
        targets = [
            f"f_{f.attribute}" if f.spec.type.primitive is Primitive.UUID else f"o.{f.attribute}"
            for f in run
        ]
        layout = tuple((self.path_prefix + f.attribute, f.spec.type.fixed_width) for f in run)
        if with_tag_count:
            fmt += "B"
            width += 1
            names.append("tag_count")
            targets.append("tag_count")
            layout += ((self.path_prefix + "(tagged fields)", 1),)
        constant = self.module.struct_constant(fmt, names)
        code("try:")
        code.indent()(
            f"{', '.join(targets)}{',' if len(targets) == 1 else ''} = {constant}.unpack_from(buf, pos)"
        )
        code.dedent()
        code("except struct_error:")
        code.indent()(f"raise run_too_short({layout!r}, pos, len(buf) - pos) from None")
        code.dedent()
        code(f"pos += {width}")
        for f, target in zip(run, targets[: len(run)], strict=True):
            if f.spec.type.primitive is Primitive.UUID:
                values[f.attribute] = f"uuid_from_bytes({target})"

    def read_uvarint(self, code: Code, target: str, path: str) -> None:
        code("try:")
        code.indent()(f"{target} = buf[pos]")
        code.dedent()
        code("except IndexError:")
        code.indent()(f"raise eof({path}, pos) from None")
        code.dedent()
        code("pos += 1")
        code(f"if {target} > 0x7F:")
        code.indent()(f"{target}, pos = read_uvarint_tail(buf, pos, {target}, {path})")
        code.dedent()

    def read_fixed(self, code: Code, prim: Primitive, target: str, path: str) -> None:
        width = prim.fixed_width
        assert width is not None
        constant = self.module.struct_constant(">" + prim.struct_code, [prim.value])
        code("try:")
        code.indent()(f"({target},) = {constant}.unpack_from(buf, pos)")
        code.dedent()
        code("except struct_error:")
        code.indent()(f"raise too_short({path}, pos, {width}, len(buf) - pos) from None")
        code.dedent()
        code(f"pos += {width}")
        if prim is Primitive.UUID:
            code(f"{target} = uuid_from_bytes({target})")

    def read_length(self, code: Code, target: str, flexible: bool, short: bool, path: str) -> None:
        """Read a length or count prefix into `target` (-1 for null)."""
        if flexible:
            self.read_uvarint(code, target, path)
            code(f"{target} -= 1")
        else:
            prim = Primitive.INT16 if short else Primitive.INT32
            self.read_fixed(code, prim, target, path)

    def read_value(
        self, code: Code, f: FieldPlan, t: FieldType, version: int, target: str, path: str
    ) -> None:
        spec = f.spec
        nullable = version in spec.nullable_versions
        flexible = self.field_flexible(spec, version)
        if t.array:
            self.read_array(code, f, t, version, target, path, nullable, flexible)
        elif t.struct is not None:
            function = self.child_function(f, version, "read")
            if nullable:
                marker = self.fresh("marker")
                self.read_fixed(code, Primitive.INT8, marker, path)
                code(f"{target}: {f.struct_class} | None")
                code(f"if {marker} < 0:")
                code.indent()(f"{target} = None")
                code.dedent()
                code("else:")
                code.indent()(f"{target}, pos = {function}(buf, pos)")
                code.dedent()
            else:
                code(f"{target}, pos = {function}(buf, pos)")
        else:
            prim = t.primitive
            assert prim is not None
            if prim.fixed_width is not None:
                self.read_fixed(code, prim, target, path)
            else:
                self.read_variable(code, prim, spec, target, path, nullable, flexible)

    def read_variable(
        self,
        code: Code,
        prim: Primitive,
        spec: FieldSpec | None,
        target: str,
        path: str,
        nullable: bool,
        flexible: bool,
    ) -> None:
        length = self.fresh("n")
        self.read_length(code, length, flexible, prim is Primitive.STRING, path)
        if prim is Primitive.STRING:
            kind = "str"
        elif prim is Primitive.RECORDS or (spec is not None and spec.zero_copy):
            kind = "bytes | memoryview"
        else:
            kind = "bytes"
        code(f"{target}: {kind}{' | None' if nullable else ''}")
        code(f"if {length} < 0:")
        if nullable:
            code.indent()(f"{target} = None")
        else:
            code.indent()(f"raise null_value({path}, pos)")
        code.dedent()
        code("else:")
        code.indent()
        if prim is Primitive.STRING:
            code(f"if {length} > 0x7FFF:")
            code.indent()(f"raise bad_string_length({path}, pos, {length})")
            code.dedent()
        end = self.fresh("end")
        code(f"{end} = pos + {length}")
        code(f"if {end} > len(buf):")
        code.indent()(f"raise too_short({path}, pos, {length}, len(buf) - pos)")
        code.dedent()
        if prim is Primitive.STRING:
            # Kafka reads strings with new String(bytes, UTF_8): malformed bytes become
            # U+FFFD, and the request is judged (and answered) on what remains.
            code(f"{target} = str(buf[pos:{end}], 'utf-8', 'replace')")
        elif kind == "bytes":
            code(f"{target} = bytes(buf[pos:{end}])")
        else:
            code(f"{target} = memoryview(buf)[pos:{end}]")  # a view: never a copy
        code(f"pos = {end}")
        code.dedent()

    def read_array(
        self,
        code: Code,
        f: FieldPlan,
        t: FieldType,
        version: int,
        target: str,
        path: str,
        nullable: bool,
        flexible: bool,
    ) -> None:
        count = self.fresh("count")
        self.read_length(code, count, flexible, False, path)
        element = t.element
        element_type = f.annotation.removesuffix(" | None")
        code(f"{target}: {element_type}{' | None' if nullable else ''}")
        code(f"if {count} < 0:")
        if nullable:
            code.indent()(f"{target} = None")
        else:
            code.indent()(f"raise null_value({path}, pos)")
        code.dedent()
        # No element can take fewer than `size` bytes: a count the bytes left cannot hold
        # fails here, before anything is read or reserved (and the same way in C).
        size = self.sizes.array_bound(f.spec, version)
        claimed = count if size == 1 else f"{count} * {size}"
        code(f"elif {claimed} > len(buf) - pos:")
        code.indent()(f"raise bad_count({path}, pos, {count}, {size}, len(buf) - pos)")
        code.dedent()
        code("else:")
        code.indent()
        prim = element.primitive
        if element.struct is not None:
            function = self.child_function(f, version, "read")
            item = self.fresh("item")
            append = self.fresh("append")
            code(f"{target} = []")
            code(f"{append} = {target}.append")
            code(f"for _ in range({count}):")
            code.indent()(f"{item}, pos = {function}(buf, pos)")
            code(f"{append}({item})")
            code.dedent()
        elif prim is Primitive.UUID:  # the count check above covered 16 bytes each
            end = self.fresh("end")
            code(f"{end} = pos + 16 * {count}")
            code(
                f"{target} = [uuid_from_bytes(bytes(buf[i:i + 16])) for i in range(pos, {end}, 16)]"
            )
            code(f"pos = {end}")
        elif prim is not None and prim.fixed_width is not None:
            width = prim.fixed_width
            array = _ARRAY_STRUCTS[prim]
            self.module.helpers.add(array)
            code(f"{target} = list({array}[{count}].unpack_from(buf, pos))")
            code(f"pos += {width} * {count}")
        else:
            assert prim is not None
            item = self.fresh("item")
            code(f"{target} = []")
            code(f"for _ in range({count}):")
            code.indent()
            self.read_variable(code, prim, None, item, path + " + '[]'", False, flexible)
            code(f"{target}.append({item})")
            code.dedent()
        code.dedent()

    def read_tagged_section(
        self, code: Code, version: int, values: dict[str, str], *, count_read: bool = False
    ) -> None:
        tagged = [f for f in self.plan.fields if field_mode(f.spec, version) == "tagged"]
        for f in tagged:
            code(f"f_{f.attribute}: {f.annotation} = {f.default_value}")
        section = repr(self.path_prefix + "(tagged fields)")
        code("unknown: tuple[RawTaggedField, ...] = ()")
        if count_read:  # its first byte came with the fixed-width run
            code("if tag_count > 0x7F:")
            code.indent()(f"tag_count, pos = read_uvarint_tail(buf, pos, tag_count, {section})")
            code.dedent()
        else:
            self.read_uvarint(code, "tag_count", section)
        code("if tag_count:")
        code.indent()
        code("unknown_list: list[RawTaggedField] = []")
        code("for _ in range(tag_count):")
        code.indent()
        self.read_uvarint(code, "tag", section)
        self.read_uvarint(code, "size", section)
        code("tag_end = pos + size")
        code("if tag_end > len(buf):")
        code.indent()(f"raise too_short({section}, pos, size, len(buf) - pos)")
        code.dedent()
        keyword = "if"
        for f in sorted(tagged, key=lambda x: x.spec.tag or 0):
            code(f"{keyword} tag == {f.spec.tag}:")
            keyword = "elif"
            code.indent()
            self.read_tagged_value(code, f, version)
            code("if pos != tag_end:")
            code.indent()(f"raise bad_tagged_size({self.path(f)}, pos, size, pos - tag_end + size)")
            code.dedent()
            code.dedent()
        if tagged:
            code("else:")
            code.indent()
        code("unknown_list.append(RawTaggedField(tag, bytes(buf[pos:tag_end])))")
        code("pos = tag_end")
        if tagged:
            code.dedent()
        code.dedent()
        code("unknown = tuple(unknown_list)")
        code.dedent()

    def read_tagged_value(self, code: Code, f: FieldPlan, version: int) -> None:
        target = f"f_{f.attribute}"
        t = f.spec.type
        if t.is_struct and version in f.spec.nullable_versions:
            # A nullable tagged struct carries a varint presence marker, as Kafka writes it.
            marker = self.fresh("present")
            self.read_uvarint(code, marker, self.path(f))
            code(f"if {marker} <= 0:")
            code.indent()(f"{target} = None")
            code.dedent()
            code("else:")
            code.indent()(f"{target}, pos = {self.child_function(f, version, 'read')}(buf, pos)")
            code.dedent()
            return
        value = self.fresh("value")
        self.read_value(code, f, t, version, value, self.path(f))
        code(f"{target} = {value}")

    # -- writing ------------------------------------------------------------------------------

    def emit_writer(self, code: Code, version: int) -> None:
        run: list[FieldPlan] = []
        for f in self.plan.fields:
            mode = field_mode(f.spec, version)
            if mode == "regular" and f.spec.type.fixed_width is not None:
                run.append(f)
                continue
            self.write_run(code, run)
            run = []
            if mode == "absent":
                if not f.spec.ignorable:
                    condition = self.non_default_check(f, f"o.{f.attribute}", version, True)
                    code(f"if {condition}:")
                    code.indent()(f"raise non_default_on_write({self.path(f)}, {version})")
                    code.dedent()
            elif mode == "regular":
                self.write_value(code, f, f.spec.type, version, f"o.{f.attribute}", self.path(f))
        self.write_run(code, run)
        if self.flexible(version):
            self.write_tagged_section(code, version)
        elif self.plan.flexible:
            code("if o.unknown_tagged_fields:")
            code.indent()(f"raise tagged_in_rigid_version('unknown_tagged_fields', {version})")
            code.dedent()
        if not code.lines:
            code("pass")

    def write_run(self, code: Code, run: list[FieldPlan]) -> None:
        if not run:
            return
        prims = [f.spec.type.primitive for f in run]
        fmt = ">" + "".join(p.struct_code for p in prims)  # type: ignore[union-attr]
        constant = self.module.struct_constant(fmt, [p.value for p in prims])  # type: ignore[union-attr]
        args = [
            f"o.{f.attribute}.bytes"
            if f.spec.type.primitive is Primitive.UUID
            else f"o.{f.attribute}"
            for f in run
        ]
        code(f"out += {constant}.pack({', '.join(args)})")

    def write_uvarint(self, code: Code, expression: str) -> None:
        value = self.fresh("v")
        code(f"{value} = {expression}")
        code(f"if {value} < 0x80:")
        code.indent()(f"out.append({value})")
        code.dedent()
        code("else:")
        code.indent()(f"write_uvarint(out, {value})")
        code.dedent()

    def write_length(self, code: Code, expression: str, flexible: bool, short: bool) -> None:
        if flexible:
            self.write_uvarint(code, f"{expression} + 1")
        else:
            prim = Primitive.INT16 if short else Primitive.INT32
            constant = self.module.struct_constant(">" + prim.struct_code, [prim.value])
            code(f"out += {constant}.pack({expression})")

    def write_null(self, code: Code, flexible: bool, short: bool) -> None:
        if flexible:
            code("out.append(0)")
        else:
            code("out += " + (_NULL_INT16 if short else _NULL_INT32))

    def write_value(
        self, code: Code, f: FieldPlan, t: FieldType, version: int, expr: str, path: str
    ) -> None:
        spec = f.spec
        nullable = version in spec.nullable_versions
        flexible = self.field_flexible(spec, version)
        if t.array:
            self.write_array(code, f, t, version, expr, path, nullable, flexible)
        elif t.struct is not None:
            function = self.child_function(f, version, "write")
            value = self.fresh("s")
            code(f"{value} = {expr}")
            code(f"if {value} is None:")
            code.indent()
            if nullable:
                code("out.append(0xFF)")
            else:
                code(f"raise null_on_write({path})")
            code.dedent()
            code("else:")
            code.indent()
            if nullable:
                code("out.append(1)")
            code(f"{function}({value}, out)")
            code.dedent()
        else:
            prim = t.primitive
            assert prim is not None
            if prim.fixed_width is not None:
                constant = self.module.struct_constant(">" + prim.struct_code, [prim.value])
                suffix = ".bytes" if prim is Primitive.UUID else ""
                code(f"out += {constant}.pack({expr}{suffix})")
            else:
                self.write_variable(code, prim, expr, path, nullable, flexible)

    def write_variable(
        self, code: Code, prim: Primitive, expr: str, path: str, nullable: bool, flexible: bool
    ) -> None:
        value = self.fresh("x")
        short = prim is Primitive.STRING
        code(f"{value} = {expr}")
        code(f"if {value} is None:")
        code.indent()
        if nullable:
            self.write_null(code, flexible, short)
        else:
            code(f"raise null_on_write({path})")
        code.dedent()
        code("else:")
        code.indent()
        if prim is Primitive.STRING:
            encoded = self.fresh("b")
            code(f"{encoded} = {value}.encode()")
            code(f"if len({encoded}) > 0x7FFF:")
            code.indent()(f"raise string_too_long({path}, len({encoded}))")
            code.dedent()
            self.write_length(code, f"len({encoded})", flexible, True)
            code(f"out += {encoded}")
        else:
            self.write_length(code, f"len({value})", flexible, False)
            code(f"out += {value}")
        code.dedent()

    def write_array(
        self,
        code: Code,
        f: FieldPlan,
        t: FieldType,
        version: int,
        expr: str,
        path: str,
        nullable: bool,
        flexible: bool,
    ) -> None:
        items = self.fresh("items")
        code(f"{items} = {expr}")
        code(f"if {items} is None:")
        code.indent()
        if nullable:
            self.write_null(code, flexible, False)
        else:
            code(f"raise null_on_write({path})")
        code.dedent()
        code("else:")
        code.indent()
        self.write_length(code, f"len({items})", flexible, False)
        element = t.element
        prim = element.primitive
        if element.struct is not None:
            function = self.child_function(f, version, "write")
            item = self.fresh("item")
            code(f"for {item} in {items}:")
            code.indent()(f"{function}({item}, out)")
            code.dedent()
        elif prim is Primitive.UUID:
            item = self.fresh("item")
            code(f"for {item} in {items}:")
            code.indent()(f"out += {item}.bytes")
            code.dedent()
        elif prim is not None and prim.fixed_width is not None:
            array = _ARRAY_STRUCTS[prim]
            self.module.helpers.add(array)
            code(f"out += {array}[len({items})].pack(*{items})")
        else:
            assert prim is not None
            item = self.fresh("item")
            code(f"for {item} in {items}:")
            code.indent()
            self.write_variable(code, prim, item, path + " + '[]'", False, flexible)
            code.dedent()
        code.dedent()

    def non_default_check(self, f: FieldPlan, expr: str, version: int, use_nullable: bool) -> str:
        """A condition that holds when `expr` differs from the field's default."""
        spec = f.spec
        nullable = use_nullable and not spec.nullable_versions.empty
        t = spec.type
        if spec.default == "null":
            return f"{expr} is not None"
        if t.array or t.primitive in (Primitive.BYTES, Primitive.RECORDS):
            base = f"len({expr}) != 0" if not t.array else f"len({expr}) != 0"
            return f"({expr} is None or {base})" if nullable else base
        if t.struct is not None or t.primitive in (Primitive.STRING, Primitive.UUID):
            base = f"{expr} != {f.default_value}"
            return f"({expr} is None or {base})" if nullable else base
        return f"{expr} != {f.default_value}"

    def write_tagged_section(self, code: Code, version: int) -> None:
        tagged = sorted(
            (f for f in self.plan.fields if field_mode(f.spec, version) == "tagged"),
            key=lambda x: x.spec.tag or 0,
        )
        if not tagged:
            code("if o.unknown_tagged_fields:")
            code.indent()("write_tagged_fields(out, list(o.unknown_tagged_fields))")
            code.dedent()
            code("else:")
            code.indent()("out.append(0)")
            code.dedent()
            return
        code("tagged: list[tuple[int, bytes | bytearray]] = list(o.unknown_tagged_fields)")
        for f in tagged:
            expr = f"o.{f.attribute}"
            nullable = version in f.spec.nullable_versions
            if f.spec.default == "null":
                code(f"if {expr} is not None:")
                code.indent()
                self.write_tagged_value(code, f, version, expr)
                code.dedent()
            else:
                if nullable:
                    code(f"if {expr} is None:")
                    code.indent()(f"tagged.append(({f.spec.tag}, b'\\x00'))")
                    code.dedent()
                    keyword = "elif"
                else:
                    keyword = "if"
                condition = self.non_default_check(f, expr, version, False)
                code(f"{keyword} {condition}:")
                code.indent()
                self.write_tagged_value(code, f, version, expr)
                code.dedent()
        code("if tagged:")
        code.indent()("write_tagged_fields(out, tagged)")
        code.dedent()
        code("else:")
        code.indent()("out.append(0)")
        code.dedent()

    def write_tagged_value(self, code: Code, f: FieldPlan, version: int, expr: str) -> None:
        """Write the value into a scratch buffer and queue it under its tag."""
        code("outer = out")
        code("out = bytearray()")
        t = f.spec.type
        if t.is_struct and version in f.spec.nullable_versions:
            code("out.append(1)")
            code(f"{self.child_function(f, version, 'write')}({expr}, out)")
        else:
            self.write_value(code, f, t, version, expr, self.path(f))
        code(f"tagged.append(({f.spec.tag}, out))")
        code("out = outer")


def emit_message(module: ModuleCode, message: MessagePlan) -> None:
    sizes = MinimumSizes(message)
    for plan in message.all_structs_leaves_first():
        StructEmitter(module, message, plan, sizes).emit()
