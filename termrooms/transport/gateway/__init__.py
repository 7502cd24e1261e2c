"""
The WebSocket gateway at ``/ws``, by concern: ``protocol`` (handshake, dispatch of
frames), ``factory`` (what connections share, the drain), ``feeds`` (a room's events to
one connection, exactly once and in order), ``presence`` and ``registry`` (connections
by user).
"""
