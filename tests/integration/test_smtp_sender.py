"""The SMTP sender against a real SMTP server (aiosmtpd): reuse, STARTTLS required, and the
mapping of replies to Herald's transient and permanent classes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from herald.errors import PermanentSendError, SmtpAuthenticationError, TransientSendError
from herald.renderers.email import OutgoingEmail
from herald.senders.smtp import SmtpOptions, SmtpSender
from tests.conftest import SmtpServer

pytestmark = pytest.mark.integration


def email(to: str = "mia@northwind.example") -> OutgoingEmail:
    return OutgoingEmail(
        notification="order_placed",
        key="k" * 64,
        envelope_from="notifications@operator.example",
        envelope_to=to,
        message_id="<k@operator.example>",
        subject="Hello",
        content=b"From: a@b.example\r\nTo: mia@northwind.example\r\nSubject: Hello\r\n\r\nHi\r\n",
    )


def sender_for(server: SmtpServer, **options: Any) -> SmtpSender:
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "retry_base_seconds": 0.01,
        "retry_attempts": 3,
        "pool_size": 2,
    }
    values.update(options)
    return SmtpSender(SmtpOptions(**values))


async def test_sends_many_over_reused_connections(smtp_server: SmtpServer) -> None:
    sender = sender_for(smtp_server)
    for index in range(10):
        result = await sender.send(email(f"user{index}@northwind.example"))
        assert result.code == 250
    await sender.close()
    assert [item.recipients for item in smtp_server.received] == [
        [f"user{index}@northwind.example"] for index in range(10)
    ]


async def test_transient_replies_are_retried_until_accepted(smtp_server: SmtpServer) -> None:
    smtp_server.scripted_replies.extend(["451 4.3.0 later", "452 4.3.1 full"])
    sender = sender_for(smtp_server)
    await sender.send(email())
    await sender.close()
    assert len(smtp_server.received) == 1


async def test_transient_replies_exhaust_the_in_process_retries(smtp_server: SmtpServer) -> None:
    smtp_server.scripted_replies.extend(["451 later"] * 5)
    sender = sender_for(smtp_server, retry_attempts=3)
    with pytest.raises(TransientSendError) as caught:
        await sender.send(email())
    await sender.close()
    assert caught.value.code == 451
    assert len(smtp_server.scripted_replies) == 2  # exactly three attempts were made


async def test_permanent_reply_is_not_retried(smtp_server: SmtpServer) -> None:
    smtp_server.scripted_replies.extend(["554 5.7.1 rejected", "250 would have worked"])
    sender = sender_for(smtp_server)
    with pytest.raises(PermanentSendError) as caught:
        await sender.send(email())
    await sender.close()
    assert caught.value.code == 554
    assert smtp_server.scripted_replies == ["250 would have worked"]


async def test_refused_connection_is_transient(unused_tcp_port: int) -> None:
    sender = SmtpSender(
        SmtpOptions(port=unused_tcp_port, retry_base_seconds=0.01, retry_attempts=2)
    )
    with pytest.raises(TransientSendError):
        await sender.send(email())


async def test_starttls_true_never_falls_back_to_plaintext(smtp_server: SmtpServer) -> None:
    # aiosmtpd here offers no STARTTLS: a required-TLS sender must refuse to send.
    sender = sender_for(smtp_server, starttls=True, retry_attempts=1)
    with pytest.raises(TransientSendError):
        await sender.send(email())
    assert smtp_server.received == []


class _AuthRejectingHandler:
    async def handle_DATA(self, *_: Any) -> str:
        return "250 OK"


@pytest.fixture
def auth_server(unused_tcp_port: int) -> Iterator[int]:
    def reject(*_: Any) -> bool:
        return False

    controller = Controller(
        _AuthRejectingHandler(),
        hostname="127.0.0.1",
        port=unused_tcp_port,
        authenticator=reject,
        auth_require_tls=False,
        auth_required=False,
    )
    controller.start()
    yield unused_tcp_port
    controller.stop()


async def test_wrong_credentials_are_an_authentication_fault_not_the_messages(
    auth_server: int,
) -> None:
    sender = SmtpSender(
        SmtpOptions(
            port=auth_server,
            username="herald",
            password="wrong",
            retry_base_seconds=0.01,
            retry_attempts=1,
        )
    )
    with pytest.raises(SmtpAuthenticationError) as caught:
        await sender.send(email())
    assert caught.value.code == 535


async def test_a_pooled_connection_closed_by_the_server_is_reopened(
    unused_tcp_port: int,
) -> None:
    from tests.conftest import start_smtp_server

    server, controller = start_smtp_server(unused_tcp_port)
    sender = SmtpSender(
        SmtpOptions(port=unused_tcp_port, pool_size=1, retry_base_seconds=0.01, retry_attempts=3)
    )
    await sender.send(email("first@northwind.example"))
    controller.stop()  # the server goes away and drops the idle pooled connection
    server, controller = start_smtp_server(unused_tcp_port)
    try:
        await sender.send(email("second@northwind.example"))
        assert [item.recipients for item in server.received] == [["second@northwind.example"]]
    finally:
        await sender.close()
        controller.stop()


async def test_a_drop_during_data_is_not_retried_at_once(unused_tcp_port: int) -> None:
    from herald.senders.smtp import AmbiguousSendError

    calls: list[int] = []

    class DropAfterData:
        async def handle_DATA(self, server: Any, *_: Any) -> str:
            calls.append(1)
            server.transport.close()  # the message arrived; the 250 never does
            return "250 OK"

    controller = Controller(DropAfterData(), hostname="127.0.0.1", port=unused_tcp_port)
    controller.start()
    sender = SmtpSender(
        SmtpOptions(port=unused_tcp_port, retry_base_seconds=0.01, retry_attempts=5)
    )
    try:
        with pytest.raises(AmbiguousSendError):
            await sender.send(email())
        assert len(calls) == 1  # left to the broker-side retry, later
    finally:
        await sender.close()
        controller.stop()


async def test_credentials_against_a_server_offering_no_auth_are_a_configuration_fault(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """aiosmtplib raises a bare SMTPException ("The SMTP AUTH extension is not supported by
    this server"): retrying it as a connection failure would never end."""
    sender = sender_for(smtp_server, username="herald", password="secret-value")
    with caplog.at_level("ERROR", logger="herald.senders.smtp"):
        with pytest.raises(SmtpAuthenticationError) as caught:
            await sender.send(email())
        with pytest.raises(SmtpAuthenticationError):
            await sender.check()
    assert caught.value.code is None
    assert "offers no AUTH" in str(caught.value)
    assert smtp_server.received == []
    logged = [record.getMessage() for record in caplog.records]
    assert any(f"127.0.0.1:{smtp_server.port}" in line and "AUTH" in line for line in logged)
    assert all("secret-value" not in line for line in logged)
    await sender.close()


async def test_a_refusal_carries_its_enhanced_code_and_stage(smtp_server: SmtpServer) -> None:
    smtp_server.refused_recipients["gone@northwind.example"] = "550 5.1.1 <gone>: user unknown"
    sender = sender_for(smtp_server)
    with pytest.raises(PermanentSendError) as at_rcpt:
        await sender.send(email("gone@northwind.example"))
    assert (at_rcpt.value.code, at_rcpt.value.enhanced, at_rcpt.value.stage) == (
        550,
        "5.1.1",
        "rcpt",
    )
    assert at_rcpt.value.reply == "5.1.1 <gone>: user unknown"
    assert "gone" not in str(at_rcpt.value)  # the message (logged) names no address
    smtp_server.scripted_replies.append("554 5.7.1 rejected as spam")
    with pytest.raises(PermanentSendError) as after_data:
        await sender.send(email())
    assert (after_data.value.code, after_data.value.enhanced, after_data.value.stage) == (
        554,
        "5.7.1",
        "data",
    )
    await sender.close()
