"""
Many instances as one: the room bus (``bus``, and ``fanout`` through Redis with
PostgreSQL as the truth), shared presence, LISTEN/NOTIFY between instances, rate limits
kept in Redis. Redis only carries hints. Imports ``storage``, ``operations``, ``domain``.
"""
