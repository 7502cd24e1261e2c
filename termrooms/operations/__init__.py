"""
What keeps the process observable and bounded for whoever runs it: logs, metrics, the
systemd notifier, deadlines on I/O, backups and the embedded PostgreSQL, what the admin
commands print. Imports only ``domain``; every layer above may use it.
"""
