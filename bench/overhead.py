"""Overhead: what Prefect costs per order, and CPU seconds per image in the pipeline process.

``python -m bench.overhead`` runs the same batch (default 1,000 ~50 KB images = 10 orders) twice
against the emulator (no rate limit, no processing delay, emulator in a child process):

* ``protect`` flow: the pipeline as deployed (Prefect tasks, ephemeral API server, webhooks);
* plain driver: the very same ``mori.batch`` calls the flow makes -- load, plan, one
  ``OrderProcessor.process`` per order on a thread pool, audit rows and Parquet -- without
  Prefect.

It prints CPU ms per image of the pipeline process for both, the Prefect API server's CPU, the
task runs per order, the HTTP requests the process sent to the Prefect API (by route) and the
events it emitted, per order. The difference between the two runs is Prefect's cost.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._stack import EmulatorProcess, pipeline_world, prefect_home
from bench._util import (
    CACHE,
    Timer,
    children_cpu,
    emit_json,
    machine,
    median,
    table,
    write_images,
)

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class PrefectTraffic:
    """Counts this process's HTTP requests to the Prefect API and the events it emits."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.events: Counter[str] = Counter()

    def install(self) -> None:
        from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient
        from prefect.events.clients import PrefectEventsClient

        traffic = self
        sync_send, async_send = PrefectHttpxSyncClient.send, PrefectHttpxAsyncClient.send
        emit = PrefectEventsClient._emit

        def count(request: Any) -> None:
            path = _ID.sub("{id}", request.url.path.split("/api", 1)[-1])
            traffic.requests[f"{request.method} {path}"] += 1

        def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            count(request)
            return sync_send(self, request, *args, **kwargs)

        async def asend(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            count(request)
            return await async_send(self, request, *args, **kwargs)

        async def aemit(self: Any, event: Any) -> None:
            traffic.events[str(event.event).rsplit(".", 1)[0]] += 1
            await emit(self, event)

        PrefectHttpxSyncClient.send = send  # type: ignore[method-assign]
        PrefectHttpxAsyncClient.send = asend  # type: ignore[method-assign]
        PrefectEventsClient._emit = aemit  # type: ignore[method-assign]

    def reset(self) -> None:
        self.requests.clear()
        self.events.clear()


def run_flow(
    emu: EmulatorProcess, files: list[Path], concurrency: int, traffic: PrefectTraffic
) -> dict[str, Any]:
    """The ``protect`` flow; its CPU, task runs and Prefect traffic."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.protect import protect

    with pipeline_world(emu, files, "overhead-") as work:
        before = children_cpu(exclude=emu.pids())
        traffic.reset()
        with Timer() as timer:
            state = protect(
                manifest=str(work / "manifest.csv"),
                output=str(work / "output"),
                audit=str(work / "audit"),
                max_concurrent_orders=concurrency,
                return_state=True,
            )
        requests, events = Counter(traffic.requests), Counter(traffic.events)
        after = children_cpu(exclude=emu.pids())
    summary = state.result()
    if summary.count("processed") != len(files):
        raise RuntimeError(f"flow run incomplete: {summary.counts}")
    task_runs: list[Any] = []
    with get_client(sync_client=True) as client:
        only = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        while page := client.read_task_runs(flow_run_filter=only, limit=200, offset=len(task_runs)):
            task_runs += page
    return {
        "seconds": timer.wall,
        "process_cpu": timer.cpu,
        "server_cpu": sum(after.get(p, 0.0) - before.get(p, 0.0) for p in after),
        "orders": summary.orders,
        "task_runs": Counter(tr.name.rsplit("-", 1)[0] for tr in task_runs),
        "requests": requests,
        "events": events,
    }


def run_plain(emu: EmulatorProcess, files: list[Path], concurrency: int) -> dict[str, Any]:
    """The flow's ``mori.batch`` calls, in the same order, without Prefect."""
    from mori.batch.audit import write_table
    from mori.batch.ledger import now_iso
    from mori.batch.manifest import load
    from mori.batch.outcomes import manifest_rows, order_rows, run_row, summarise
    from mori.batch.parameters import ProtectParameters
    from mori.batch.plan import plan_and_record
    from mori.batch.runtime import RunConfig, Runtime
    from mori.batch.storage import Storage
    from mori.settings import Settings
    from tasks.ratelimit import client_for

    with pipeline_world(emu, files, "overhead-") as work, Timer() as timer:
        run_id, started_at = str(uuid.uuid4()), now_iso()
        params = ProtectParameters(
            manifest=str(work / "manifest.csv"),
            output=str(work / "output"),
            audit=str(work / "audit"),
            max_concurrent_orders=concurrency,
        )
        settings = Settings()
        config = RunConfig.for_protect(params, settings)
        storage = Storage()
        items = load(config.manifest_uri, storage, config.validation())
        with Runtime(config, storage, client_for(settings)) as rt:
            found, planned = plan_and_record(items, rt.ledger, config.order_size, config.output_uri)
            keys = found.resume + [o.order_key for o in planned]
            with ThreadPoolExecutor(concurrency) as pool:
                results = dict(zip(keys, pool.map(rt.processor.process, keys), strict=True))
            rows = manifest_rows(
                run_id, config.manifest_uri, items, found.known, results, {}, rt.ledger
            )
            summary = summarise(run_id, rows, len(keys))
            stats = rt.client.stats
            client_stats = {"requests": sum(stats.requests.values())}
            day = datetime.now(UTC).date()
            for table in (
                rows,
                order_rows(run_id, results, {}, rt.ledger),
                [run_row(summary, config.manifest_uri, started_at, client_stats)],
            ):
                if table:
                    write_table(storage, config.audit_uri, table, run_id, day)
    if summary.count("processed") != len(files):
        raise RuntimeError(f"plain run incomplete: {summary.counts}")
    return {"seconds": timer.wall, "process_cpu": timer.cpu, "orders": len(keys)}


def big_parameters(rows: int) -> dict[str, float]:
    """Seconds of the ``plan-orders`` task on ``rows`` URL rows: with the items list as a plain
    task parameter, wrapped in ``quote()`` (as ``protect`` calls it), and as a plain function.
    Prefect walks every plain parameter looking for futures to track, item by item."""
    from prefect import flow
    from prefect.utilities.annotations import quote

    from bench.manifest import url_manifest
    from mori.batch.ledger import Ledger
    from mori.batch.manifest import load
    from mori.batch.storage import Storage
    from tasks.planning import plan_run

    items = load(str(url_manifest(rows)), Storage())
    seconds: dict[str, float] = {}

    @flow(name="big-parameters")
    def probe() -> None:
        arguments: list[tuple[str, Any]] = [
            ("plain parameter (walked)", items),
            ("quote(items), as protect", quote(items)),
        ]
        for name, arg in arguments:
            with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
                ledger = Ledger(Path(scratch) / "ledger.sqlite")
                with Timer() as timer:
                    plan_run(arg, ledger, 100)
                ledger.close()
            seconds[name] = timer.wall

    probe()
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        ledger = Ledger(Path(scratch) / "ledger.sqlite")
        with Timer() as timer:
            plan_run.fn(items, ledger, 100)
        ledger.close()
    seconds["plain function"] = timer.wall
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="images per run (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating pairs (default 3)")
    parser.add_argument("--concurrency", type=int, default=4, help="orders at once (default 4)")
    parser.add_argument("--quick", action="store_true", help="500 images, one pair")
    parser.add_argument(
        "--rows", type=int, default=100_000, help="URL rows of the big-parameter probe (0: skip)"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats, args.rows = 500, 1, min(args.rows, 20_000)
    prefect_home()
    traffic = PrefectTraffic()
    traffic.install()
    print(f"overhead: {args.images} images per run, {args.repeats} pair(s); {machine()}")
    # Every run gets images of its own (the same ones again would be replayed orders).
    pool = write_images(CACHE / "images-640x480", args.images * 2 * args.repeats)
    pairs = []
    with EmulatorProcess() as emu:
        warm = write_images(CACHE / "images-warmup", 100)
        run_flow(emu, warm, args.concurrency, traffic)  # Prefect's API server starts
        run_plain(emu, warm, args.concurrency)
        for n in range(args.repeats):
            first, second = (pool[(2 * n + k) * args.images :][: args.images] for k in (0, 1))
            flow = run_flow(emu, first, args.concurrency, traffic)
            plain = run_plain(emu, second, args.concurrency)
            pairs.append((flow, plain))
            print(f"  pair {n + 1}: flow {flow['seconds']:.1f} s, plain {plain['seconds']:.1f} s")
    probe = big_parameters(args.rows) if args.rows else {}
    report(args, pairs, probe)


def report(
    args: argparse.Namespace,
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    probe: dict[str, float],
) -> None:
    n, orders = args.images, pairs[0][0]["orders"]
    flow_cpu = median([f["process_cpu"] for f, _ in pairs])
    server_cpu = median([f["server_cpu"] for f, _ in pairs])
    plain_cpu = median([p["process_cpu"] for _, p in pairs])
    rows = [
        ["protect flow (Prefect)", median([f["seconds"] for f, _ in pairs]), flow_cpu / n * 1000,
         server_cpu / n * 1000, (flow_cpu + server_cpu) / n * 1000],
        ["plain driver (no Prefect)", median([p["seconds"] for _, p in pairs]),
         plain_cpu / n * 1000, 0.0, plain_cpu / n * 1000],
    ]  # fmt: skip
    print()
    print(table(rows, ["run", "seconds", "process ms/img", "Prefect API ms/img", "total ms/img"]))
    added = (flow_cpu + server_cpu - plain_cpu) / orders
    print(f"\nPrefect's cost per order (of {n // orders} images): {added * 1000:.0f} ms CPU "
          f"({added / (n // orders) * 1000:.2f} ms per image)")  # fmt: skip
    last = pairs[-1][0]
    runs = sum(last["task_runs"].values())
    print(f"task runs: {runs} for {orders} orders ({runs / orders:.2f} per order): "
          + ", ".join(f"{k} {v}" for k, v in sorted(last["task_runs"].items())))  # fmt: skip
    reqs = sum(last["requests"].values())
    print(f"HTTP requests to the Prefect API: {reqs} ({reqs / orders:.1f} per order)")
    for route, count in last["requests"].most_common(12):
        print(f"  {count:6d}  {route}")
    events = sum(last["events"].values())
    print(f"events emitted: {events} ({events / orders:.1f} per order): "
          + ", ".join(f"{k} {v}" for k, v in last["events"].most_common(6)))  # fmt: skip
    if probe:
        print(f"\nplan-orders task on {args.rows:,} URL rows (the items list is a task parameter):")
        for name, seconds in probe.items():
            print(f"  {seconds:7.2f} s  {name}")
    emit_json(args.json, {"images": n, "pairs": pairs, "probe": probe, "machine": machine()})


if __name__ == "__main__":
    main()
