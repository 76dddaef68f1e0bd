"""What the SQLite ledger costs per event, and what running its statements on `sqlite3`
directly would give.

For N two-email events, makes the ledger calls Herald's pipeline makes per event, in its
order: the processed check, the suppression lookup and the claims (together), one urgent
"sent" record per email, and the settle with the processed mark. Three ways, interleaved:

- `herald`: through `SqlLedger`, as `herald run` does: group commit, the ledger thread,
  SQLAlchemy's execution path. CPU per event (process time, all threads).
- `sqlalchemy`: the SQL statements SQLAlchemy sent to the driver for those calls (captured
  once), replayed through a SQLAlchemy connection with `exec_driver_sql`, one transaction per
  event, in the same thread: SQLAlchemy's per-statement cost without Herald's batching.
- `sqlite3`: the same statements and parameters on a `sqlite3` connection: the driver's own
  cost, i.e. what the ledger would cost with no SQLAlchemy on the hot path.

    .venv/bin/python bench/ledger_driver.py --events 3000
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.engine import Engine

from herald.ledger.records import NewDelivery, Provenance, Settlement
from herald.ledger.store import SqlLedger

LEASE = timedelta(minutes=5)
PROVENANCE = Provenance("bench", "en", "default")


def _deliveries(event_id: str) -> list[NewDelivery]:
    return [
        NewDelivery(
            key=f"{kind}:{event_id}",
            notification=kind,
            channel="email",
            event_source="orders",
            event_id=event_id,
            recipient=f"{kind}@example.com",
            message_id=f"<{uuid.uuid4().hex}@herald.localhost>",
        )
        for kind in ("order_confirmation_new", "order_notification_new")
    ]


async def one_event(ledger: SqlLedger, event_id: str) -> None:
    """The ledger calls of one delivered two-email event, as `workflow/pipeline.py` makes them."""
    batch = _deliveries(event_id)
    assert not await ledger.is_processed("orders", event_id)
    await asyncio.gather(
        ledger.in_force([(delivery.recipient, None) for delivery in batch]),
        ledger.claim_many(batch, LEASE),
    )
    settlements = [Settlement(delivery.key, "sent", "250 ok", PROVENANCE) for delivery in batch]
    await asyncio.gather(*(ledger.record_now([settlement]) for settlement in settlements))
    await ledger.settle(settlements, processed=("orders", event_id, "orders.order.placed"))


async def herald_ledger(path: Path, events: int, concurrency: int = 64) -> float:
    ledger = await SqlLedger.open(f"sqlite:///{path}")
    try:
        ids = [f"bench-{uuid.uuid4().hex}" for _ in range(events)]
        semaphore = asyncio.Semaphore(concurrency)  # events in flight, like the prefetch

        async def bounded(event_id: str) -> None:
            async with semaphore:
                await one_event(ledger, event_id)

        started = time.process_time()
        await asyncio.gather(*(bounded(event_id) for event_id in ids))
        return (time.process_time() - started) / events * 1e6
    finally:
        await ledger.close()


async def captured_statements(path: Path) -> list[tuple[str, Any, bool]]:
    """The (SQL, parameters, executemany) triples one event's ledger calls send to sqlite3."""
    ledger = await SqlLedger.open(f"sqlite:///{path}")
    sent: list[tuple[str, Any, bool]] = []

    def capture(_c: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        # insertmanyvalues reports executemany for what it sends as one multi-row statement
        sent.append((sql, params, many and isinstance(params, list)))

    sqlalchemy_event.listen(Engine, "before_cursor_execute", capture)  # every engine: the
    # ledger thread's own sync engine runs the SQLite batches
    try:
        await one_event(ledger, f"capture-{uuid.uuid4().hex}")
    finally:
        sqlalchemy_event.remove(Engine, "before_cursor_execute", capture)
        await ledger.close()
    return [item for item in sent if not item[0].lstrip().upper().startswith(("BEGIN", "SELECT 1"))]


async def create_schema(path: Path) -> None:
    ledger = await SqlLedger.open(f"sqlite:///{path}")
    await ledger.close()


Statements = list[tuple[str, Any, bool]]


def _fresh(statements: Statements, old: str, new: str) -> Statements:
    """The statements with one event's ids replaced by another's, so every replay inserts."""

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(old, new)
        if isinstance(value, (list, tuple)):
            return type(value)(swap(item) for item in value)
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        return value

    return [(sql, swap(params), many) for sql, params, many in statements]


def replay_sqlite3(path: Path, statements: list[tuple[str, Any, bool]], events: int) -> float:
    old = _event_id(statements)
    batches = [_fresh(statements, old, f"raw-{uuid.uuid4().hex}") for _ in range(events)]
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    started = time.process_time()
    for batch in batches:
        connection.execute("BEGIN")
        for sql, params, many in batch:
            if many:
                connection.executemany(sql, params)
            else:
                connection.execute(sql, params).fetchall()
        connection.execute("COMMIT")
    elapsed = time.process_time() - started
    connection.close()
    return elapsed / events * 1e6


def replay_sqlalchemy(path: Path, statements: list[tuple[str, Any, bool]], events: int) -> float:
    from sqlalchemy import create_engine

    old = _event_id(statements)
    batches = [_fresh(statements, old, f"sa-{uuid.uuid4().hex}") for _ in range(events)]
    engine = create_engine(f"sqlite:///{path}")
    started = time.process_time()
    with engine.connect() as connection:
        for batch in batches:
            with connection.begin():
                for sql, params, many in batch:
                    result = connection.exec_driver_sql(sql, params if many else tuple(params))
                    if result.returns_rows:
                        result.fetchall()
    elapsed = time.process_time() - started
    engine.dispose()
    return elapsed / events * 1e6


def _event_id(statements: list[tuple[str, Any, bool]]) -> str:
    for _, params, _ in statements:
        for value in params if not isinstance(params, list) else [v for p in params for v in p]:
            if isinstance(value, str) and value.startswith("capture-"):
                return value
    raise RuntimeError("no event id among the captured parameters")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"herald": [], "sqlalchemy": [], "sqlite3": []}
    with tempfile.TemporaryDirectory() as scratch:
        statements = asyncio.run(captured_statements(Path(scratch) / "capture.db"))
        for round_ in range(args.rounds):
            base = Path(scratch) / f"round-{round_}"
            herald = asyncio.run(herald_ledger(base.with_suffix(".h.db"), args.events))
            results["herald"].append(herald)
            for kind, replay in (("sqlalchemy", replay_sqlalchemy), ("sqlite3", replay_sqlite3)):
                path = base.with_suffix(f".{kind}.db")
                asyncio.run(create_schema(path))
                results[kind].append(replay(path, statements, args.events))
    print(f"{len(statements)} statements per two-email event, {args.events:,} events per round")
    for kind, figures in results.items():
        listed = ", ".join(f"{figure:,.0f}" for figure in figures)
        median = sorted(figures)[len(figures) // 2]
        print(f"{kind:<10} CPU per event: median {median:,.0f} us ({listed})")


if __name__ == "__main__":
    main()
