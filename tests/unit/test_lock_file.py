"""requirements.lock (issue 22): the exact versions and file hashes the image installs
(`pip install --require-hashes`, Dockerfile) and `make test` takes as constraints
(scripts/bootstrap.sh). It must stay in step with pyproject.toml: every runtime dependency and
the build backend pinned at a version their specifiers allow, every dependency of what it pins
pinned too, nothing else, and nothing that names this machine. scripts/lock.sh regenerates it.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")
RELOCK = "run scripts/lock.sh and commit requirements.lock"


def lock_entries() -> dict[str, tuple[Version, list[str]]]:
    """Each pinned distribution (canonical name) with its version and hash options."""
    logical: list[str] = []
    continued = False
    for line in LOCK.read_text("utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if continued:
            logical[-1] += " " + text
        elif text:
            logical.append(text)
        continued = line.rstrip().endswith("\\")
    entries: dict[str, tuple[Version, list[str]]] = {}
    for entry in logical:
        pin, *options = entry.replace("\\", " ").split()
        match = PIN.match(pin)
        assert match, f"requirements.lock: not an exact pin: {entry[:80]}"
        name = canonicalize_name(match["name"])
        assert name not in entries, f"requirements.lock pins {name} twice"
        entries[name] = (Version(match["version"]), options)
    return entries


def project() -> dict[str, list[str]]:
    document = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return {
        "runtime": document["project"]["dependencies"],
        "build": document["build-system"]["requires"],
    }


def test_every_runtime_dependency_and_the_build_backend_is_pinned_at_an_allowed_version() -> None:
    entries = lock_entries()
    wanted = [Requirement(text) for texts in project().values() for text in texts]
    assert len(wanted) >= 20
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{requirement} is not in requirements.lock: {RELOCK}"
        version = entries[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside {requirement}: {RELOCK}"
        )


def test_every_pin_carries_sha256_hashes_and_nothing_names_this_machine() -> None:
    """pip's hash-checking mode needs a hash for every file it may install, and a lock
    compiled with this machine's pip configuration would name its local indexes."""
    lines = [line.split("#", 1)[0] for line in LOCK.read_text("utf-8").splitlines()]
    for line in lines:
        assert not line.startswith("-"), f"an option line in requirements.lock: {line}"
    text = "\n".join(lines)
    assert "file:" not in text and "/opt/" not in text
    assert "://" not in text  # no index, find-links or direct URL
    for name, (_, options) in lock_entries().items():
        assert options, f"{name} has no hash"
        for option in options:
            assert HASH.match(option), f"{name}: {option}"


def test_the_lock_is_exactly_the_closure_of_what_pyproject_toml_asks_for() -> None:
    """Walk the dependency metadata from pyproject.toml's requirements (extras and markers
    included, for this Python on Linux as in the image): every distribution reached is pinned,
    and every pin is reached. The metadata is that of the installed distributions, which
    scripts/bootstrap.sh installs at the locked versions."""
    entries = lock_entries()
    reached: set[str] = set()
    pending = [Requirement(text) for texts in project().values() for text in texts]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        reached.add(name)
        assert name in entries, f"{name} (needed through {requirement}) is not locked: {RELOCK}"
        installed = Version(importlib.metadata.version(name))
        assert installed == entries[name][0], (
            f"{name} {installed} is installed but {entries[name][0]} is locked: run make setup"
        )
        for text in importlib.metadata.requires(name) or []:
            dependency = Requirement(text)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in extras
            ):
                pending.append(dependency)
    assert reached == set(entries), f"pinned but not needed: {set(entries) - reached}: {RELOCK}"
