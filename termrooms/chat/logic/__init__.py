"""
The terminal client's pure parts: the outbox, the timeline (each seq once), reconnect
backoff, completion, input history, the room list and the line renderer. No Twisted,
Autobahn, treq or urwid: plain values and functions, unit-tested in microseconds.
"""
