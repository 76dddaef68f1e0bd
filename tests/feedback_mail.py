"""Bounce and complaint reports as MTAs write them, built with the standard library, and the
real-world samples under tests/data/feedback/ (their `{{RETURN_PATH}}` replaced by a signed
VERP address). Shared by the unit, integration, end-to-end and fault tests."""

from __future__ import annotations

from email import policy
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

SAMPLES = Path(__file__).parent / "data" / "feedback"
GONE = "sara.holm@operator.example"


def sample(name: str, return_path: str) -> bytes:
    text = (SAMPLES / name).read_text("utf-8").replace("{{RETURN_PATH}}", return_path)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def _fields(**values: str) -> Message:
    block = Message()
    for name, value in values.items():
        block[name.replace("_", "-")] = value
    return block


def _original_headers(return_path: str | None) -> MIMEBase:
    lines = [f"Return-Path: <{return_path}>"] if return_path else []
    lines += [
        "From: Cloud Portal <notifications@operator.example>",
        f"To: {GONE}",
        "Subject: Your order BP-1001 was placed",
        "Message-ID: <0123456789abcdef0123456789abcdef01234567@operator.example>",
    ]
    part = MIMEBase("text", "rfc822-headers")
    part.set_payload("\n".join(lines) + "\n")
    return part


def dsn(
    return_path: str,
    *,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = f"smtp; 550 5.1.1 <{GONE}>: Recipient address rejected: User unknown",
    recipient: str = GONE,
    to: str | None = None,
) -> bytes:
    """A DSN (RFC 3464) as an MTA sends it to the envelope sender of the mail it reports on."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@mx1.relay.example (Mail Delivery System)"
    report["To"] = to or return_path
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Auto-Submitted"] = "auto-replied"
    report.attach(MIMEText(f"Your message could not be delivered to {recipient}.\n"))
    status_part = MIMEBase("message", "delivery-status")
    status_part.set_payload(
        [
            _fields(Reporting_MTA="dns; mx1.relay.example"),
            _fields(
                Final_Recipient=f"rfc822; {recipient}",
                Action=action,
                Status=status,
                Diagnostic_Code=diagnostic,
            ),
        ]
    )
    report.attach(status_part)
    report.attach(_original_headers(return_path))
    return report.as_bytes(policy=policy.SMTP)


def arf(
    to: str,
    *,
    feedback_type: str = "abuse",
    user_agent: str = "ExampleFBL/1.0",
    returned_path: str | None = None,
    original_mail_from: str | None = None,
) -> bytes:
    """A complaint report (ARF, RFC 5965) with the complained-about message's headers."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "fbl@isp.example"
    report["To"] = to
    report["Subject"] = "Abuse report"
    report.attach(MIMEText("This is an email abuse report.\n"))
    fields = {"Feedback_Type": feedback_type, "User_Agent": user_agent, "Version": "1"}
    if original_mail_from is not None:
        fields["Original_Mail_From"] = f"<{original_mail_from}>"
    feedback = MIMEBase("message", "feedback-report")
    feedback.set_payload([_fields(**fields)])
    report.attach(feedback)
    report.attach(_original_headers(returned_path))
    return report.as_bytes(policy=policy.SMTP)


def plain_mail(to: str) -> bytes:
    """An ordinary email (an out-of-office reply): not a report."""
    message = MIMEText("I am out of the office until Monday.\n")
    message["From"] = f"{GONE}"
    message["To"] = to
    message["Subject"] = "Out of office"
    return message.as_bytes(policy=policy.SMTP)
