"""Generated codecs for Kafka's messages (see codegen/). Do not edit."""
