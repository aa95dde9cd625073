"""Emit the optional C accelerator: the same straight-line readers, compiled.

Every generated Python reader has a C twin with the same checks in the same order and the
same errors (raised through the Python helpers in `kwire.protocol._codec`, so a DecodeError
reads the same whichever reader found it). The C readers fill the same slots, found by
offset when a module binds (`_speedups.bind`), and take defaults from each class's own
`__init__` (`_codec.slot_defaults`), so the two paths cannot disagree on a default.

Only reading is compiled: encoding in Python already outruns the peers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from codegen.emit import field_mode
from codegen.plan import FieldPlan, MessagePlan, StructPlan
from codegen.schema import FieldSpec, FieldType, Primitive
from codegen.sizes import MinimumSizes

_FIXED_READ = {
    Primitive.BOOL: "PyBool_FromLong(({p})[0] != 0)",
    Primitive.INT8: "PyLong_FromLong((int8_t)({p})[0])",
    Primitive.INT16: "PyLong_FromLong((int16_t)BE16({p}))",
    Primitive.UINT16: "PyLong_FromLong((long)BE16({p}))",
    Primitive.INT32: "PyLong_FromLong((long)(int32_t)BE32({p}))",
    Primitive.UINT32: "PyLong_FromUnsignedLong((unsigned long)BE32({p}))",
    Primitive.INT64: "PyLong_FromLongLong((long long)(int64_t)BE64({p}))",
    Primitive.FLOAT64: "read_double({p})",
    Primitive.UUID: "read_uuid({p})",
}


def c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class CCode:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 1

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.level + line)

    def open(self, line: str) -> None:
        self(line + " {")
        self.level += 1

    def close(self, suffix: str = "") -> None:
        self.level -= 1
        self("}" + suffix)

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(slots=True)
class CModule:
    """The C for one Python module: struct tables, readers and the bindable entry points."""

    python_module: str
    structs: list[StructPlan] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    entries: list[tuple[str, str]] = field(default_factory=list)  # (python name, C function)
    runs: list[str] = field(default_factory=list)  # static tables naming fixed-width runs
    run_names: dict[str, str] = field(default_factory=dict)  # a table's entries -> its name


def meta(plan: StructPlan) -> str:
    return "M_" + plan.class_name.lstrip("_")


class CStructEmitter:
    def __init__(
        self, module: CModule, message: MessagePlan, plan: StructPlan, sizes: MinimumSizes
    ) -> None:
        self.module = module
        self.message = message
        self.plan = plan
        self.sizes = sizes
        self.prefix = plan.class_name.lstrip("_")
        self.path_prefix = "" if plan.is_root else plan.spec.name + "."
        self.meta = meta(plan)
        self.readers: dict[int, str] = {}
        self._counter = 0
        self.slot_index = {f.attribute: i for i, f in enumerate(plan.fields)}

    def fresh(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}{self._counter}"

    def path(self, f: FieldPlan) -> str:
        return c_string(self.path_prefix + f.attribute)

    def slot(self, f: FieldPlan) -> str:
        return f"SLOT(o, {self.meta}, {self.slot_index[f.attribute]})"

    @property
    def unknown_slot(self) -> str:
        return f"SLOT(o, {self.meta}, {len(self.plan.fields)})"

    def flexible(self, version: int) -> bool:
        return version in self.message.spec.flexible_versions

    def field_flexible(self, f: FieldSpec, version: int) -> bool:
        if f.flexible_override is not None:
            return version in f.flexible_override
        return self.flexible(version)

    def child(self, f: FieldPlan, version: int) -> str:
        assert f.spec.type.struct is not None
        return self.module_readers[(f.spec.type.struct, version)]

    module_readers: dict[tuple[str, int], str]

    # -- per version ----------------------------------------------------------------------------

    def emit(self, readers: dict[tuple[str, int], str]) -> None:
        """Emit one C function per distinct Python reader (and per distinct body).

        Versions that share a Python reader share its entry name, so they share one C
        function too: any other would never be bound.
        """
        self.module_readers = readers
        bodies: dict[str, str] = {}
        by_python: dict[str, str] = {}  # the Python reader -> its C twin
        for version in sorted(self.plan.versions):
            python_name = self.plan.readers[version]
            shared = by_python.get(python_name)
            if shared is not None:
                readers[(self.plan.spec.name, version)] = shared
                self.readers[version] = shared
                continue
            self._counter = 0
            code = CCode()
            self.emit_reader(code, version)
            body = code.text()
            name = bodies.get(body)
            if name is None:
                name = f"r_{self.prefix}_v{version}"
                bodies[body] = name
                self.module.functions.append(
                    f"static PyObject *\n{name}(Reader *r, Py_ssize_t *ppos)\n{{\n{body}\n}}"
                )
            by_python[python_name] = name
            readers[(self.plan.spec.name, version)] = name
            self.readers[version] = name

    def emit_reader(self, code: CCode, version: int) -> None:
        code("const unsigned char *d = r->data;")
        code("Py_ssize_t len = r->len;")
        code("Py_ssize_t pos = *ppos;")
        code("(void)d;")
        code("(void)len;")
        code(f"PyObject *o = {self.meta}.type->tp_alloc({self.meta}.type, 0);")
        code("if (o == NULL) return NULL;")
        flexible = self.flexible(version)
        if self.plan.flexible:
            code(f"{self.unknown_slot} = Py_NewRef(empty_tuple);")
        run: list[FieldPlan] = []
        for f in self.plan.fields:
            mode = field_mode(f.spec, version)
            if mode == "regular" and f.spec.type.fixed_width is not None:
                run.append(f)
                continue
            self.read_run(code, run, with_tag_count=False)
            run = []
            if mode in ("absent", "tagged"):
                code(
                    f"if (set_default(o, &{self.meta}, {self.slot_index[f.attribute]}) < 0) goto fail;"
                )
            else:
                self.read_value(code, f, f.spec.type, version, self.path(f), self.assign_slot(f))
        self.read_run(code, run, with_tag_count=flexible)
        if flexible:
            self.read_tagged_section(code, version, count_read=bool(run))
        code("*ppos = pos;")
        code("return o;")
        self.lines_fail(code)

    def lines_fail(self, code: CCode) -> None:
        code.level -= 1
        code("fail: __attribute__((unused));")
        code.level += 1
        code("Py_DECREF(o);")
        code("return NULL;")

    def assign_slot(self, f: FieldPlan) -> str:
        return f"Py_XSETREF({self.slot(f)}, {{v}});"

    # -- fixed-width runs -------------------------------------------------------------------------

    def read_run(self, code: CCode, run: list[FieldPlan], *, with_tag_count: bool) -> None:
        if not run:
            return
        names = [self.path_prefix + f.attribute for f in run]
        widths = [f.spec.type.fixed_width or 0 for f in run]
        if with_tag_count:
            names.append(self.path_prefix + "(tagged fields)")
            widths.append(1)
        entries = ", ".join(f"{{{c_string(n)}, {w}}}" for n, w in zip(names, widths, strict=True))
        # One table per distinct run, so that versions reading the same run emit the same
        # body (and share one function).
        table = self.module.run_names.get(entries)
        if table is None:
            table = f"RUN_{self.prefix}_{len(self.module.runs)}"
            self.module.run_names[entries] = table
            self.module.runs.append(f"static const RunField {table}[] = {{{entries}}};")
        total = sum(widths)
        code.open(f"if (len - pos < {total})")
        code(f"raise_run_too_short({table}, {len(names)}, pos, len - pos);")
        code("goto fail;")
        code.close()
        offset = 0
        for f in run:
            prim = f.spec.type.primitive
            assert prim is not None
            expression = _FIXED_READ[prim].format(p=f"d + pos + {offset}")
            # A new instance's slots are NULL: plain stores, no reference to drop.
            code(f"if (({self.slot(f)} = {expression}) == NULL) goto fail;")
            offset += prim.fixed_width or 0
        if with_tag_count:
            code(f"uint32_t tag_count = d[pos + {offset}];")
        code(f"pos += {total};")

    # -- values -----------------------------------------------------------------------------------

    def read_fixed_into(self, code: CCode, prim: Primitive, target: str, path: str) -> None:
        """Read a fixed-width value into C variable `target` (a PyObject *), checked."""
        width = prim.fixed_width
        code.open(f"if (len - pos < {width})")
        code(f"raise_too_short({path}, pos, {width}, len - pos);")
        code("goto fail;")
        code.close()
        code(f"{target} = {_FIXED_READ[prim].format(p='d + pos')};")
        code(f"if ({target} == NULL) goto fail;")
        code(f"pos += {width};")

    def read_length(self, code: CCode, target: str, flexible: bool, short: bool, path: str) -> None:
        if flexible:
            raw = self.fresh("u")
            code(f"uint32_t {raw};")
            code(f"if (read_uvarint(r, &pos, &{raw}, {path}) < 0) goto fail;")
            code(f"Py_ssize_t {target} = (Py_ssize_t){raw} - 1;")
        else:
            width = 2 if short else 4
            code.open(f"if (len - pos < {width})")
            code(f"raise_too_short({path}, pos, {width}, len - pos);")
            code("goto fail;")
            code.close()
            reader = "(int16_t)BE16(d + pos)" if short else "(int32_t)BE32(d + pos)"
            code(f"Py_ssize_t {target} = {reader};")
            code(f"pos += {width};")

    def read_value(
        self, code: CCode, f: FieldPlan, t: FieldType, version: int, path: str, assign: str
    ) -> None:
        """Read one value and store it with `assign` (a format with `{v}`, owning v)."""
        spec = f.spec
        nullable = version in spec.nullable_versions
        flexible = self.field_flexible(spec, version)
        code.open("")
        code.lines[-1] = code.lines[-1].replace(" {", "{").rstrip()  # a plain block
        if t.array:
            self.read_array(code, f, t, version, path, assign, nullable, flexible)
        elif t.struct is not None:
            function = self.child(f, version)
            if nullable:
                code.open("if (len - pos < 1)")
                code(f"raise_too_short({path}, pos, 1, len - pos);")
                code("goto fail;")
                code.close()
                code("int8_t marker = (int8_t)d[pos];")
                code("pos += 1;")
                code.open("if (marker < 0)")
                code(assign.format(v="Py_NewRef(Py_None)"))
                code.close(" else {")
                code.level += 1
                self.read_struct(code, function, assign)
                code.close()
            else:
                self.read_struct(code, function, assign)
        else:
            prim = t.primitive
            assert prim is not None
            if prim.fixed_width is not None:
                code("PyObject *v;")
                self.read_fixed_into(code, prim, "v", path)
                code(assign.format(v="v"))
            else:
                self.read_variable(code, prim, spec, path, assign, nullable, flexible)
        code.close()

    def read_struct(self, code: CCode, function: str, assign: str) -> None:
        code(f"PyObject *v = {function}(r, &pos);")
        code("if (v == NULL) goto fail;")
        code(assign.format(v="v"))

    def read_variable(
        self,
        code: CCode,
        prim: Primitive,
        spec: FieldSpec | None,
        path: str,
        assign: str,
        nullable: bool,
        flexible: bool,
    ) -> None:
        n = self.fresh("n")
        self.read_length(code, n, flexible, prim is Primitive.STRING, path)
        code.open(f"if ({n} < 0)")
        if nullable:
            code(assign.format(v="Py_NewRef(Py_None)"))
        else:
            code(f"raise_null_value({path}, pos);")
            code("goto fail;")
        code.close(" else {")
        code.level += 1
        if prim is Primitive.STRING:
            code.open(f"if ({n} > 0x7FFF)")
            code(f"raise_bad_string_length({path}, pos, {n});")
            code("goto fail;")
            code.close()
        code.open(f"if ({n} > len - pos)")
        code(f"raise_too_short({path}, pos, {n}, len - pos);")
        code("goto fail;")
        code.close()
        if prim is Primitive.STRING:
            code(f'PyObject *v = PyUnicode_DecodeUTF8((const char *)d + pos, {n}, "replace");')
            code("if (v == NULL) goto fail;")
        elif prim is Primitive.RECORDS or (spec is not None and spec.zero_copy):
            code(f"PyObject *v = view_slice(r, pos, pos + {n});  /* a view: never a copy */")
            code("if (v == NULL) goto fail;")
        else:
            code(f"PyObject *v = PyBytes_FromStringAndSize((const char *)d + pos, {n});")
            code("if (v == NULL) goto fail;")
        code(assign.format(v="v"))
        code(f"pos += {n};")
        code.close()

    def read_array(
        self,
        code: CCode,
        f: FieldPlan,
        t: FieldType,
        version: int,
        path: str,
        assign: str,
        nullable: bool,
        flexible: bool,
    ) -> None:
        n = self.fresh("count")
        self.read_length(code, n, flexible, False, path)
        code.open(f"if ({n} < 0)")
        if nullable:
            code(assign.format(v="Py_NewRef(Py_None)"))
        else:
            code(f"raise_null_value({path}, pos);")
            code("goto fail;")
        # No element can take fewer than `size` bytes, so the list reserved below never
        # holds more entries than the bytes left could fill (n < 2**32: no overflow).
        size = self.sizes.array_bound(f.spec, version)
        claimed = n if size == 1 else f"{n} * {size}"
        code.close(f" else if ({claimed} > len - pos) {{")
        code.level += 1
        code(f"raise_bad_count({path}, pos, {n}, {size}, len - pos);")
        code("goto fail;")
        code.close(" else {")
        code.level += 1
        element = t.element
        prim = element.primitive
        # The list goes into its slot first, so that a failure below frees it with `o`.
        code(f"PyObject *list = PyList_New({n});")
        code("if (list == NULL) goto fail;")
        code(assign.format(v="list"))
        code.open(f"for (Py_ssize_t i = 0; i < {n}; i++)")
        item_assign = "PyList_SET_ITEM(list, i, {v});"
        if element.struct is not None:
            self.read_struct(code, self.child(f, version), item_assign)
        elif prim is not None and prim.fixed_width is not None:
            code(f"PyObject *v = {_FIXED_READ[prim].format(p='d + pos')};")
            code("if (v == NULL) goto fail;")
            code("PyList_SET_ITEM(list, i, v);")
            code(f"pos += {prim.fixed_width};")
        else:
            assert prim is not None
            self.read_variable(code, prim, None, path[:-1] + '[]"', item_assign, False, flexible)
        code.close()
        code.close()

    # -- tagged fields ------------------------------------------------------------------------------

    def read_tagged_section(self, code: CCode, version: int, *, count_read: bool) -> None:
        tagged = sorted(
            (f for f in self.plan.fields if field_mode(f.spec, version) == "tagged"),
            key=lambda x: x.spec.tag or 0,
        )
        section = c_string(self.path_prefix + "(tagged fields)")
        code.open("")
        code.lines[-1] = code.lines[-1].replace(" {", "{").rstrip()
        if count_read:
            code.open("if (tag_count > 0x7F)")
            code(
                f"if (read_uvarint_tail(r, &pos, tag_count, {section}, &tag_count) < 0) goto fail;"
            )
            code.close()
        else:
            code("uint32_t tag_count;")
            code(f"if (read_uvarint(r, &pos, &tag_count, {section}) < 0) goto fail;")
        code("PyObject *unknown = NULL;")
        code.open("for (uint32_t k = 0; k < tag_count; k++)")
        code("uint32_t tag, size;")
        code(f"if (read_uvarint(r, &pos, &tag, {section}) < 0) goto fail;")
        code(f"if (read_uvarint(r, &pos, &size, {section}) < 0) goto fail;")
        code.open("if ((Py_ssize_t)size > len - pos)")
        code(f"raise_too_short({section}, pos, (Py_ssize_t)size, len - pos);")
        code("goto fail;")
        code.close()
        code("Py_ssize_t tag_end = pos + (Py_ssize_t)size;")
        code.open("switch (tag)")
        for f in tagged:
            code.open(f"case {f.spec.tag}:")
            self.read_tagged_value(code, f, version)
            code.open("if (pos != tag_end)")
            code(
                f"raise_bad_tagged_size({self.path(f)}, pos, (Py_ssize_t)size, pos - tag_end + (Py_ssize_t)size);"
            )
            code("goto fail;")
            code.close()
            code("break;")
            code.close()
        code.open("default:")
        code.open("if (unknown == NULL)")
        code("unknown = PyList_New(0);")
        code("if (unknown == NULL) goto fail;")
        code(f"Py_XSETREF({self.unknown_slot}, unknown);  /* freed with o on failure */")
        code.close()
        code("if (append_unknown_tag(unknown, tag, d + pos, (Py_ssize_t)size) < 0) goto fail;")
        code("pos = tag_end;")
        code("break;")
        code.close()
        code.close()
        code.close()
        code.open("if (unknown != NULL)")
        code("PyObject *fields = PyList_AsTuple(unknown);")
        code("if (fields == NULL) goto fail;")
        code(f"Py_XSETREF({self.unknown_slot}, fields);")
        code.close()
        code.close()

    def read_tagged_value(self, code: CCode, f: FieldPlan, version: int) -> None:
        t = f.spec.type
        assign = self.assign_slot(f)
        if t.is_struct and version in f.spec.nullable_versions:
            # A nullable tagged struct carries a varint presence marker, as Kafka writes it.
            code("uint32_t present;")
            code(f"if (read_uvarint(r, &pos, &present, {self.path(f)}) < 0) goto fail;")
            code.open("if (present == 0)")
            code(assign.format(v="Py_NewRef(Py_None)"))
            code.close(" else {")
            code.level += 1
            self.read_struct(code, self.child(f, version), assign)
            code.close()
            return
        self.read_value(code, f, t, version, self.path(f), assign)


def emit_c_message(
    module: CModule, message: MessagePlan, readers: dict[tuple[str, int], str]
) -> None:
    sizes = MinimumSizes(message)
    for plan in message.all_structs_leaves_first():
        emitter = CStructEmitter(module, message, plan, sizes)
        emitter.emit(readers)
        module.structs.append(plan)
        if plan.is_root:
            for version, name in sorted(emitter.readers.items()):
                python_name = plan.readers[version]
                if (python_name, name) not in module.entries:
                    # One C twin per Python reader: a second would shadow the first on bind.
                    assert all(python_name != bound for bound, _ in module.entries), python_name
                    module.entries.append((python_name, name))
