"""Command-line tools that mirror Kafka's own (``python -m kwire.tools.<name>``)."""
