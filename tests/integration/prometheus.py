"""A real Prometheus server (Debian's `prometheus` package) scraping a test's Herald, so the
dashboard's and the alert rules' expressions are evaluated against what Herald really exports."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


@dataclass
class Prometheus:
    client: httpx.AsyncClient

    async def query(self, expression: str) -> list[dict[str, Any]]:
        """Evaluate an instant query; fails the test on a PromQL or evaluation error."""
        response = await self.client.get("/api/v1/query", params={"query": expression})
        body = response.json()
        assert body["status"] == "success", (expression, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def wait_for(self, expression: str, timeout: float = 30) -> None:
        """Wait until `expression` returns a result (e.g. `up == 1` or a threshold)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self.query(expression):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"Prometheus never returned a result for {expression}")
            await asyncio.sleep(0.25)


def _write_config(workdir: Path, target: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: herald\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    return config


@asynccontextmanager
async def prometheus_scraping(target: str, workdir: Path, port: int) -> AsyncIterator[Prometheus]:
    """Run Prometheus with one job, `herald`, scraping `target` (host:port) every second."""
    executable = shutil.which("prometheus")
    if executable is None:
        pytest.fail("prometheus is not installed (Debian package prometheus; CI installs it)")
    config = _write_config(workdir, target)
    process = await asyncio.create_subprocess_exec(
        executable,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(200):
                try:
                    if (await client.get("/-/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("Prometheus did not become ready")
            yield Prometheus(client)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=20)
