"""
``termrooms chat``: the terminal client, full screen (urwid on the Twisted reactor) and in
a plain line mode for scripts (v1.1, The terminal client).

It talks to a daemon only over the wire contract, as a client written by anyone else
would: HTTP through treq, the WebSocket through Autobahn's client. It imports nothing of
the server's layers (transport, handlers, cluster, storage, operations); the rules it
shares with the server (command names, body limits) come from ``termrooms.domain``.
``termrooms.chat.logic`` holds its pure parts, tested without a network or a terminal.
"""
