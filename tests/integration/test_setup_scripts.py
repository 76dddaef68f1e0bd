"""The set-up behind `make run` and `make test` (issue 22): running needs Herald's runtime
dependencies and RabbitMQ; the test tools, browsers and validators belong to `make test`.

`scripts/bootstrap.sh` runs for real (a real venv, real pip) on a stand-in project whose
packages come from local wheels, offline: `runtime` installs no dev extra, `dev` adds it to the
same venv, and a current install is not repeated. `scripts/ensure-services.sh` runs against this
machine's RabbitMQ and PostgreSQL (already running: it starts nothing) with the test tools hidden
from its PATH and a recording `apt-get`: `--for run` asks for nothing, `--for test` for them."""

from __future__ import annotations

import base64
import ensurepip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TEST_TOOLS = ("promtool", "docker-compose", "chromium", "chromedriver", "spamassassin")

# A PEP 517 backend in the stand-in project itself, so that pip builds it without fetching
# anything: the wheel names one runtime dependency and one `dev` extra.
BACKEND = """
import base64, hashlib, os, zipfile

NAME, VERSION = "stand_in", "0"
METADATA = (
    "Metadata-Version: 2.1\\nName: stand-in\\nVersion: 0\\n"
    "Requires-Dist: stand-in-runtime-dep\\n"
    "Provides-Extra: dev\\nRequires-Dist: stand-in-dev-tool ; extra == \\"dev\\"\\n"
)


def get_requires_for_build_wheel(config_settings=None):
    return []


get_requires_for_build_editable = get_requires_for_build_wheel


def _wheel(directory, files):
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    info = f"{NAME}-{VERSION}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": METADATA,
        f"{info}/WHEEL": "Wheel-Version: 1.0\\nGenerator: stand-in\\nRoot-Is-Purelib: true\\n"
        "Tag: py3-none-any\\n",
    }
    record = []
    with zipfile.ZipFile(os.path.join(directory, name), "w") as archive:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
            archive.writestr(path, data)
        archive.writestr(f"{info}/RECORD", "\\n".join([*record, f"{info}/RECORD,,"]) + "\\n")
    return name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"stand_in/__init__.py": ""})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"stand_in.pth": os.path.abspath("src") + "\\n"})
"""
PYPROJECT = """[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
"""


def _dependency_wheel(folder: Path, module: str) -> None:
    """A wheel of an empty module named `module` (project `module` with `-` for `_`)."""
    info = f"{module}-1.0.dist-info"
    files = {
        f"{module}/__init__.py": "",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\n"
        "Version: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(folder / f"{module}-1.0-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
            archive.writestr(path, data)
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")


@pytest.fixture
def stand_in(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A project with Herald's set-up script, and an environment where pip finds only local
    wheels (the two dependencies, and the pip ensurepip bundles)."""
    project, wheels = tmp_path / "project", tmp_path / "wheels"
    (project / "scripts").mkdir(parents=True)
    (project / "src" / "stand_in").mkdir(parents=True)
    (project / "src" / "stand_in" / "__init__.py").write_text("")
    shutil.copy2(ROOT / "scripts" / "bootstrap.sh", project / "scripts" / "bootstrap.sh")
    (project / "backend.py").write_text(BACKEND)
    (project / "pyproject.toml").write_text(PYPROJECT)
    # the lock pins the runtime dependency (used as constraints, hashes stripped)
    (project / "requirements.lock").write_text(
        "stand-in-runtime-dep==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    )
    wheels.mkdir()
    _dependency_wheel(wheels, "stand_in_runtime_dep")
    _dependency_wheel(wheels, "stand_in_dev_tool")
    for bundled in (Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"):
        shutil.copy2(bundled, wheels)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))
    }
    environment.update(
        PYTHON=sys.executable,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        PIP_CONFIG_FILE=os.devnull,  # no index, constraints or find-links of this machine
    )
    return project, environment


def _bootstrap(project: Path, environment: dict[str, str], *mode: str) -> str:
    """Run the script; what it says on stderr (it says "installing" only when it installs)."""
    done = subprocess.run(
        [str(project / "scripts" / "bootstrap.sh"), *mode],
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def _importable(project: Path, module: str) -> bool:
    venv_python = project / ".venv" / "bin" / "python"
    return (
        subprocess.run([venv_python, "-c", f"import {module}"], capture_output=True).returncode == 0
    )


@pytest.mark.timeout(600)
def test_runtime_setup_installs_no_dev_extra_and_dev_setup_upgrades_it(
    stand_in: tuple[Path, dict[str, str]],
) -> None:
    project, environment = stand_in
    # When the set-up of `make run` runs on a fresh checkout
    said = _bootstrap(project, environment, "runtime")
    # Then the project and its runtime dependency are installed, its dev extra is not
    assert "installing Herald (runtime)" in said
    assert _importable(project, "stand_in") and _importable(project, "stand_in_runtime_dep")
    assert not _importable(project, "stand_in_dev_tool")
    # and running it again installs nothing
    assert _bootstrap(project, environment, "runtime") == ""

    # When the set-up of `make test` follows, it upgrades the same venv to the dev extra
    assert "installing Herald (dev)" in _bootstrap(project, environment)
    assert _importable(project, "stand_in_dev_tool")
    # and neither set-up repeats it while pyproject.toml is unchanged
    assert _bootstrap(project, environment, "dev") == ""
    assert _bootstrap(project, environment, "runtime") == ""

    # When pyproject.toml changes, each set-up installs again
    with (project / "pyproject.toml").open("a") as file:
        file.write("# changed\n")
    assert "installing Herald (runtime)" in _bootstrap(project, environment, "runtime")
    assert "installing Herald (dev)" in _bootstrap(project, environment, "dev")


# Stand-ins on the scripts' PATH: apt-get records and installs nothing; the service starters
# record and refuse, so that a test can never start (or restart) this machine's services.
RECORDER = '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'
STAND_INS = {
    "apt-get": RECORDER + '[ "$1" = update ]\n',
    "rabbitmq-server": RECORDER + "exit 1\n",
    "pg_ctlcluster": RECORDER + "exit 1\n",
}


@pytest.fixture
def path_without_test_tools() -> Iterator[str]:
    """A PATH holding every command of this one but the test tools, with the stand-ins. In a
    folder every user may read: the RabbitMQ tools run some of it as the rabbitmq user."""
    folder = Path(tempfile.mkdtemp(prefix="herald-path-"))
    folder.chmod(0o755)
    for name, script in STAND_INS.items():
        (folder / name).write_text(script)
        (folder / name).chmod(0o755)
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = folder / entry.name
            if entry.name in TEST_TOOLS or target.exists() or not entry.is_file():
                continue
            if os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    yield str(folder)
    shutil.rmtree(folder)


def _ensure_services(
    path: str, calls: Path, purpose: str, database_url: str | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script `--for purpose` without the test tools; its result and the stand-ins'
    calls."""
    calls.unlink(missing_ok=True)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
        "PATH": path,
        "CALLS": str(calls),
    }
    if database_url is not None:
        environment["HERALD_DATABASE_URL"] = database_url
    done = subprocess.run(
        [str(ROOT / "scripts" / "ensure-services.sh"), "--for", purpose],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.timeout(600)
def test_services_for_run_install_no_test_tools_and_leave_postgresql_to_a_postgresql_ledger(
    tmp_path: Path, path_without_test_tools: str
) -> None:
    for tool in TEST_TOOLS:  # what the run set-up must not ask for is really on this machine
        assert shutil.which(tool), f"{tool} is not installed here"
    calls = tmp_path / "calls.log"
    # When `make run`'s services are ensured with the test tools missing
    run, called = _ensure_services(path_without_test_tools, calls, "run")
    # Then nothing is installed, RabbitMQ is waited for and PostgreSQL (SQLite ledger) is not
    assert run.returncode == 0, run.stderr
    assert called == []
    assert "RabbitMQ is ready" in run.stdout
    assert "PostgreSQL" not in run.stdout + run.stderr

    # When the ledger is a PostgreSQL on this machine, it is waited for too
    local = "postgresql://postgres@127.0.0.1:5432/herald"
    run, called = _ensure_services(path_without_test_tools, calls, "run", local)
    assert run.returncode == 0, run.stderr
    assert called == []
    assert "PostgreSQL is ready" in run.stdout

    # When the tests' services are ensured instead, the missing test tools are asked for
    test, called = _ensure_services(path_without_test_tools, calls, "test")
    assert test.returncode != 0  # the stand-in apt-get installs nothing
    assert called[0] == "apt-get update -q"
    assert called[1].split()[-4:] == [  # Compose v2 comes from scripts/install-compose-v2.sh
        "prometheus",
        "chromium",
        "chromium-driver",
        "spamassassin",
    ]
    assert len(called) == 2  # and nothing was started
