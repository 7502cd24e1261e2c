"""
Storage: one module per concern. Each public function is an ``async def
_<verb>_txn(cursor, ...)``-style body run in one transaction by
``Database.run_interaction`` (or ``run_in_transaction`` on a connection of one's own).
SQL is written out with placeholders; values are never formatted into it.
"""
