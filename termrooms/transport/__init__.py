"""
What speaks to clients: the HTTP routes (``http``) and the WebSocket gateway
(``gateway``). Thin: they parse, call a handler, render the contract's JSON and frames.
They reach PostgreSQL only through handlers, never ``storage`` directly.
"""
