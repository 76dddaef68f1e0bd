"""Which SMTP refusals mean the address does not exist (a `hard_bounce` suppression) and which
are failures to look at (issue 18, section 2)."""

from __future__ import annotations

import pytest

from herald.senders.bounces import enhanced_code, is_hard_bounce


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ("5.1.1 <jane@example.com>: Recipient address rejected", "5.1.1"),
        ("  5.1.10 Recipient address has null MX", "5.1.10"),
        ("4.2.2 Mailbox full", "4.2.2"),
        ("5.7.1 Message rejected as spam", "5.7.1"),
        ("User unknown", None),
        ("5.1 not a code", None),
        ("5.1.1.1 four parts", None),
        ("", None),
        (None, None),
    ],
)
def test_the_enhanced_code_is_read_from_the_start_of_the_reply(
    reply: str | None, code: str | None
) -> None:
    assert enhanced_code(reply) == code


@pytest.mark.parametrize(
    ("code", "enhanced", "stage", "bounce"),
    [
        (550, "5.1.1", "rcpt", True),
        (550, "5.1.1", "data", True),
        (553, "5.1.2", "rcpt", True),
        (553, "5.1.3", "rcpt", True),
        (556, "5.1.10", "rcpt", True),
        (550, None, "rcpt", True),  # a bare 550 after RCPT
        (550, None, "data", False),  # after DATA it needs the enhanced code
        (551, None, "rcpt", False),
        (554, "5.7.1", "rcpt", False),  # policy
        (550, "5.7.1", "data", False),
        (554, "5.6.0", "data", False),  # content
        (552, "5.2.2", "rcpt", False),  # mailbox full
        (452, "4.2.2", "rcpt", False),
        (550, "5.1.1", "mail", False),  # our sender refused, not the recipient
        (550, "5.1.1", None, False),
        (None, "5.1.1", "rcpt", False),
    ],
)
def test_only_a_bad_address_is_a_hard_bounce(
    code: int | None, enhanced: str | None, stage: str | None, bounce: bool
) -> None:
    assert is_hard_bounce(code, enhanced, stage) is bounce
