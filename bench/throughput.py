"""Throughput: the whole pipeline against a minimal client, on the same emulator, in one run.

``python -m bench.throughput`` makes N distinct ~50 KB JPEGs (default 2,000; kept in
``bench/.cache``), starts the emulator with no rate limit and no processing delay in a child
process, and then, alternately, sends them through

* ``bench.baseline``: asyncio + httpx, create → upload → confirm → wait → download, every order
  and upload in flight at once, nothing else;
* the ``protect`` flow: manifest, validation, fingerprints, ledger, planning, orders (one Prefect
  task each, all at once), webhook completion, download, verification, outputs, audit.

It prints images/s for both, their ratio (target ≥ 0.8), and CPU seconds per image of the
pipeline process, of Prefect's ephemeral API server and of the emulator. Medians of
``--repeats`` alternating pairs. Both clients share the 2 CPUs with the emulator, which does the
real work (decode, perturb, re-encode every image), so any CPU the pipeline spends beyond the
baseline's shows up as lower throughput.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench import baseline
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

TARGET_RATIO = 0.8


def run_pipeline(emu: EmulatorProcess, files: list[Path], concurrency: int) -> dict[str, Any]:
    """One ``protect`` run over ``files`` in a fresh work folder; its figures."""
    from flows.protect import protect

    with pipeline_world(emu, files, "throughput-") as work:
        before = children_cpu(exclude=emu.pids())
        emu_before = emu.cpu()
        with Timer() as timer:
            summary = protect(
                manifest=str(work / "manifest.csv"),
                output=str(work / "output"),
                audit=str(work / "audit"),
                max_concurrent_orders=concurrency,
            )
        after = children_cpu(exclude=emu.pids())
    if summary.count("processed") != len(files):
        raise RuntimeError(f"pipeline run incomplete: {summary.counts} {summary.failures}")
    server_cpu = sum(after.get(pid, 0.0) - before.get(pid, 0.0) for pid in after)
    return {
        "seconds": timer.wall,
        "images_per_second": len(files) / timer.wall,
        "process_cpu": timer.cpu,
        "prefect_server_cpu": server_cpu,
        "emulator_cpu": emu.cpu() - emu_before,
    }


def run_baseline(emu: EmulatorProcess, files: list[Path]) -> dict[str, Any]:
    """One baseline run over ``files``; its figures."""
    emu_before = emu.cpu()
    with Timer() as timer:
        result = baseline.run(emu.api, "bench-baseline", files)
    return {
        "seconds": result.seconds,
        "images_per_second": result.images_per_second,
        "process_cpu": timer.cpu,
        "emulator_cpu": emu.cpu() - emu_before,
        "api_requests": result.api_requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="images per run (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating pairs (default 3)")
    parser.add_argument("--concurrency", type=int, default=32, help="pipeline orders at once")
    parser.add_argument("--quick", action="store_true", help="400 images, one pair")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats = 400, 1
    prefect_home()

    print(f"throughput: {args.images} images per run, {args.repeats} pair(s); {machine()}")
    # Each pair gets images of its own: the same images again would give the same orders, whose
    # creates the emulator would replay (idempotency keys), with no new webhook to wait for.
    pool = write_images(CACHE / "images-640x480", args.images * args.repeats)
    size = sum(p.stat().st_size for p in pool[: args.images]) / args.images / 1024
    print(f"  {len(pool)} JPEGs 640x480, {size:.0f} KB on average, {args.images} per run")
    with EmulatorProcess() as emu:
        warm = write_images(CACHE / "images-warmup", 100)
        run_baseline(emu, warm)
        started = time.perf_counter()
        run_pipeline(emu, warm, args.concurrency)  # starts Prefect's API server, imports flows
        print(f"  warm-up done ({time.perf_counter() - started:.1f} s for Prefect's first run)")
        pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for n in range(args.repeats):
            files = pool[n * args.images : (n + 1) * args.images]
            base = run_baseline(emu, files)
            pipe = run_pipeline(emu, files, args.concurrency)
            pairs.append((base, pipe))
            print(
                f"  pair {n + 1}: baseline {base['images_per_second']:.1f}/s, "
                f"pipeline {pipe['images_per_second']:.1f}/s"
            )
    report(args, files, pairs)


def report(
    args: argparse.Namespace, files: list[Path], pairs: list[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    n = len(files)
    base = {k: median([b[k] for b, _ in pairs]) for k in pairs[0][0]}
    pipe = {k: median([p[k] for _, p in pairs]) for k in pairs[0][1]}
    ratio = median([p["images_per_second"] / b["images_per_second"] for b, p in pairs])
    rows = [
        ["baseline (asyncio + httpx)", base["images_per_second"], base["seconds"],
         base["process_cpu"] / n * 1000, "-", base["emulator_cpu"] / n * 1000],
        ["pipeline (protect flow)", pipe["images_per_second"], pipe["seconds"],
         pipe["process_cpu"] / n * 1000, pipe["prefect_server_cpu"] / n * 1000,
         pipe["emulator_cpu"] / n * 1000],
    ]  # fmt: skip
    header = ["client", "images/s", "seconds", "client CPU ms/img", "Prefect server", "emulator"]
    print()
    print(table(rows, header))
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"\npipeline / baseline = {ratio:.2f} (target ≥ {TARGET_RATIO}: {verdict}); "
        f"medians of {len(pairs)}"
    )
    emit_json(args.json, {"images": n, "pairs": pairs, "ratio": ratio, "machine": machine()})


if __name__ == "__main__":
    main()
