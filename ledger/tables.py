"""Table definitions (SQLAlchemy Core), shared by every dialect."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

processed_events = Table(
    "processed_events",
    metadata,
    Column("source", String(1024), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("source", "event_id", name="pk_processed_events"),
    Index("ix_processed_events_processed_at", "processed_at"),
)

# status: sending (claimed, lease running) -> sent | failed
deliveries = Table(
    "deliveries",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("notification", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("event_source", String(1024), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("recipient", String(2048), nullable=False),  # an address, or a webhook URL
    Column("message_id", String(255), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("first_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_attempt_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("detail", Text, nullable=True),
    Index("ix_deliveries_event", "event_source", "event_id"),
)
