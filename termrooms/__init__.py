"""termrooms: a self-hosted realtime chat-room daemon."""

__version__ = "0.1.0"
