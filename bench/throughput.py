"""Throughput: the whole pipeline against a minimal client, on the same emulator, in one run.

``python -m bench.throughput`` makes N distinct JPEGs of each size (default 2,000 of 160x120,
~5 KB, and 2,000 of 640x480, ~54 KB; kept in ``bench/.cache``), starts the emulator with no
rate limit and no processing delay in a child process, and then, for each size, alternately
sends fresh images through

* ``bench.baseline``: asyncio + httpx, create → upload → confirm → wait → download → write
  every output, every order and upload in flight at once, nothing else;
* the ``protect`` flow at its default settings: manifest, validation, fingerprints, ledger,
  planning, orders (one Prefect task each), webhook completion, download, verification,
  outputs, audit.

It prints images/s for both, their ratio (target ≥ 0.8, the median of the pairs' ratios), and
CPU milliseconds per image of the baseline process, of the pipeline process, of Prefect's
ephemeral API server and of the emulator. Both clients share the 2 CPUs with the emulator,
which does the real work (decode, perturb, re-encode every image), so any CPU the pipeline
spends beyond the baseline's shows up as lower throughput. ``--concurrency N`` runs the
pipeline with ``max_concurrent_orders=N`` instead of its default.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
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
SIZES = "160x120,640x480"


def run_pipeline(
    emu: EmulatorProcess, files: list[Path], concurrency: int | None = None
) -> dict[str, Any]:
    """One ``protect`` run over ``files`` in a fresh work folder (default settings unless a
    ``concurrency`` is given); its figures."""
    from flows.protect import protect

    options = {} if concurrency is None else {"max_concurrent_orders": concurrency}
    with pipeline_world(emu, files, "throughput-") as work:
        before = children_cpu(exclude=emu.pids())
        emu_before = emu.cpu()
        with Timer() as timer:
            summary = protect(
                manifest=str(work / "manifest.csv"),
                output=str(work / "output"),
                audit=str(work / "audit"),
                **options,
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
    """One baseline run over ``files``, writing the outputs to a throw-away folder."""
    output = Path(tempfile.mkdtemp(prefix="baseline-", dir=CACHE))
    try:
        emu_before = emu.cpu()
        with Timer() as timer:
            result = baseline.run(emu.api, "bench-baseline", files, output=output)
    finally:
        shutil.rmtree(output, ignore_errors=True)
    return {
        "seconds": result.seconds,
        "images_per_second": result.images_per_second,
        "process_cpu": timer.cpu,
        "emulator_cpu": emu.cpu() - emu_before,
        "api_requests": result.api_requests,
    }


def parse_size(text: str) -> tuple[int, int]:
    """``"160x120"`` → ``(160, 120)``."""
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="images per run (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="pairs per size (default 3)")
    parser.add_argument("--sizes", default=SIZES, help=f"image sizes (default {SIZES})")
    parser.add_argument(
        "--concurrency", type=int, help="pipeline orders at once (default: its own default)"
    )
    parser.add_argument("--quick", action="store_true", help="400 images, one pair per size")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats = 400, 1
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    prefect_home()

    setting = "defaults" if args.concurrency is None else f"{args.concurrency} orders at once"
    print(
        f"throughput: {args.images} images per run, {args.repeats} pair(s) per size, the "
        f"pipeline at {setting}\n  {machine()}"
    )
    results: dict[str, Any] = {}
    with EmulatorProcess() as emu:
        warm = write_images(CACHE / "images-warmup", 100)
        run_baseline(emu, warm)
        started = time.perf_counter()
        run_pipeline(emu, warm, args.concurrency)  # starts Prefect's API server, imports flows
        print(f"  warm-up done ({time.perf_counter() - started:.1f} s for Prefect's first run)")
        for size in sizes:
            results["x".join(map(str, size))] = measure_size(emu, size, args)
    for name, figures in results.items():
        report(name, figures)
    emit_json(args.json, {"sizes": results, "setting": setting, "machine": machine()})


def measure_size(emu: EmulatorProcess, size: tuple[int, int], args: argparse.Namespace) -> Any:
    """``args.repeats`` alternating pairs on fresh images of ``size``; their figures."""
    # Each pair gets images of its own: the same images again would give the same orders, whose
    # creates the emulator would replay (idempotency keys), with no new webhook to wait for.
    name = "x".join(map(str, size))
    pool = write_images(CACHE / f"images-{name}", args.images * args.repeats, size=size)
    kb = sum(p.stat().st_size for p in pool[: args.images]) / args.images / 1024
    print(f"  {name}: {len(pool)} JPEGs, {kb:.0f} KB on average, {args.images} per run")
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for n in range(args.repeats):
        files = pool[n * args.images : (n + 1) * args.images]
        base = run_baseline(emu, files)
        pipe = run_pipeline(emu, files, args.concurrency)
        pairs.append((base, pipe))
        print(
            f"    pair {n + 1}: baseline {base['images_per_second']:.1f}/s, "
            f"pipeline {pipe['images_per_second']:.1f}/s "
            f"({pipe['images_per_second'] / base['images_per_second']:.2f})"
        )
    ratio = median([p["images_per_second"] / b["images_per_second"] for b, p in pairs])
    return {"images": args.images, "kb": kb, "pairs": pairs, "ratio": ratio}


def report(name: str, figures: dict[str, Any]) -> None:
    """The table and the verdict of one image size."""
    n, pairs = figures["images"], figures["pairs"]
    base = {k: median([b[k] for b, _ in pairs]) for k in pairs[0][0]}
    pipe = {k: median([p[k] for _, p in pairs]) for k in pairs[0][1]}
    rows = [
        ["baseline (asyncio + httpx)", base["images_per_second"], base["seconds"],
         base["process_cpu"] / n * 1000, "-", base["emulator_cpu"] / n * 1000],
        ["pipeline (protect flow)", pipe["images_per_second"], pipe["seconds"],
         pipe["process_cpu"] / n * 1000, pipe["prefect_server_cpu"] / n * 1000,
         pipe["emulator_cpu"] / n * 1000],
    ]  # fmt: skip
    header = [
        f"{name} ({figures['kb']:.0f} KB)",
        "images/s",
        "seconds",
        "client CPU ms/img",
        "Prefect server",
        "emulator",
    ]
    print()
    print(table(rows, header))
    ratio = figures["ratio"]
    each = ", ".join(f"{p['images_per_second'] / b['images_per_second']:.2f}" for b, p in pairs)
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"{name}: pipeline / baseline = {ratio:.2f} (target ≥ {TARGET_RATIO}: {verdict}); "
        f"median of {len(pairs)} pair(s): {each}"
    )


if __name__ == "__main__":
    main()
