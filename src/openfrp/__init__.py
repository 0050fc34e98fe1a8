"""openfrp: an open remote-session server, terminal and post-session analyzer."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
