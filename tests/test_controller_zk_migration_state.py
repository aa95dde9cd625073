"""ZkMigrationStateRecord bytes mean what Kafka's metadata.migration.ZkMigrationState says:
the enum's declaration order is not its byte order (MIGRATION is 1, PRE_MIGRATION 2), so a
log written by Kafka mid-migration must not read as pre-migration, nor the other way."""

from __future__ import annotations

import pytest

from kwire.controller.image import MetadataImage
from kwire.controller.registrations import ZkMigrationState
from kwire.protocol.messages.metadata_records.zk_migration_state_record import (
    ZkMigrationStateRecord,
)


@pytest.mark.parametrize(
    ("byte", "name"),
    [(0, "NONE"), (1, "MIGRATION"), (2, "PRE_MIGRATION"), (3, "POST_MIGRATION"), (4, "ZK")],
)
def test_each_record_byte_reads_as_kafkas_state(byte: int, name: str) -> None:
    image = MetadataImage()
    image.replay(ZkMigrationStateRecord(zk_migration_state=byte), 0, 0)
    assert image.zk_migration_state.name == name


def test_the_pre_migration_state_kwire_writes_is_kafkas_byte_2() -> None:
    assert ZkMigrationStateRecord(zk_migration_state=ZkMigrationState.PRE_MIGRATION).encode(0) == (
        ZkMigrationStateRecord(zk_migration_state=2).encode(0)
    )
