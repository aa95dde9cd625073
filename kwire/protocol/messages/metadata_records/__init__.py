"""Generated codecs for Kafka's metadata records. Do not edit."""
