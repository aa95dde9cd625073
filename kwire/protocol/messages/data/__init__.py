"""Generated codecs for Kafka's other data schemas. Do not edit."""
