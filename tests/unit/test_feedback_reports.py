"""Reading DSN and ARF reports (feedback/reports.py): reports built with the standard library
as MTAs write them, the real-world samples under tests/data/feedback/, and hostile input, which
may only ever end in `ReportRefused`."""

from __future__ import annotations

import random

import pytest

from herald.feedback.reports import ReadReport, ReportRefused, read_report
from herald.senders.return_path import ReturnPath
from tests.feedback_mail import arf, dsn, plain_mail, sample

DOMAIN = "bounces.operator.example"
KEY = "0123456789abcdef0123" + "a" * 44
OTHER_KEY = "fedcba9876543210fedc" + "b" * 44
RETURN_PATH = ReturnPath(DOMAIN, b"unit-test-secret")
VERP = RETURN_PATH.address(KEY)
FORGED = ReturnPath(DOMAIN, b"someone-else").address(KEY)
FIXED = f"fbl@{DOMAIN}"


def read(raw: bytes, *recipients: str) -> ReadReport:
    return read_report(raw, list(recipients) or [VERP], RETURN_PATH)


def refusal(raw: bytes, *recipients: str) -> ReportRefused:
    with pytest.raises(ReportRefused) as refused:
        read(raw, *recipients)
    return refused.value


# Delivery status notifications ---------------------------------------------------------------


def test_a_permanent_failure_for_a_bad_mailbox_is_a_bounce_of_the_named_delivery() -> None:
    result = read(dsn(VERP))
    assert result.source == "dsn"
    (report,) = result.reports
    assert (report.kind, report.source, report.delivery_prefix) == ("bounce", "dsn", KEY[:20])
    assert report.evidence == (
        "5.1.1 smtp; 550 5.1.1 <sara.holm@operator.example>: Recipient address rejected: "
        "User unknown"
    )
    # The delivery's own recipient is suppressed, never the address written in the report.
    assert report.address is None


@pytest.mark.parametrize(
    "status", ["5.1.1", "5.1.2", "5.1.3", "5.1.10", "5.1.6", "5.1.1 (bad destination mailbox)"]
)
def test_every_bad_destination_address_status_is_a_bounce(status: str) -> None:
    (report,) = read(dsn(VERP, status=status)).reports
    assert report.kind == "bounce"
    assert report.evidence.startswith(status.split(" ")[0] + " ")


@pytest.mark.parametrize(
    ("action", "status", "why"),
    [
        ("delayed", "4.4.1", "not_failed"),
        ("delivered", "2.0.0", "not_failed"),
        ("relayed", "2.0.0", "not_failed"),
        ("expanded", "2.0.0", "not_failed"),
        ("failed", "4.4.7", "not_hard_bounce"),
        ("failed", "5.7.1", "not_hard_bounce"),  # policy: the content, not the address
        ("failed", "5.2.2", "not_hard_bounce"),  # mailbox full
        ("failed", "5.1.8", "not_hard_bounce"),  # the sender's address, not the recipient's
        ("failed", "5.4.4", "not_hard_bounce"),
        ("failed", "", "not_hard_bounce"),
    ],
)
def test_other_dsns_are_valid_reports_that_change_nothing(
    action: str, status: str, why: str
) -> None:
    result = read(dsn(VERP, action=action, status=status))
    assert (result.source, result.reports, result.ignored) == ("dsn", (), why)


def test_a_dsn_must_name_a_delivery_by_its_signed_envelope_recipient() -> None:
    # A forged tag, and a fixed address with a good token only in the body: both refused.
    assert (refusal(dsn(FORGED), FORGED).reason, refusal(dsn(FORGED), FORGED).source) == (
        "no_token",
        "dsn",
    )
    assert refusal(dsn(VERP, to=FIXED), FIXED).reason == "no_token"


def test_one_report_per_distinct_signed_recipient() -> None:
    other = RETURN_PATH.address(OTHER_KEY)
    result = read(dsn(VERP), VERP, other, VERP.upper(), FORGED)
    assert [report.delivery_prefix for report in result.reports] == [KEY[:20], OTHER_KEY[:20]]


def test_a_dsn_without_recipient_blocks_is_malformed() -> None:
    raw = dsn(VERP).replace(b"Action: failed\r\n", b"").replace(b"Status: 5.1.1\r\n", b"")
    assert (refusal(raw).reason, refusal(raw).source) == ("malformed", "dsn")


def test_an_smtputf8_dsn_is_read_too() -> None:
    # RFC 6533: message/global-delivery-status (the email package reads it as one message
    # whose body holds the recipient blocks).
    raw = dsn(VERP).replace(b"message/delivery-status", b"message/global-delivery-status")
    (report,) = read(raw).reports
    assert (report.kind, report.evidence[:6]) == ("bounce", "5.1.1 ")


# Complaint reports (ARF) ---------------------------------------------------------------------


def test_a_complaint_to_the_verp_address_names_its_delivery() -> None:
    result = read(arf(VERP))
    (report,) = result.reports
    assert (result.source, report.kind, report.source) == ("arf", "complaint", "arf")
    assert (report.delivery_prefix, report.address) == (KEY[:20], None)
    assert report.evidence == "arf abuse; ExampleFBL/1.0"


def test_a_complaint_to_a_fixed_address_is_named_by_the_returned_signed_return_path() -> None:
    (report,) = read(arf(FIXED, returned_path=VERP), FIXED).reports
    assert report.delivery_prefix == KEY[:20]
    (report,) = read(arf(FIXED, original_mail_from=VERP), FIXED).reports
    assert report.delivery_prefix == KEY[:20]


def test_a_complaint_naming_no_signed_token_is_refused() -> None:
    # The returned headers still carry the Message-ID with the key prefix: never trusted.
    for raw in (arf(FIXED), arf(FIXED, returned_path=FORGED, original_mail_from=FORGED)):
        refused = refusal(raw, FIXED)
        assert (refused.reason, refused.source) == ("no_token", "arf")


@pytest.mark.parametrize("feedback_type", ["abuse", "fraud", "virus", "other", "Abuse"])
def test_complaint_feedback_types(feedback_type: str) -> None:
    (report,) = read(arf(VERP, feedback_type=feedback_type)).reports
    assert report.evidence.startswith(f"arf {feedback_type.lower()};")


@pytest.mark.parametrize("feedback_type", ["not-spam", "auth-failure", "something-new"])
def test_reports_that_are_not_complaints_change_nothing(feedback_type: str) -> None:
    result = read(arf(VERP, feedback_type=feedback_type))
    assert (result.reports, result.ignored) == ((), "not_a_complaint")


def test_an_arf_without_a_feedback_type_is_malformed() -> None:
    raw = arf(VERP).replace(b"Feedback-Type: abuse\r\n", b"")
    assert (refusal(raw).reason, refusal(raw).source) == ("malformed", "arf")


# Real-world samples --------------------------------------------------------------------------


def test_a_postfix_dsn() -> None:
    result = read(sample("postfix_dsn.eml", VERP))
    (report,) = result.reports
    assert (report.kind, report.delivery_prefix, report.address) == ("bounce", KEY[:20], None)
    assert report.evidence == (
        "5.1.1 smtp; 550 5.1.1 <sara.holm@operator.example>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    assert refusal(sample("postfix_dsn.eml", FORGED), FORGED).reason == "no_token"


def test_a_yahoo_feedback_loop_report_to_a_fixed_address() -> None:
    result = read(sample("yahoo_arf.eml", VERP), FIXED)
    (report,) = result.reports
    assert (report.kind, report.delivery_prefix, report.address) == ("complaint", KEY[:20], None)
    assert report.evidence == "arf abuse; Yahoo!-Mail-Feedback/2.0"
    assert refusal(sample("yahoo_arf.eml", FORGED), FIXED).reason == "no_token"


# Not reports, and hostile input --------------------------------------------------------------


def test_an_ordinary_email_is_not_a_report() -> None:
    refused = refusal(plain_mail(VERP))
    assert (refused.reason, refused.source) == ("not_a_report", "smtp")


def test_other_report_types_are_not_reports() -> None:
    read_receipt = dsn(VERP).replace(b"delivery-status", b"disposition-notification")
    assert refusal(read_receipt).reason == "not_a_report"
    mixed = dsn(VERP).replace(b"multipart/report", b"multipart/mixed")
    assert refusal(mixed).reason == "not_a_report"


MALFORMED = [
    b"",
    b"\r\n\r\n",
    b"\x00\xff\xfe" * 300,
    b"Content-Type: multipart/report\r\n\r\nno boundary at all",
    b'Content-Type: multipart/report; boundary="b"\r\n\r\n--b\r\n',
    b'Content-Type: multipart/report; boundary="b"\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n--b--',
    b'Content-Type: multipart/report; boundary="b"\r\n\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\n\x00\x01:\r\n--b--',
    b"Content-Type: multipart/report; boundary==?utf-8?q?=0A?=\r\nTo: =?utf-8?b?!!!?=\r\n\r\n",
    b'Content-Type: multipart/report; boundary="b"\r\n\r\n'
    + b'--b\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' * 2000,
    b"From: <<<@@@>>>\r\nTo: ,,,;;;\r\nContent-Type: ;;;=;;\r\n\r\nbody",
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_input_is_refused_never_raised(raw: bytes) -> None:
    with pytest.raises(ReportRefused):
        read(raw)


def test_mangled_samples_only_ever_read_or_refuse() -> None:
    rng = random.Random(18)
    originals = [
        sample("postfix_dsn.eml", VERP),
        sample("yahoo_arf.eml", VERP),
        dsn(VERP),
        arf(FIXED, returned_path=VERP),
    ]
    for _ in range(400):
        raw = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 12)):
            position = rng.randrange(len(raw))
            choice = rng.random()
            if choice < 0.4:
                raw[position] = rng.randrange(256)
            elif choice < 0.7:
                del raw[position : position + rng.randint(1, 200)]
            else:
                raw[position:position] = rng.choice([b"\r\n", b"--", b";", b"=?", b"\r\n\r\n"])
        try:
            result = read(bytes(raw), VERP, FIXED)
        except ReportRefused:
            continue
        assert all(report.address is None for report in result.reports)
        assert all(report.delivery_prefix == KEY[:20] for report in result.reports)
