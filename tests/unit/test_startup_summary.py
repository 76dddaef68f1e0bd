"""The start-up summary of `herald run` (service/startup.py) from settings other than the first
run's: a PostgreSQL ledger and a broker with passwords, TLS, an escaped vhost, the bind-all HTTP
address, the public and bounce listeners. No password anywhere; no URL or user@host in the log
line (the log rules); the plain block gives the URLs a person opens."""

from __future__ import annotations

import re
from pathlib import Path

from herald.service.settings import Settings
from herald.service.startup import DevSink, herald_command, summarize

ADDRESS_OR_URL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+|://")


def test_no_password_and_in_the_log_line_no_url_or_user_at_host() -> None:
    settings = Settings(
        amqp_url="amqps://herald:amqp-s3cret@mq.example.com/prod%2Fherald",
        database_url="postgresql+asyncpg://herald:db-s3cret@db.example.com:6432/ledger",
        smtp_host="smtp.example.com",
        smtp_port=587,
        public_http_port=8080,
        public_base_url="https://notify.example.com",
        unsubscribe_keys="k1:" + "x" * 32,
    )
    summary = summarize(settings, http_port=9464, public_port=8080, argv0="/opt/herald/bin/herald")

    fields = summary.log_fields()
    assert fields["broker"] == "mq.example.com:5671 vhost prod/herald"
    assert fields["ledger"] == "PostgreSQL db.example.com:6432/ledger"
    assert fields["smtp"] == "smtp.example.com:587"
    assert fields["metrics"] == "127.0.0.1:9464/metrics"  # bound to 0.0.0.0: reached locally
    assert fields["public_http"] == "0.0.0.0:8080"
    assert fields["publish_command"] == "/opt/herald/bin/herald publish-example orders.order.placed"
    assert "outbox" not in fields
    line = summary.message() + repr(fields)
    assert "s3cret" not in line
    assert not ADDRESS_OR_URL.search(line), line

    block = summary.plain()
    assert "s3cret" not in block
    assert "amqps://herald@mq.example.com:5671 (vhost prod/herald)" in block
    assert "PostgreSQL postgresql://herald@db.example.com:6432/ledger" in block
    assert "http://127.0.0.1:9464/metrics" in block
    assert "in a shell with the same HERALD_AMQP_URL" in block  # not the default broker


def test_the_first_run_defaults_and_the_dev_sink() -> None:
    summary = summarize(
        Settings(smtp_port=8025),
        http_port=9464,
        dev_sink=DevSink("127.0.0.1", 8025, Path("outbox")),
        argv0=".venv/bin/herald",
    )
    assert summary.log_fields()["ledger"] == f"SQLite {Path.cwd() / 'herald.db'}"
    assert summary.log_fields()["broker"] == "127.0.0.1:5672 vhost /"
    assert summary.publish_note is None  # the default broker needs no environment
    block = summary.plain()
    assert "127.0.0.1:8025  (dev sink writing to outbox/)" in block
    assert "publish an example:  .venv/bin/herald publish-example orders.order.placed" in block
    assert "outbox/index.html" in block


def test_the_command_is_the_path_that_works_from_the_folder(tmp_path: Path) -> None:
    executable = tmp_path / ".venv" / "bin" / "herald"
    assert herald_command(str(executable), tmp_path) == ".venv/bin/herald"
    assert herald_command(str(executable), tmp_path / "elsewhere") == str(executable)
