"""Assemble a `multipart/alternative` message as bytes, directly.

Python's `EmailMessage` costs milliseconds per message (header registry, generator, pure-Python
quoted-printable) and, on Python 3.11.7, decodes encoded words in header values it is given
(CVE-2024-6923). Here headers go through the standard library's RFC 2047 machinery
(`email.header.Header`, `email.utils.formataddr`) once, bodies through the C codecs in
`binascii`, and the result is plain CRLF-terminated bytes ready for SMTP DATA.

Callers pass header text already cleaned by `renderers.headers.clean_header_text`.
"""

from __future__ import annotations

import binascii
import re
from email.header import Header
from email.utils import formataddr

MAX_HEADER_LINE = 76
MAX_LINE = 998  # RFC 5322 2.1.1: the hard limit of a header line
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Printable ASCII words separated by single spaces, with no `=?` that could read as an encoded
# word: `Header` leaves such a value as it is when it fits on the first line.
_SHORT_ASCII = re.compile(r"(?!.*=\?)[!-~]+(?: [!-~]+)*")


def encode_text_header(value: str, name: str = "Subject", max_line: int = MAX_HEADER_LINE) -> str:
    """Fold an unstructured header value; RFC 2047 encoded words when it is not ASCII.
    `name` is the header's, so that its first line counts the `Name: ` before the value.
    `max_line` up to RFC 5322's 998 keeps a long unbreakable value (a URI) on its own line."""
    if len(name) + 2 + len(value) <= max_line and _SHORT_ASCII.fullmatch(value):
        return value  # what `Header` returns for it, without its per-character work
    charset = "us-ascii" if value.isascii() else "utf-8"
    header = Header(value, charset, maxlinelen=max_line, header_name=name)
    return header.encode(linesep="\r\n")


def encode_address(display_name: str, addr_spec: str, name: str = "From") -> str:
    """`Name <addr>`, the name quoted or RFC 2047 encoded as needed, folded before the
    `<addr>` when the line would pass 78 characters.

    `addr_spec` is validated upstream (schemas, config); a control character in it would still
    split the header, so it is refused here too rather than sent."""
    if _CONTROL.search(addr_spec):
        raise ValueError("an address must not contain control characters")
    value = formataddr((display_name, addr_spec), charset="utf-8")
    if len(name) + 2 + len(value) > 78 and " <" in value:
        head, _, address = value.rpartition(" <")
        value = f"{head}\r\n <{address}"
    return value


def quoted_printable(text: str) -> bytes:
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(normalized.encode("utf-8"), quotetabs=False, istext=True)
    return encoded.replace(b"\n", b"\r\n")


def build_alternative(headers: list[tuple[str, str]], text: str, html: str, boundary: str) -> bytes:
    """The whole message: `headers` (name, already-encoded value), then text and HTML parts.

    `boundary` must not occur in either encoded body: one starting with `=_` cannot, since
    quoted-printable writes every `=` as `=3D`.
    """
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    head += (
        f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
    )
    delimiter = f"--{boundary}\r\n".encode()
    part_headers = (
        'Content-Type: text/{}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    return b"".join(
        (
            head.encode("ascii"),
            delimiter,
            part_headers.format("plain").encode(),
            quoted_printable(text),
            b"\r\n",
            delimiter,
            part_headers.format("html").encode(),
            quoted_printable(html),
            b"\r\n",
            f"--{boundary}--\r\n".encode(),
        )
    )
