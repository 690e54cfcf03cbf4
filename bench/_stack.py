"""The benchmarks' local world: the emulator process, the webhook receiver, the environment."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench._util import CACHE, cpu_seconds, descendants, write_csv
from deployments.stack import environment

ROOT = Path(__file__).resolve().parent.parent


def prefect_home() -> None:
    """A private, throw-away Prefect home (ephemeral server, SQLite) for this benchmark run.

    Call before anything imports ``prefect``.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    if "PREFECT_HOME" not in os.environ:
        home = tempfile.mkdtemp(prefix="prefect-home-", dir=CACHE)
        atexit.register(shutil.rmtree, home, ignore_errors=True)  # after Prefect's own cleanup
        os.environ["PREFECT_HOME"] = home
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


class EmulatorProcess:
    """``with EmulatorProcess(rpm=300) as emu:`` — the emulator and S3 in a child process."""

    def __init__(
        self,
        *,
        rpm: int | None = None,
        processing_seconds: float = 0.0,
        workers: int = 4,
        mode: str = "filter",
    ) -> None:
        self.args = ["--processing-seconds", str(processing_seconds)]
        self.args += ["--processing-workers", str(workers), "--processing-mode", mode]
        if rpm:
            self.args += ["--rpm", str(rpm)]
        self.api = self.s3 = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> EmulatorProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench._server", *self.args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process did not start")
        urls = json.loads(line)
        self.api, self.s3 = urls["api"], urls["s3"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def pids(self) -> list[int]:
        """The emulator's process and its children (S3)."""
        return [self.pid, *descendants(self.pid)]

    def cpu(self) -> float:
        """CPU seconds the emulator and its S3 process used so far."""
        return cpu_seconds(self.pid) + sum(cpu_seconds(p) for p in descendants(self.pid))

    def stats(self) -> dict[str, Any]:
        """``GET /_emulator/stats``."""
        data: dict[str, Any] = httpx.get(f"{self.api}/_emulator/stats", timeout=30).json()
        return data


def client_env(emu: EmulatorProcess, api_key: str, rpm: int | None = None) -> dict[str, str | None]:
    """The variables a pipeline run reads: MORI's URL and key, S3, the client-side limit."""
    return {
        "MORI_API_URL": emu.api,
        "MORI_API_KEY": api_key,
        "MORI_RATE_LIMIT_RPM": str(rpm) if rpm else None,
        "MORI_WEBHOOK_SECRET": None,
        "MORI_LEDGER_PATH": None,
        "AWS_ENDPOINT_URL": emu.s3,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@contextmanager
def receiver(emu: EmulatorProcess, api_key: str, ledger_path: Path) -> Iterator[str]:
    """The webhook receiver for one run's ledger, registered with the emulator for ``api_key``.

    Sets ``MORI_WEBHOOK_SECRET`` (so runs wait for webhooks first) for the block; yields its URL.
    """
    from deployments.receiver import Receiver
    from mori.settings import Settings

    secret: list[str] = []
    receiver = Receiver(str(ledger_path), Settings(), lambda: secret[0] if secret else None)
    try:
        with receiver.running() as url:
            answer = httpx.post(
                f"{emu.api}/api/v2/webhook",
                json={"url": url},
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=30,
            )
            answer.raise_for_status()
            secret.append(answer.json()["data"]["secret"])
            with environment(MORI_WEBHOOK_SECRET=secret[0]):
                yield url
    finally:
        receiver.close()


def image_manifest(path: Path, files: list[Path]) -> Path:
    """A ``source,id`` CSV manifest of ``files`` at ``path``."""
    return write_csv(path, ["source", "id"], ((str(p), p.stem) for p in files))


@contextmanager
def pipeline_world(emu: EmulatorProcess, files: list[Path], prefix: str) -> Iterator[Path]:
    """One pipeline run's world: a throw-away work folder (under ``bench/.cache``) holding
    ``manifest.csv`` of ``files`` (and later ``output/``, ``audit/``), the run's environment
    and a webhook receiver for its ledger. Yields the work folder."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=CACHE))
    try:
        image_manifest(work / "manifest.csv", files)
        with (
            environment(**client_env(emu, "bench-pipeline")),
            receiver(emu, "bench-pipeline", work / "audit" / "ledger.sqlite"),
        ):
            yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
