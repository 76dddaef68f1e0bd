"""HTTPS fetches for SNS: the signing certificate a message names (cached per URL) and the
SubscribeURL that confirms a subscription.

Both URLs must be exactly `https://sns.<region>.amazonaws.com/...` (no user, port, other host or
plain http), so a forged message cannot make Herald fetch anything else. TLS is verified against
the system's CA bundle, or the `ca_file` of the config file (tests bring their own authority);
`resolver` lets a test point the SNS host name at a local server, so its fetches are real.
"""

from __future__ import annotations

import re
import ssl
from collections import OrderedDict
from pathlib import Path

import aiohttp
from aiohttp.abc import AbstractResolver
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from yarl import URL

from herald.clock import Clock, utc_now
from herald.feedback.verdict import ProviderUnavailable, Rejected

_SNS_HOST = r"sns\.[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}\.amazonaws\.com"
CERT_URL = re.compile(
    rf"https://{_SNS_HOST}/(?:[A-Za-z0-9_-]{{1,100}}/){{0,4}}[A-Za-z0-9_-][A-Za-z0-9_.-]{{0,200}}\.pem"
)
SUBSCRIBE_URL = re.compile(
    rf"https://{_SNS_HOST}/\?Action=ConfirmSubscription&[A-Za-z0-9_.~%:&=+-]{{1,2000}}"
)
MAX_CERTIFICATE_BYTES = 16_384  # an SNS certificate is about 2 KB
MAX_CONFIRMATION_BYTES = 16_384


class CertificateFetcher:
    """One HTTP client for the SNS host names; close it on shutdown."""

    def __init__(
        self,
        ca_file: Path | None = None,
        *,
        resolver: AbstractResolver | None = None,
        timeout_seconds: float = 10.0,
        cache_size: int = 32,
        clock: Clock = utc_now,
    ) -> None:
        # With a cafile the default context trusts that file only, not the system store.
        self._ssl = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
        self._resolver = resolver
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._cache: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def public_key(self, url: str) -> RSAPublicKey:
        """The RSA key of the currently valid certificate at `url` (a `CERT_URL`)."""
        if CERT_URL.fullmatch(url) is None:
            raise Rejected("bad_certificate_url")
        certificate = self._cache.get(url)
        if certificate is None:
            status, body = await self._get(url, MAX_CERTIFICATE_BYTES)
            if status != 200:
                raise Rejected("certificate_not_found")
            try:
                certificate = x509.load_pem_x509_certificate(body)
            except ValueError:
                raise Rejected("bad_certificate") from None
            self._cache[url] = certificate
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(url)
        now = self._clock()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Rejected("expired_certificate")
        key = certificate.public_key()
        if not isinstance(key, RSAPublicKey):
            raise Rejected("bad_certificate")
        return key

    async def confirm(self, url: str) -> None:
        """GET a SubscriptionConfirmation's SubscribeURL (a `SUBSCRIBE_URL`)."""
        if SUBSCRIBE_URL.fullmatch(url) is None:
            raise Rejected("bad_subscribe_url")
        status, _ = await self._get(url, MAX_CONFIRMATION_BYTES)
        if status != 200:
            raise Rejected("confirmation_refused", 400)

    async def _get(self, url: str, limit: int) -> tuple[int, bytes]:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl, resolver=self._resolver, limit=8)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        try:
            async with self._session.get(URL(url, encoded=True), allow_redirects=False) as response:
                if response.status >= 500:
                    raise ProviderUnavailable(f"SNS answered {response.status}")
                body = bytearray()
                async for chunk in response.content.iter_chunked(4096):
                    body += chunk
                    if len(body) > limit:
                        raise Rejected("certificate_too_large")
                return response.status, bytes(body)
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            raise ProviderUnavailable(f"SNS unreachable: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
