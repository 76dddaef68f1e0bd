"""A spam filter's view of every email (issue 20): SpamAssassin (Debian's package, its default
rules, network tests off) scores every notification type in every shipped locale, unbranded and
branded with a partner's colour, and each must stay under 0.5 of its 5.0 threshold. A failure
names the rules that fired. One `spamassassin --mbox` run scores them all (about 1 s per
process start, so not one process per email)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from email import message_from_string, policy
from email.generator import BytesGenerator
from pathlib import Path

import pytest

from herald.errors import ConfigurationError
from tests import support
from tests.unit.test_locales_and_branding import BRANDED, rendered

MAX_SCORE = 0.5
STATUS = re.compile(r"score=(?P<score>-?[\d.]+) required=[\d.]+ tests=(?P<tests>[\w,]*)")
CASES = [
    (spec.id, locale, branded)
    for spec in support.catalog()
    for locale in support.templates().locales(spec.id)
    for branded in (False, True)
]


def _scores(tmp_path: Path) -> dict[str, tuple[float, list[str]]]:
    spamassassin = shutil.which("spamassassin")
    assert spamassassin, (
        "spamassassin is missing: `make test` installs it (scripts/ensure-services.sh)"
    )
    cases: list[str] = []
    with open(tmp_path / "every-email.mbox", "wb") as box:
        for notification, locale, branded in CASES:
            try:
                email = rendered(notification, locale, BRANDED if branded else None)
            except ConfigurationError:
                assert branded  # an event without a partner has no partner brand
                continue
            cases.append(f"{notification} {locale} {'branded' if branded else 'plain'}")
            message = support.parse(email)
            message["X-Lint-Case"] = cases[-1]
            message.set_unixfrom("From herald@localhost Mon Dec  7 00:00:00 2026")
            BytesGenerator(box, mangle_from_=True, policy=policy.SMTP.clone(linesep="\n")).flatten(
                message, unixfrom=True
            )
            box.write(b"\n")
    with open(tmp_path / "every-email.mbox", "rb") as source:
        scored = subprocess.run(
            [spamassassin, "-L", "--mbox"],
            env={**os.environ, "HOME": str(tmp_path)},  # its user state, not the real home's
            stdin=source,
            capture_output=True,
            check=True,
            timeout=600,
        ).stdout.decode("utf-8", "replace")
    results: dict[str, tuple[float, list[str]]] = {}
    for chunk in re.split(r"^From .*$", scored, flags=re.M):
        if not chunk.strip():
            continue
        message = message_from_string(chunk.lstrip("\n"), policy=policy.default)
        case, status = message["X-Lint-Case"], message["X-Spam-Status"]
        assert case and status, chunk[:500]
        found = STATUS.search(re.sub(r",\s+", ",", str(status)))  # unfolded
        assert found, status
        tests = [name for name in found["tests"].split(",") if name]
        results[str(case)] = (float(found["score"]), tests)
    assert sorted(results) == sorted(cases), "spamassassin did not score every email"
    return results


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[float, list[str]]]:
    return _scores(tmp_path_factory.mktemp("spamassassin"))


def test_spamassassin_scores_every_type_and_locale_under_half_a_point(
    scores: dict[str, tuple[float, list[str]]],
) -> None:
    assert len(scores) >= len(CASES) // 2
    over = {case: result for case, result in scores.items() if result[0] >= MAX_SCORE}
    assert not over, "\n".join(
        f"{case}: {score} points, rules {', '.join(tests)}" for case, (score, tests) in over.items()
    )
