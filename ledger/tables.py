"""Table definitions (SQLAlchemy Core), shared by every dialect."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
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
    # Render provenance of an email: the templates' content hash, their locale, the brand key.
    Column("template_version", String(64), nullable=True),
    Column("locale", String(35), nullable=True),
    Column("brand", String(128), nullable=True),
    Index("ix_deliveries_event", "event_source", "event_id"),
    Index("ix_deliveries_recipient", "recipient"),
)

# The latest applied state of an entity that reminder series hang on (NOTIFICATIONS.md 4):
# the event whose `data` renders its reminders and decides whether they are still due.
entity_states = Table(
    "entity_states",
    metadata,
    Column("entity", String(64), nullable=False),  # the series' entity path, e.g. "plan.id"
    Column("entity_id", String(128), nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("event_source", String(1024), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("data", Text, nullable=False),  # the event's `data` as received (JSON)
    Column("ended", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("entity", "entity_id", name="pk_entity_states"),
)

# One row per reminder instance; the unique key makes a second firing impossible (4.2 rule 10).
reminders = Table(
    "reminders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notification", String(100), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("entity_id", String(128), nullable=False),
    Column("cycle_key", String(64), nullable=False),
    Column("offset_days", Integer, nullable=False),
    Column("fire_date", Date, nullable=False),
    Column("status", String(20), nullable=False),  # pending, firing, sent, cancelled, missed
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint(
        "notification", "entity_id", "cycle_key", "offset_days", name="uq_reminder_instance"
    ),
    Index("ix_reminders_due", "status", "fire_date"),
    Index("ix_reminders_entity", "entity", "entity_id"),
)

# Which threshold fired for which (subscription, billing period), and by which event (5 rule 8).
threshold_alerts = Table(
    "threshold_alerts",
    metadata,
    Column("notification", String(100), nullable=False),
    Column("subscription_id", String(128), nullable=False),
    Column("period_start", String(64), nullable=False),
    Column("event_source", String(1024), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("outcome", String(20), nullable=False),  # sent or suppressed
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint(
        "notification", "subscription_id", "period_start", name="pk_threshold_alerts"
    ),
)

# Every requeue, import and purge of dead letters (`herald replay`): written when the operation
# starts (outcome "started") and completed when it ends, so an interrupted one still shows.
replay_audit = Table(
    "replay_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("actor", String(255), nullable=False),
    Column("action", String(20), nullable=False),  # requeue, import, purge
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("filters", Text, nullable=False),  # JSON
    Column("counts", Text, nullable=False),  # JSON
    Column("outcome", String(20), nullable=False),  # started, ok, failed
    Column("detail", Text, nullable=True),
    Index("ix_replay_audit_started_at", "started_at"),
)

# Since when a queue has held messages without interruption (the dead-letter queue's
# oldest-message age): set by the queue watch when it first sees the queue non-empty, cleared
# when it sees it empty, and set exactly by the replay tool, which reads every message.
queue_marks = Table(
    "queue_marks",
    metadata,
    Column("queue", String(255), primary_key=True),
    Column("oldest_at", DateTime(timezone=True), nullable=False),
)

# Redelivered messages taken alone (`consumers.amqp`, the poison guard): a row is written before
# such a message is processed and deleted after; a row left behind means the process ended
# while it held that message, and `attempts` counts how often.
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("identity", String(600), primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("last_attempt_at", DateTime(timezone=True), nullable=False),
)

# Addresses Herald must not mail (`ledger/suppressions.py`): one row per address, scope and
# reason. `address` is normalised (domain lower-cased, local part as given); `scope` is `all` or
# a notification category; `evidence` is the SMTP reply or provider diagnostic, at most 500
# characters and nothing else personal.
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("address", String(320), nullable=False),
    Column("scope", String(100), nullable=False),
    Column("reason", String(20), nullable=False),  # hard_bounce, complaint, manual, unsubscribed
    Column("source", String(50), nullable=False),  # smtp, cli, import, ...
    Column("evidence", String(500), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("address", "scope", "reason", name="uq_suppression"),
    Index("ix_suppressions_created_at", "created_at"),
)

# Every add and remove of a suppression: who, when, why (like `replay_audit`).
suppression_audit = Table(
    "suppression_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(20), nullable=False),  # add, remove
    Column("address", String(320), nullable=False),
    Column("scope", String(100), nullable=False),
    Column("reason", String(20), nullable=False),
    Column("source", String(50), nullable=False),
    Column("note", Text, nullable=True),  # why: the operator's note, or the evidence
    Index("ix_suppression_audit_at", "at"),
)
