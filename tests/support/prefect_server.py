"""A real ``prefect server start`` for the session (temp PREFECT_HOME, SQLite), and helpers to
run subprocesses (serve, worker, deploy) that are always killed at teardown. A pytest plugin
(see tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from mori.serving import free_port
from tests.support.images import make_manifest
from tests.support.paths import REPO

BIN = Path(sys.executable).parent
SERVER_START_TIMEOUT = 120.0


@dataclass
class PrefectServer:
    """A running ``prefect server start``."""

    url: str
    home: Path
    log: Path

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a subprocess talking to this server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(self.home / "client"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_RUNNER_POLL_FREQUENCY="1",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="5",
            PREFECT_LOGGING_LEVEL="INFO",
        )
        env.update(extra)
        return env


class Processes:
    """Subprocesses in their own process groups; :meth:`stop_all` kills every one of them."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._running: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(
        self, name: str, args: list[str], env: Mapping[str, str], cwd: Path = REPO
    ) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._running.append((proc, log))
        return proc

    def log_text(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for proc, log in reversed(self._running):
            stop_group(proc)
            log.close()
        self._running.clear()


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process's group, then SIGKILL what is left."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):  # flow-run subprocesses may outlive it
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout=5)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        children = [p for p, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found


def kill_tree(proc: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL a process, everything below it and their process groups at once, as the death
    of its host would (Prefect starts each flow run in a session of its own, so killing the
    worker's group alone leaves its flow runs alive). The pids killed."""
    pids = [proc.pid, *descendants(proc.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return pids


def wait_for(
    check: Callable[[], Any], timeout: float, interval: float = 0.5, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def start_server(home: Path, procs: Processes, **env: str) -> PrefectServer:
    """``prefect server start`` on a free port with its own PREFECT_HOME (and ``env``: e.g.
    ``PREFECT_SERVER_DATABASE_CONNECTION_URL``), once it answers ``/api/health``."""
    port = free_port()
    server = PrefectServer(f"http://127.0.0.1:{port}", home, home / "server.log")
    environment = server.env(
        PREFECT_HOME=str(home),
        # the UI reads the API address from the server's settings
        PREFECT_SERVER_UI_API_URL=server.api_url,
        # no scheduler: deployed schedules must not start runs during the tests
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        # a 503 ("retry later") leaves its cause in the server's log
        PREFECT_API_LOG_RETRYABLE_ERRORS="true",
        **env,
    )
    proc = procs.start(
        "server",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        environment,
    )

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"prefect server exited:\n{procs.log_text('server')[-3000:]}")
        try:
            return httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, SERVER_START_TIMEOUT, what="prefect server health")
    return server


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free port with its own PREFECT_HOME (SQLite)."""
    home = tmp_path_factory.mktemp("prefect-home")
    procs = Processes(home)
    try:
        yield start_server(home, procs)
    finally:
        procs.stop_all()


@pytest.fixture
def prefect_api(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    """Point this process's Prefect client at the session server (no ~1 s heartbeat floor).

    Prefect keeps one events and one logs worker per process, whatever API they were made for:
    the ones an earlier test made for the test harness's server are drained first, so this
    test's events and logs reach the session server."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )

    _drain_prefect_workers()
    with temporary_settings(
        updates={
            PREFECT_API_URL: prefect_server.api_url,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
            PREFECT_SERVER_ANALYTICS_ENABLED: False,
        }
    ):
        try:
            yield prefect_server
        finally:
            _drain_prefect_workers()


def _drain_prefect_workers() -> None:
    """Send this process's queued logs and events now, while the server is up (as Prefect's
    own test harness does); otherwise they retry against a stopped server at exit."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        try:
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        except RuntimeError:
            pass  # never started
        drained: Any = EventsWorker.drain_all()
        if inspect.isawaitable(drained):
            await drained

    run_coro_as_sync(drain())


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Start subprocesses; every one is killed at teardown, even when the test failed."""
    procs = Processes(tmp_path / "logs")
    try:
        yield procs
    finally:
        procs.stop_all()


def stack_env(server: PrefectServer, **extra: str) -> dict[str, str]:
    """Environment for a subprocess: the server's, plus this process's MORI/AWS variables."""
    keep = ("MORI_", "AWS_")
    env = server.env(**extra)
    env.update({k: v for k, v in os.environ.items() if k.startswith(keep)})
    env.update(extra)
    return env


def run_cli(args: list[str], env: Mapping[str, str], timeout: float = 120) -> str:
    """Run a command to completion in the repo; its output, or a failure with the output."""
    done = subprocess.run(
        args,
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{out[-4000:]}"
    return out


def set_child_lease(seconds: float) -> None:
    """The ``protect-orders`` deployment's default lease (parents never pass one)."""
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("protect-orders/protect-orders")
        parameters = {**deployment.parameters, "lease_seconds": seconds}
        client.update_deployment(deployment.id, DeploymentUpdate(parameters=parameters))


def child_runs(parent_id: str) -> list[Any]:
    """The ``protect-orders`` runs a ``protect`` run started (their tickets name it)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["protect-orders"])), limit=200
        )
    return [r for r in runs if str(r.parameters.get("ticket", "")).startswith(f"{parent_id}/")]


class Support:
    """The helpers above, for tests (this folder is not a package, so they come as a fixture)."""

    REPO = REPO
    BIN = BIN
    wait_for = staticmethod(wait_for)
    make_manifest = staticmethod(make_manifest)
    stack_env = staticmethod(stack_env)
    run_cli = staticmethod(run_cli)
    stop_group = staticmethod(stop_group)
    descendants = staticmethod(descendants)
    kill_tree = staticmethod(kill_tree)
    Processes = Processes
    start_server = staticmethod(start_server)
    drain = staticmethod(_drain_prefect_workers)
    set_child_lease = staticmethod(set_child_lease)
    child_runs = staticmethod(child_runs)


@pytest.fixture(scope="session")
def support() -> type[Support]:
    return Support
