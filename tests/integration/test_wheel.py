"""The wheel is the product (issue 17): built from the checkout, installed (not editable) into a
fresh virtualenv, and run from an empty folder outside the checkout, it renders every
notification type, previews, builds the gallery, exports the schemas, lists the catalog and runs
the service against the real broker with the development SMTP sink.

The scratch virtualenv gets the dependencies from the development one through a `.pth` line
(a plain path: the development venv's editable install of Herald is not activated), so the test
needs no network; Herald itself comes only from the wheel, which the test checks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support import build_wheel

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scratch virtualenv's bin/ folder, with Herald installed from a freshly built wheel."""
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(ROOT, work / "dist")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(
        subprocess.run(
            [
                str(venv / "bin/python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin/python"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        cwd=work,
        timeout=120,
        # A PYTHONPATH naming the checkout would make pip think Herald is installed already
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    )
    return venv / "bin"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    assert not folder.is_relative_to(ROOT)
    return folder


def run(installed: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": f"{installed}:/usr/bin:/bin", "HOME": str(cwd), **env}
    return subprocess.run(
        [str(installed / "herald"), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_wheel_holds_one_import_name_and_its_data(installed: Path, outside: Path) -> None:
    probe = (
        "import herald, herald.renderers.environment as e, herald.tools.gallery as g, json\n"
        "from herald.schemas.examples import EXAMPLES_DIR\n"
        "print(json.dumps([herald.__file__, str(e.DEFAULT_TEMPLATES_DIR), str(g.SITE_DIR), "
        "str(EXAMPLES_DIR)]))"
    )
    done = subprocess.run(
        [str(installed / "python"), "-c", probe],
        cwd=outside,
        env={"PATH": f"{installed}:/usr/bin:/bin", "HOME": str(outside)},  # no PYTHONPATH
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    venv = installed.parent
    for path in json.loads(done.stdout):
        assert Path(path).is_relative_to(venv), path  # the wheel's copy, not the checkout
        assert Path(path).exists(), path
    top_level = {
        path.name
        for path in Path(json.loads(done.stdout)[0]).parents[1].iterdir()
        if path.is_dir() and not path.name.endswith((".dist-info", "__pycache__"))
    }
    for generic in ("consumers", "schemas", "catalog", "ledger", "renderers", "senders"):
        assert generic not in top_level, f"{generic} installed as a top-level name"


def test_every_notification_type_renders_from_the_wheel(installed: Path, outside: Path) -> None:
    catalog = run(installed, outside, "catalog", "--format", "json")
    assert catalog.returncode == 0, catalog.stderr
    notifications = {entry["id"] for entry in json.loads(catalog.stdout)}
    assert len(notifications) == 77
    gallery = run(installed, outside, "gallery", "site")
    assert gallery.returncode == 0, gallery.stderr
    pages = {page.name.split(".")[0] for page in (outside / "site" / "n").glob("*.html")}
    assert pages == notifications  # every type rendered, in at least one locale
    assert (outside / "site" / "index.html").is_file()
    assert (outside / "site" / "gallery.css").is_file()


def test_preview_and_schema_export_from_the_wheel(installed: Path, outside: Path) -> None:
    preview = run(installed, outside, "preview", "order_placed", "--out", "preview")
    assert preview.returncode == 0, preview.stderr
    assert "Subject:" in preview.stdout
    assert (outside / "preview" / "message.eml").stat().st_size > 1000
    export = run(installed, outside, "schemas", "export", "schemas")
    assert export.returncode == 0, export.stderr
    assert len(list((outside / "schemas").glob("*.json"))) == 66
    assert (outside / "schemas" / "asyncapi.yaml").is_file()


def test_herald_run_from_the_wheel_sends_an_example(
    installed: Path,
    outside: Path,
    scratch_vhosts: Callable[[str], str],
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{scratch_vhosts('herald-wheel')}"
    http_port, smtp_port = unused_tcp_port_factory(), unused_tcp_port_factory()
    env = {
        "PATH": f"{installed}:/usr/bin:/bin",
        "HOME": str(outside),
        "HERALD_AMQP_URL": amqp_url,
        "HERALD_HTTP_HOST": "127.0.0.1",
        "HERALD_HTTP_PORT": str(http_port),
        "HERALD_SMTP_PORT": str(smtp_port),
    }
    service = subprocess.Popen(
        [str(installed / "herald"), "run", "--dev-smtp"],
        cwd=outside,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert service.poll() is None, "herald run exited"
            assert time.monotonic() < deadline, "herald run did not become ready"
            time.sleep(0.2)
        published = run(installed, outside, "publish-example", "orders.quote.created", **env)
        assert published.returncode == 0, published.stderr
        outbox = outside / "outbox"
        deadline = time.monotonic() + 30
        while not list(outbox.glob("*.eml")):
            assert time.monotonic() < deadline, "no email in the outbox"
            time.sleep(0.2)
    finally:
        service.send_signal(signal.SIGTERM)
        _, stderr = service.communicate(timeout=60)
    assert service.returncode == 0, stderr[-2000:]
    assert os.path.exists(outside / "herald.db")
