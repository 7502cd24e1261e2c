"""
PostgreSQL and the files the daemon keeps: the connection pool (``database``), the
schema deltas (``sql/``, applied by ``migrations``), one module per concern whose
``_<verb>_txn(cursor, ...)`` bodies each run in one transaction, and the signing-key file.
SQL is written out with placeholders; values are never formatted into it.
Imports ``domain`` and ``operations`` only.
"""
