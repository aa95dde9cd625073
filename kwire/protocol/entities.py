"""Kafka's entity types, as names for the plain values that carry them.

Aliases rather than NewTypes: they document a field (`leader_id: BrokerId`) without
making every caller wrap its integers.
"""

from typing import TypeAlias

BrokerId: TypeAlias = int
TopicName: TypeAlias = str
GroupId: TypeAlias = str
ProducerId: TypeAlias = int
TransactionalId: TypeAlias = str
