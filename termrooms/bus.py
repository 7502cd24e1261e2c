"""
Fan-out of room events and ephemeral frames to the connections subscribed to a room.

A frame is encoded and prepared once per publish, whatever the number of subscribers
(``prepare`` is the WebSocket factory's ``prepareMessage``). This in-process bus serves a
single instance; the multi-instance work adds a Redis one behind the same interface.
Stored events carry their seq so subscribers can order them and notice gaps; the bus
itself promises nothing beyond best effort, PostgreSQL is the truth.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import attrs


class Subscriber(Protocol):
    def deliver(self, room_id: int, seq: int | None, prepared: Any) -> None:
        """A frame for room ``room_id``: a stored event (with its seq) or ephemeral (None)."""


class EventBus(Protocol):
    def subscribe(self, room_id: int, subscriber: Subscriber) -> None: ...

    def unsubscribe(self, room_id: int, subscriber: Subscriber) -> None: ...

    def publish(
        self, room_id: int, seq: int | None, payload: bytes, skip: Subscriber | None = None
    ) -> None: ...

    def subscribers(self, room_id: int) -> frozenset[Subscriber]: ...


@attrs.define(eq=False)
class LocalBus:
    """The bus of one instance alone."""

    prepare: Callable[[bytes], Any]
    _rooms: dict[int, set[Subscriber]] = attrs.field(factory=dict, init=False)

    def subscribe(self, room_id: int, subscriber: Subscriber) -> None:
        self._rooms.setdefault(room_id, set()).add(subscriber)

    def unsubscribe(self, room_id: int, subscriber: Subscriber) -> None:
        subscribers = self._rooms.get(room_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._rooms[room_id]

    def publish(
        self, room_id: int, seq: int | None, payload: bytes, skip: Subscriber | None = None
    ) -> None:
        subscribers = self._rooms.get(room_id)
        if not subscribers:
            return
        prepared = self.prepare(payload)
        for subscriber in tuple(subscribers):
            if subscriber is not skip:
                subscriber.deliver(room_id, seq, prepared)

    def subscribers(self, room_id: int) -> frozenset[Subscriber]:
        return frozenset(self._rooms.get(room_id, ()))
