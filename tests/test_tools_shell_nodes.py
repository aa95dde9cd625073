"""The shell's nodes for what the captures hold none of (quotas, ACLs, SCRAM users,
delegation tokens): each expected text is the Kafka class's format (ClientQuotasImageNode,
StandardAcl.toString, ScramCredentialDataNode, DelegationTokenDataNode) for the record."""

from __future__ import annotations

import io
import uuid

from kwire.controller.image import MetadataImage
from kwire.protocol._codec import Message
from kwire.protocol.messages.metadata_records.access_control_entry_record import (
    AccessControlEntryRecord,
)
from kwire.protocol.messages.metadata_records.client_quota_record import ClientQuotaRecord
from kwire.protocol.messages.metadata_records.delegation_token_record import (
    DelegationTokenRecord,
)
from kwire.protocol.messages.metadata_records.user_scram_credential_record import (
    UserScramCredentialRecord,
)
from kwire.tools.shell import run_commands
from kwire.tools.shell_format import Provenance, ShellRelease, java_uuid

ACL_ID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")


def image_of(*records: Message) -> MetadataImage:
    image = MetadataImage()
    for offset, record in enumerate(records):
        image.replay(record, 0, offset)
    return image


def run(
    image: MetadataImage, *words: str, release: ShellRelease = ShellRelease.KAFKA_4_3
) -> list[str]:
    out = io.StringIO()
    run_commands(image, Provenance(), release, list(words), out)
    return out.getvalue().splitlines()


def quota(value: float, **entity: str | None) -> ClientQuotaRecord:
    return ClientQuotaRecord(
        entity=[
            ClientQuotaRecord.EntityData(entity_type=k, entity_name=v) for k, v in entity.items()
        ],
        key="producer_byte_rate",
        value=value,
    )


def test_client_quota_entities_are_named_and_escaped_as_kafka_names_them() -> None:
    image = image_of(
        quota(1048576.0, **{"user": "a(b)", "client-id": "c\\d"}),
        quota(2.5e7, ip="10.0.0.1"),
    )
    assert run(image, "ls", "/image/clientQuotas") == [
        "clientId(c\\\\d)_user(a\\(b\\))",
        "ip(10.0.0.1)",
    ]
    assert run(image, "tree", "/image/clientQuotas") == [
        "clientId(c\\\\d)_user(a\\(b\\)):",
        "  producer_byte_rate:",
        "    1048576.0",
        "ip(10.0.0.1):",
        "  producer_byte_rate:",
        "    2.5E7",
    ]


def test_an_acl_prints_as_standard_acl_of_each_release_at_each_releases_path() -> None:
    image = image_of(
        AccessControlEntryRecord(
            id=ACL_ID,
            resource_type=2,
            resource_name="orders",
            pattern_type=3,
            principal="User:alice",
            host="*",
            operation=3,
            permission_type=3,
        )
    )
    name = java_uuid(ACL_ID)
    assert name == "ABEiM0RVZneImaq7zN3u_w"
    body = (
        "resourceType=TOPIC, resourceName=orders, patternType=LITERAL, principal=User:alice, "
        "host=*, operation=READ, permissionType=ALLOW"
    )
    assert run(image, "cat", f"/image/acls/{name}", release=ShellRelease.KAFKA_3_9) == [
        f"StandardAcl({body})"
    ]
    assert run(image, "cat", f"/image/acls/byId/{name}") == [f"StandardAcl[{body}]"]
    assert run(image, "ls", "/image/acls") == ["byId"]


def test_scram_users_and_delegation_tokens_print_unredacted() -> None:
    image = image_of(
        UserScramCredentialRecord(
            name="bob",
            mechanism=2,
            salt=b"\x01\xab",
            stored_key=b"\xff",
            server_key=b"\x00\x10",
            iterations=8192,
        ),
        DelegationTokenRecord(
            owner="User:owner",
            requester="User:req",
            renewers=["User:r1", "User:r2"],
            issue_timestamp=10,
            max_timestamp=30,
            expiration_timestamp=20,
            token_id="tok",
        ),
    )
    assert run(image, "find", "/image/scram") == [
        "/image/scram",
        "/image/scram/SCRAM-SHA-256",
        "/image/scram/SCRAM-SHA-512",
        "/image/scram/SCRAM-SHA-512/bob",
    ]
    assert run(image, "cat", "/image/scram/SCRAM-SHA-512/bob") == [
        "ScramCredentialData(salt=01ab, storedKey=ff, serverKey=0010, iterations=8192)"
    ]
    assert run(image, "cat", "/image/delegationToken/tok") == [
        "DelegationTokenDatatokenId=tok(owner=User:owner(tokenRequester=User:req"
        "(renewers=User:r1 User:r2, issueTimestamp=10, maxTimestamp=30), expiryTimestamp=20"
    ]


def test_an_empty_image_prints_kafkas_empty_values() -> None:
    image = MetadataImage()
    assert run(
        image, "tree", "/image/features", "/image/producerIds", release=ShellRelease.KAFKA_3_9
    ) == [
        "metadataVersion:",
        "  3.0-IV1",  # FeaturesImage.EMPTY: MINIMUM_KRAFT_VERSION
        "zkMigrationState:",
        "  NONE",
        "nextProducerId:",
        "  -1",  # ProducerIdsImage.EMPTY
    ]
    assert run(image, "cat", "/image/features/metadataVersion") == ["Optional.empty"]
    assert run(image, "cat", "/image/provenance") == [
        "offset -1, epoch -1, time 1969-12-31T23:59:59.999Z[UTC]"
    ]
