"""The ledger: what Herald has processed and sent, in SQL (SQLAlchemy 2 async Core).

SQLite by default, PostgreSQL for replicas. It holds the duplicate keys of processed events
(EVENTS.md 3.2) and one row per delivery under the instance key of NOTIFICATIONS.md 6.1.
"""
