"""Generated codecs for KRaft's control records. Do not edit."""
