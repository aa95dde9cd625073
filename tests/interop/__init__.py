"""Interoperability tests: kwire with a genuine Kafka 3.9 broker and Kafka's own tools.

They need a Kafka 3.9 distribution named by ``KAFKA_HOME`` and a ``java``; without
them the whole package is skipped (see conftest.py).
"""
