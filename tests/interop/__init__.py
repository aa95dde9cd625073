"""Interoperability tests: kwire with a genuine Kafka broker and Kafka's own tools.

They need a Kafka distribution of a release line kwire serves (3.9, or 4.0 to 4.3) named by
``KAFKA_HOME`` and a ``java``; without them the whole package is skipped (see conftest.py).
kwire is formatted at the level that release formats new clusters at, so a 3.9 broker
runs at 3.9-IV0 and a 4.3 broker at 4.3-IV0 with every 4.x feature on.
"""
