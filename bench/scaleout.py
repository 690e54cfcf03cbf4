"""Scale-out: one ``protect`` run fanned out over 1, 2 and 3 Prefect workers on one machine.

``python -m bench.scaleout`` starts PostgreSQL (the tests' embedded server, or the one
``MORI_TEST_DATABASE_URL`` names), ``prefect server start`` on it, ``mori-pipeline bootstrap``
and ``prefect deploy --all``. Then, for each worker count N: a fresh ledger database and a
fresh emulator process (``copy`` processing: outputs equal inputs, so the emulator's CPU stays
small), the webhook receiver, N ``prefect worker start --pool mori-pool --limit 1`` processes,
and one ``protect`` run from this process over the same manifest with ``fan_out=N``. It prints
images/s, API requests per minute and CPU milliseconds per image of the workers (their flow
runs included), the Prefect server, PostgreSQL, this process (the parent run and the
receiver) and the emulator.

``--plans 60,300,1000`` then runs ``--plan-workers`` workers at each plan R (the emulator
limited to R per minute per key, the ``mori-api`` limit at R): images per minute against the
plan's ceiling (R / 3 API calls per order × the order size), 429s, and the workers' CPU per
image, which sizes a deployment: workers' vCPUs at the ceiling = ceiling / 60 × CPU per image.

Every process here shares the same 2 vCPUs: more workers cannot go faster, so the figures show
what fanning out costs, not what it gains (which needs a CPU per worker).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench._stack import EmulatorProcess, client_env, image_manifest, prefect_home
from bench._util import CACHE, cpu_seconds, emit_json, machine, table, write_images
from deployments.stack import environment

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
API_KEY = "bench-pipeline"
API_ENDPOINTS = ("create", "with_urls", "confirm", "get", "download", "webhook_register")
#: The ``mori-api`` limit of the unlimited runs: high, but every request still takes a slot.
UNLIMITED_RPM = 60_000
CALLS_PER_ORDER = 3  # create, confirm, get-download (completion by webhook)


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process, of its live descendants and of the children they reaped."""
    total = 0.0
    for proc in [pid, *_descendants(pid)]:
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def _descendants(pid: int) -> list[int]:
    from bench._util import descendants

    return descendants(pid)


class Processes:
    """Subprocesses in sessions of their own, logging to ``folder``; stopped together."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.running[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def stop(self, name: str) -> None:
        proc = self.running.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def wait_for(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.3)


@contextlib.contextmanager
def postgres() -> Iterator[tuple[Any, int | None]]:
    """A PostgreSQL server tests may create databases on, and its postmaster's pid (if ours)."""
    from tests.support.postgres import EmbeddedPostgres, PostgresServer

    if url := os.environ.get("MORI_TEST_DATABASE_URL"):
        yield PostgresServer(url), None
        return
    embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="mori-pg-")))  # its user needs it
    try:
        embedded.start()
        pid = int((embedded.data / "postmaster.pid").read_text().split()[0])
        yield PostgresServer(embedded.url, embedded), pid
    finally:
        embedded.stop()


def prefect_server(procs: Processes, database_url: str) -> tuple[str, int]:
    """``prefect server start`` on PostgreSQL; its API URL and pid."""
    from mori.serving import free_port

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _base_env(api)
    env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url.replace(
        "postgresql://", "postgresql+asyncpg://"
    )
    env["PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED"] = "false"
    args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc = procs.start("server", args, env)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited:\n{procs.log('server')[-3000:]}")
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 180, "the Prefect server")
    return api, proc.pid


def deploy_all(api: str) -> None:
    """``mori-pipeline bootstrap`` (the pool must exist), then ``prefect deploy --all``."""
    from deployments.bootstrap import bootstrap

    bootstrap(UNLIMITED_RPM, home=ROOT)
    deploy = [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"]
    done = subprocess.run(deploy, cwd=ROOT, env=_base_env(api), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"prefect deploy failed:\n{(done.stdout + done.stderr)[-3000:]}")


def _base_env(api: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_API_URL=api,
        PREFECT_HOME=os.environ["PREFECT_HOME"],
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="5",
    )
    return env


@contextlib.contextmanager
def receiver(ledger: str) -> Iterator[None]:
    """The webhook receiver into ``ledger``, registered through the shared rate limit."""
    from deployments.receiver import Receiver
    from mori.settings import Settings
    from tasks.ratelimit import client_for

    secret: list[str] = []
    settings = Settings()
    hook = Receiver(ledger, settings, lambda: secret[0] if secret else None)
    try:
        with hook.running() as url, client_for(settings) as client:
            secret.append(client.register_webhook(url).secret)
            with environment(MORI_WEBHOOK_SECRET=secret[0]):
                yield
    finally:
        hook.close()


def one_run(
    args: argparse.Namespace,
    world: dict[str, Any],
    files: list[Path],
    workers: int,
    rpm: int | None,
) -> dict[str, Any]:
    """``protect`` over ``files`` with ``workers`` workers; its figures."""
    from deployments.bootstrap import bootstrap
    from flows.protect import protect

    bootstrap(rpm or UNLIMITED_RPM, home=ROOT)
    pg, procs = world["postgres"], world["procs"]
    name = pg.create_database()
    ledger = pg.database_url(name)
    work = Path(tempfile.mkdtemp(prefix="scaleout-", dir=CACHE))
    try:
        manifest = image_manifest(work / "manifest.csv", files)
        with (
            EmulatorProcess(rpm=rpm, mode="copy") as emu,
            environment(
                **client_env(emu, API_KEY),
                MORI_LEDGER_URL=ledger,
                MORI_GLOBAL_RATE_LIMIT="mori-api",
            ),
            receiver(ledger),
        ):
            env = _base_env(world["api"])  # its MORI_ and AWS_ variables are set by now
            names = [f"worker-{n}" for n in range(1, workers + 1)]
            pids = []
            for worker in names:
                command = [str(BIN / "prefect"), "worker", "start", "--pool", "mori-pool"]
                command += ["--type", "process", "--limit", "1", "--name", worker]
                pids.append(procs.start(worker, command, env).pid)
            for worker in names:
                wait_for(lambda w=worker: "started!" in procs.log(w), 90, worker)
            before = _cpu(world, emu, pids)
            requests0 = _api_requests(emu)
            started = time.monotonic()
            summary = protect(
                manifest=str(manifest),
                output=str(work / "output"),
                audit=str(work / "audit"),
                order_size=args.order_size,
                max_concurrent_orders=args.concurrency,
                fan_out=workers,
            )
            wall = time.monotonic() - started
            after = _cpu(world, emu, pids)
            stats = emu.stats()
            requests = _api_requests(emu) - requests0
            for worker in names:
                procs.stop(worker)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        pg.drop_database(name)
    images = summary.count("processed")
    if images != len(files) or stats["duplicate_files"]:
        raise RuntimeError(f"run incomplete: {summary.counts}, {stats['duplicate_files']} dup")
    per_image = {k: (after[k] - before[k]) / images * 1000 for k in before}
    return {
        "workers": workers,
        "rpm": rpm,
        "images": images,
        "seconds": wall,
        "images_per_second": images / wall,
        "images_per_minute": images / wall * 60,
        "requests_per_minute": requests / wall * 60,
        "rate_limited": stats["rate_limited"],
        "cpu_ms_per_image": per_image,
    }


def _cpu(world: dict[str, Any], emu: EmulatorProcess, workers: list[int]) -> dict[str, float]:
    """CPU seconds so far of each party."""
    pg = world["postgres_pid"]
    return {
        "workers": sum(tree_cpu(pid) for pid in workers),
        "Prefect server": tree_cpu(world["server_pid"]),
        "PostgreSQL": tree_cpu(pg) if pg else 0.0,
        "parent run": cpu_seconds(),
        "emulator": emu.cpu(),
    }


def _api_requests(emu: EmulatorProcess) -> int:
    requests = emu.stats()["requests"]
    return sum(requests.get(e, 0) for e in API_ENDPOINTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers", default="1,2,3", help="worker counts (default 1,2,3; '' for none)"
    )
    parser.add_argument("--images", type=int, default=1000, help="images per run")
    parser.add_argument("--order-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4, help="orders at once per worker")
    parser.add_argument("--plans", default="", help="plans R to size at, e.g. 60,300,1000")
    parser.add_argument("--plan-workers", type=int, default=2)
    parser.add_argument("--plan-images", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="300 images, 1 and 2 workers")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.images, args.workers = 300, "1,2"
    counts = [int(n) for n in args.workers.split(",") if n]
    plans = [int(r) for r in args.plans.split(",") if r]
    prefect_home()
    sizing = f", plans {plans}" if plans else ""
    print(f"scaleout: {args.images} images per run, workers {counts}{sizing}\n  {machine()}")
    count = max(args.images, args.plan_images if plans else 0)
    files = write_images(CACHE / "images-160x120", count, size=(160, 120))
    folder = Path(tempfile.mkdtemp(prefix="scaleout-", dir=CACHE))
    procs = Processes(folder)
    runs, sized = [], []
    try:
        with postgres() as (pg, pg_pid):
            server_db = pg.create_database()
            api, server_pid = prefect_server(procs, pg.database_url(server_db))
            os.environ["PREFECT_API_URL"] = api
            deploy_all(api)
            world = {"postgres": pg, "postgres_pid": pg_pid, "procs": procs, "api": api}
            world["server_pid"] = server_pid
            for n in counts:
                runs.append(one_run(args, world, files[: args.images], n, None))
                print(f"  {n} worker(s): {runs[-1]['images_per_second']:.1f} images/s")
            for rpm in plans:
                sized.append(
                    one_run(args, world, files[: args.plan_images], args.plan_workers, rpm)
                )
                print(f"  plan {rpm}/min: {sized[-1]['images_per_minute']:.0f} images/min")
            procs.stop_all()
    finally:
        procs.stop_all()
        shutil.rmtree(folder, ignore_errors=True)
    report(args, runs, sized)


def report(
    args: argparse.Namespace, runs: list[dict[str, Any]], sized: list[dict[str, Any]]
) -> None:
    """Print the tables and the reading; write the JSON."""
    parties = list(runs[0]["cpu_ms_per_image"]) if runs else []
    header = ["workers", "seconds", "images/s", "API req/min", *(f"{p} ms/img" for p in parties)]
    rows = [
        [r["workers"], r["seconds"], r["images_per_second"], r["requests_per_minute"]]
        + [r["cpu_ms_per_image"][p] for p in parties]
        for r in runs
    ]
    if runs:
        print()
        print(table(rows, header))
    if sized:
        print(f"\nat each plan, {args.plan_workers} workers, {args.plan_images} images:")
        header = ["plan req/min", "ceiling img/min", "img/min here", "API req/min", "429s"]
        header += ["worker ms/img", "worker vCPUs at ceiling"]
        rows = []
        for r in sized:
            ceiling = r["rpm"] / CALLS_PER_ORDER * args.order_size
            worker_ms = r["cpu_ms_per_image"]["workers"]
            vcpus = ceiling / 60 * worker_ms / 1000
            achieved = [r["images_per_minute"], r["requests_per_minute"], r["rate_limited"]]
            rows.append([r["rpm"], ceiling, *achieved, worker_ms, vcpus])
        print(table(rows, header))
    print(
        "\nreading: every process shares the same 2 vCPUs, so more workers cannot go faster;"
        " the figures show what fanning out costs (child runs, claims, the shared limit),"
        " not a speed-up, which needs a CPU per worker."
    )
    emit_json(args.json, {"runs": runs, "plans": sized})


if __name__ == "__main__":
    main()
