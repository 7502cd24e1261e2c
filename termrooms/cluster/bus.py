"""
Fan-out of room events and ephemeral frames to the connections subscribed to a room.

A frame is encoded and prepared once per publish, whatever the number of subscribers
(``prepare`` is the WebSocket factory's ``prepareMessage``). ``LocalBus`` serves one
instance alone; ``termrooms.cluster.fanout`` puts Redis and PostgreSQL behind the same
interface for many. Stored events carry their seq so subscribers can order them and
notice gaps; PostgreSQL is the truth.

This module is pure: the envelope of a frame between instances and the bookkeeping of
which seqs of a room an instance has seen live here, without any networking.
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

    def anchor(self, room_id: int, last_seq: int) -> None:
        """A subscriber of the room read ``last_seq`` as its latest committed seq."""


@attrs.define(eq=False)
class LocalBus:
    """The bus of one instance alone."""

    prepare: Callable[[bytes], Any]
    # Subscribers in the order they came (a dict, not a set): delivery order is repeatable.
    _rooms: dict[int, dict[Subscriber, None]] = attrs.field(factory=dict, init=False)

    def subscribe(self, room_id: int, subscriber: Subscriber) -> None:
        self._rooms.setdefault(room_id, {})[subscriber] = None

    def unsubscribe(self, room_id: int, subscriber: Subscriber) -> None:
        subscribers = self._rooms.get(room_id)
        if subscribers is not None:
            subscribers.pop(subscriber, None)
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

    def anchor(self, room_id: int, last_seq: int) -> None:
        """Alone, every committed event was published here: nothing to catch up on."""


def room_channel(namespace: str, room_id: int) -> bytes:
    """The Redis channel of one room: an instance hears only rooms it has sockets in."""
    return f"{namespace}room:{room_id}".encode()


def channel_room(channel: bytes) -> int:
    return int(channel.rsplit(b":", 1)[1])


def encode_envelope(node_id: int, seq: int | None, payload: bytes) -> bytes:
    """``NODE SEQ PAYLOAD`` (``-`` for an ephemeral frame): the payload goes unparsed."""
    return b"%d %s %s" % (node_id, b"-" if seq is None else b"%d" % seq, payload)


def decode_envelope(message: bytes) -> tuple[int, int | None, bytes]:
    node, seq, payload = message.split(b" ", 2)
    return int(node), None if seq == b"-" else int(seq), payload


@attrs.define
class RoomHead:
    """
    Which seqs of a room this instance has handed to its subscribers: all up to
    ``seen``, plus those ``ahead`` of a gap. ``known`` is the highest seq known to be
    committed (from a hint, a poll or a subscriber's join); while it is past ``seen``,
    or a gap is open, the instance must read the missing events from PostgreSQL.
    """

    seen: int | None = None  # None until a subscriber's join anchors the room
    ahead: set[int] = attrs.field(factory=set)
    known: int = 0
    filling: bool = False

    def saw(self, seq: int) -> None:
        self.known = max(self.known, seq)
        if self.seen is None or seq <= self.seen:
            if self.seen is None:
                self.ahead.add(seq)
            return
        if seq == self.seen + 1:
            self.seen = seq
            while self.seen + 1 in self.ahead:
                self.seen += 1
                self.ahead.discard(self.seen)
        else:
            self.ahead.add(seq)

    def anchor(self, last_seq: int) -> None:
        if self.seen is None:
            self.seen = last_seq
            self.ahead = {s for s in self.ahead if s > last_seq}
            pending, self.ahead = sorted(self.ahead), set()
            for seq in pending:
                self.saw(seq)
        self.known = max(self.known, last_seq)

    def caught_up_to(self, seq: int) -> None:
        """PostgreSQL handed over every event up to ``seq``."""
        if self.seen is None or seq > self.seen:
            self.seen = seq
        self.ahead = {s for s in self.ahead if s > self.seen}
        while self.seen + 1 in self.ahead:
            self.seen += 1
            self.ahead.discard(self.seen)

    def handed_out(self, seq: int) -> bool:
        """Whether ``seq`` already went to this instance's subscribers."""
        return (self.seen is not None and seq <= self.seen) or seq in self.ahead

    @property
    def missing(self) -> bool:
        return self.seen is not None and (self.known > self.seen or bool(self.ahead))
