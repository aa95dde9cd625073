"""Generated struct classes behave as the ``@dataclass(slots=True)`` classes they replace
(kwire.protocol._codec.StructBase): the reference for each behaviour is a real dataclass
with the same fields and defaults."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any

import pytest

import kwire.protocol.messages as messages_package
from kwire.protocol._codec import StructBase, slot_defaults
from kwire.protocol.messages.create_topics import CreateTopicsRequest
from kwire.protocol.messages.metadata_records.partition_record import PartitionRecord


def _generated_classes() -> list[type[StructBase]]:
    found: list[type[StructBase]] = []

    def visit(cls: type) -> None:
        for value in vars(cls).values():
            if isinstance(value, type) and issubclass(value, StructBase):
                found.append(value)
                visit(value)

    for info in pkgutil.walk_packages(messages_package.__path__, "kwire.protocol.messages."):
        if info.name.rsplit(".", 1)[1] in ("index", "_speedups"):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            cls = getattr(module, name)
            found.append(cls)
            visit(cls)
    return found


GENERATED = _generated_classes()


def _reference(cls: type[StructBase]) -> type:
    """The dataclass the generator used to emit for ``cls``: same fields, same defaults."""
    specs: list[tuple[str, Any, Any]] = []
    for name, (default, factory) in slot_defaults(cls).items():
        made = (
            dataclasses.field(default=default)
            if factory is dataclasses.MISSING
            else dataclasses.field(default_factory=factory)
        )
        specs.append((name, Any, made))
    reference = dataclasses.make_dataclass(cls.__name__, specs, slots=True)
    reference.__qualname__ = cls.__qualname__
    return reference


def test_every_message_record_and_struct_is_a_generated_struct() -> None:
    assert len(GENERATED) > 500
    assert all("__init__" in vars(cls) for cls in GENERATED)


@pytest.mark.parametrize("cls", GENERATED, ids=lambda cls: cls.__qualname__)
def test_defaults_repr_and_fields_are_the_dataclasses(cls: type[StructBase]) -> None:
    reference = _reference(cls)
    value, expected = cls(), reference()
    assert repr(value) == repr(expected)
    assert value == cls()
    assert [f.name for f in dataclasses.fields(value)] == [
        f.name for f in dataclasses.fields(expected)
    ]
    assert cls.__match_args__ == reference.__match_args__
    assert dataclasses.asdict(value) == dataclasses.asdict(expected)


def test_equal_fields_compare_equal_and_other_classes_never() -> None:
    one = PartitionRecord(partition_id=1, replicas=[1, 2])
    assert one == PartitionRecord(partition_id=1, replicas=[1, 2])
    assert one != PartitionRecord(partition_id=1, replicas=[2, 1])
    assert one.__eq__(object()) is NotImplemented
    assert PartitionRecord() != CreateTopicsRequest()


def test_values_are_unhashable_as_mutable_dataclasses_are() -> None:
    with pytest.raises(TypeError, match="unhashable type: 'PartitionRecord'"):
        hash(PartitionRecord())


def test_fields_are_taken_by_position_in_schema_order_and_by_keyword() -> None:
    by_position = CreateTopicsRequest.CreatableTopic("t", 3, 2)
    assert (by_position.name, by_position.num_partitions, by_position.replication_factor) == (
        "t",
        3,
        2,
    )
    with pytest.raises(TypeError):
        CreateTopicsRequest.CreatableTopic(nme="t")  # type: ignore[call-arg]


def test_each_instance_gets_its_own_list_and_struct_defaults() -> None:
    a, b = CreateTopicsRequest(), CreateTopicsRequest()
    a.topics.append(CreateTopicsRequest.CreatableTopic(name="t"))
    assert b.topics == []
    assert CreateTopicsRequest(topics=None).topics is None  # type: ignore[arg-type]


def test_replace_and_match_work_as_on_dataclasses() -> None:
    record = dataclasses.replace(PartitionRecord(partition_id=1), leader=7)
    assert (record.partition_id, record.leader) == (1, 7)
    match record:
        case PartitionRecord(1, leader=leader):
            assert leader == 7
        case _:
            pytest.fail("the positional pattern did not match")
    assert dataclasses.is_dataclass(record)
    assert not hasattr(StructBase, "__dataclass_fields__")


def test_instances_hold_only_their_slots() -> None:
    with pytest.raises(AttributeError):
        PartitionRecord().no_such_field = 1  # type: ignore[attr-defined]
