"""Handlers: the rules between the HTTP/WebSocket layers and the store."""
