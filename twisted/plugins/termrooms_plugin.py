"""Registers ``twistd termrooms``; the options and services live in termrooms.tap."""

from twisted.application.service import ServiceMaker

termrooms = ServiceMaker(
    "termrooms",
    "termrooms.tap",
    "Self-hosted realtime chat rooms (HTTP API, WebSocket, web client).",
    "termrooms",
)
