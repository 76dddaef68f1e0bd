"""Create the async engine from the usual URL forms, picking the async driver itself."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from herald.errors import ConfigurationError

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(url: str) -> str:
    """`sqlite:///herald.db` -> `sqlite+aiosqlite:///herald.db`; `postgresql://...` -> asyncpg."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError for a malformed URL
        raise ConfigurationError(f"DATABASE_URL is not a database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "postgres"):
        raise ConfigurationError(
            f"DATABASE_URL: unsupported database {backend!r} (use sqlite or postgresql)"
        )
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    resolved = async_url(url)
    if resolved.startswith("sqlite"):
        # SQLite has one writer: one pooled connection queues transactions in the pool instead
        # of letting several connections contend for the file lock with sleeping retries.
        engine = create_async_engine(
            resolved, connect_args={"timeout": 30}, pool_size=1, max_overflow=0, pool_timeout=60
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping: a dropped connection fails its transaction, which is retried as a transient
    # failure on a fresh connection (SQLAlchemy invalidates the broken one).
    return create_async_engine(resolved, pool_size=10, max_overflow=10, pool_recycle=1800)


def sqlite_file(url: str) -> str | None:
    """The absolute path of a SQLite ledger's file; None for PostgreSQL or in-memory SQLite."""
    parsed = make_url(async_url(url))
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    return os.path.abspath(database)


@dataclass(frozen=True, slots=True)
class LedgerLocation:
    """Where a ledger URL points, without its password: a SQLite file, or a PostgreSQL
    server and database."""

    kind: str  # "SQLite" or "PostgreSQL"
    file: str = ""  # SQLite: the absolute path (or `:memory:`)
    host: str = "localhost"
    port: int = 5432
    database: str | None = None
    user: str | None = None

    @property
    def address(self) -> str:
        """`/srv/herald.db`, or `db.internal:5432/herald`."""
        if self.kind == "SQLite":
            return self.file
        return f"{self.host}:{self.port}/{self.database or ''}"

    def where(self) -> str:
        """For an operator (not as a URL, which the log formatter would mask): `SQLite
        /srv/herald.db` or `PostgreSQL db.internal:5432, database herald, user herald`."""
        if self.kind == "SQLite":
            return f"SQLite {self.file}"
        where = f"PostgreSQL {self.host}:{self.port}"
        if self.database:
            where += f", database {self.database}"
        return where + (f", user {self.user}" if self.user else "")

    def url(self) -> str:
        """The URL without its password (`postgresql://herald@db.internal:5432/herald`)."""
        if self.kind == "SQLite":
            return f"sqlite:///{self.file}"
        return URL.create(
            "postgresql", self.user, None, self.host, self.port, self.database
        ).render_as_string(hide_password=False)


def ledger_location(url: str) -> LedgerLocation:
    parsed = make_url(async_url(url))
    if parsed.get_backend_name() == "sqlite":  # where the file is, however the URL names it
        return LedgerLocation("SQLite", file=sqlite_file(url) or parsed.database or ":memory:")
    return LedgerLocation(
        "PostgreSQL",
        host=parsed.host or "localhost",
        port=parsed.port or 5432,
        database=parsed.database,
        user=parsed.username,
    )


def ledger_where(url: str) -> str:
    return ledger_location(url).where()


def sqlite_sync_engine(url: str) -> Engine | None:
    """For a SQLite ledger, the synchronous engine its batches run on (`ledger.batcher`)."""
    resolved = make_url(async_url(url))
    if resolved.get_backend_name() != "sqlite":
        return None
    plain = resolved.set(drivername="sqlite+pysqlite")
    engine = create_sync_engine(
        plain,
        # Only the ledger thread uses it; the pool's connection is made in that thread.
        connect_args={"timeout": 30, "check_same_thread": False},
        pool_size=1,
        max_overflow=0,
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL lets readers and the writer proceed together; NORMAL keeps every committed
    # transaction across a process crash (only an OS crash can lose the last ones).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
