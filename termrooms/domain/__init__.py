"""
The rules and value types of termrooms: roles, permissions, command parsing, event and
frame shapes, snowflakes, rate-limit arithmetic, token claims, retention policy, wire
encoding. Pure: imports nothing of termrooms outside this package and no I/O library
(no Twisted reactor or Deferreds, psycopg2, txpostgres, txredisapi, Klein, Autobahn).
"""
