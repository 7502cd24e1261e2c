"""The pure parts of the bus: the envelope between instances and a room's seen seqs."""

from __future__ import annotations

import pytest

from termrooms.cluster.bus import (
    LocalBus,
    RoomHead,
    channel_room,
    decode_envelope,
    encode_envelope,
    room_channel,
)


def test_envelope_round_trips_stored_and_ephemeral_frames_with_spaces_in_the_payload() -> None:
    payload = b'{"type":"message","body":"a b  c"}'
    assert decode_envelope(encode_envelope(7, 42, payload)) == (7, 42, payload)
    assert decode_envelope(encode_envelope(1023, None, payload)) == (1023, None, payload)


def test_room_channel_carries_the_namespace_and_the_room() -> None:
    channel = room_channel("termrooms:3:", 123456789012345)
    assert channel == b"termrooms:3:room:123456789012345"
    assert channel_room(channel) == 123456789012345


def test_malformed_envelope_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode_envelope(b"garbage")


def test_head_advances_over_contiguous_seqs_and_closes_a_gap_when_it_fills() -> None:
    head = RoomHead()
    head.anchor(10)
    head.saw(11)
    head.saw(13)
    assert (head.seen, head.ahead, head.missing) == (11, {13}, True)
    head.saw(12)
    assert (head.seen, head.ahead, head.missing) == (13, set(), False)


def test_head_before_its_anchor_keeps_what_arrives_and_sorts_it_out_after() -> None:
    head = RoomHead()
    head.saw(5)
    head.saw(7)
    assert head.missing is False  # nothing to fill before a join says where the room is
    head.anchor(5)
    assert (head.seen, head.ahead) == (5, {7})
    head.anchor(9)  # a later join read a newer last_seq: known, not seen
    assert (head.seen, head.known, head.missing) == (5, 9, True)


def test_head_caught_up_from_the_database_drops_what_it_passed() -> None:
    head = RoomHead()
    head.anchor(0)
    head.saw(3)
    head.saw(6)
    head.known = 8
    head.caught_up_to(4)
    assert (head.seen, head.ahead) == (4, {6})
    head.caught_up_to(8)
    assert (head.seen, head.ahead, head.missing) == (8, set(), False)


def test_local_bus_prepares_once_and_skips_the_sender() -> None:
    prepared = []
    bus = LocalBus(lambda payload: prepared.append(payload) or payload.upper())

    class Sink:
        def __init__(self) -> None:
            self.got: list = []

        def deliver(self, room_id, seq, frame) -> None:
            self.got.append((room_id, seq, frame))

    a, b = Sink(), Sink()
    bus.subscribe(1, a)
    bus.subscribe(1, b)
    bus.publish(1, 5, b"x", skip=b)
    assert prepared == [b"x"]
    assert (a.got, b.got) == ([(1, 5, b"X")], [])
    bus.unsubscribe(1, a)
    bus.unsubscribe(1, b)
    assert bus.subscribers(1) == frozenset()
