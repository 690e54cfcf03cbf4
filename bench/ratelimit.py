"""Rate limit: does the pipeline drive one API key at its plan's requests per minute, no 429s?

``python -m bench.ratelimit --rpm 1000`` starts the emulator with a limit of R requests per
minute per key (a fixed 60 s window, as MORI's), sets ``MORI_RATE_LIMIT_RPM=R`` for the
pipeline and runs the ``protect`` flow on enough orders to keep the limiter busy for
``--minutes`` whole windows, with ``max_concurrent_orders=0``: the pipeline picks how many
orders it drives at once from R (``--concurrency N`` sets it). A sampler reads the emulator's
counters twice a second; from them it prints

* API requests per minute achieved over the measured windows, against R (target ≥ 99 %);
* the number of 429 answers (target 0);
* images delivered per minute against the plan's ceiling, R ÷ API calls per order × order
  size (target within 5 %), and the API calls per order actually made.

Only ``/api/v2`` calls count against the limit: uploads and result downloads go to presigned
storage URLs. The rig must not be what runs out first, so the run picks its orders and the
emulator's work by R (``--order-size`` and ``--mode`` override): full orders of 100 small
(64x48) JPEGs that the emulator really filters at R ≤ 60; full orders in the emulator's
``copy`` mode (outputs are the inputs, almost no CPU) up to R = 300; one-image orders in
``copy`` mode above, where the ceiling in images (R ÷ 3 × 100 a minute) would be more than a
2-CPU machine can move. It prints what it used.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._stack import EmulatorProcess, client_env, image_manifest, prefect_home, receiver
from bench._util import (
    CACHE,
    children_cpu,
    cpu_seconds,
    emit_json,
    machine,
    table,
    write_images,
)
from deployments.stack import environment
from mori.batch.parameters import orders_at_once

API_ENDPOINTS = (
    "create",
    "with_urls",
    "confirm",
    "get",
    "download",
    "webhook_register",
    "webhook_get",
    "webhook_delete",
)
TARGET_SHARE = 0.99
TARGET_IMAGES = 0.95
CALLS = 3  # create, confirm, get-download (completion comes by webhook)


class Sampler(threading.Thread):
    """Reads the emulator's counters every ``interval`` seconds until stopped."""

    def __init__(self, emu: EmulatorProcess, interval: float = 0.5) -> None:
        super().__init__(daemon=True, name="stats-sampler")
        self.emu, self.interval = emu, interval
        self.samples: list[tuple[float, int, int, int]] = []
        self._halt = threading.Event()

    def read(self) -> tuple[float, int, int, int]:
        stats = self.emu.stats()
        api = sum(stats["requests"].get(e, 0) for e in API_ENDPOINTS)
        return (time.monotonic(), api, stats["rate_limited"], stats["downloads"])

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(self.read())
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.samples.append(self.read())


def measure(
    samples: list[tuple[float, int, int, int]], windows: int, order_size: int
) -> dict[str, Any]:
    """Rates over ``windows`` whole minutes, after the first minute of the run (the ramp-up,
    when orders are being created but none has finished yet)."""
    start_api = samples[0][1]
    first = next(i for i, s in enumerate(samples) if s[1] > start_api)
    t0 = samples[first - 1][0]  # the last sample before the run's first API request

    def at(seconds: float) -> tuple[float, int, int, int]:
        return samples[max(i for i, s in enumerate(samples) if s[0] <= t0 + seconds)]

    (ta, api_a, _, down_a), (tb, api_b, _, down_b) = at(60), at(60 * (windows + 1))
    minutes = (tb - ta) / 60
    per_window = [at(60 * (w + 1))[1] - at(60 * w)[1] for w in range(windows + 1)]
    return {
        "minutes": minutes,
        "api_requests": api_b - api_a,
        "requests_per_minute": (api_b - api_a) / minutes,
        "per_window": per_window,
        "busiest_minute": busiest(samples),
        "images_per_minute": (down_b - down_a) * order_size / minutes,
        "rate_limited": samples[-1][2] - samples[0][2],
    }


def busiest(samples: list[tuple[float, int, int, int]]) -> int:
    """The most API requests the sampler saw within any 60 s (to the nearest sample): how
    close the run came to a 429 in the emulator's fixed windows, wherever they start."""
    best, j = 0, 0
    for i in range(len(samples)):
        while samples[i][0] - samples[j][0] > 60:
            j += 1
        best = max(best, samples[i][1] - samples[j][1])
    return best


def rig_capacity(files: list[Path], mode: str) -> float:
    """Images/s the emulator sustains on this machine with an unlimited key (baseline client)."""
    from bench import baseline

    with EmulatorProcess(mode=mode) as emu:
        baseline.run(emu.api, "bench-baseline", files[:200])
        return baseline.run(emu.api, "bench-baseline", files).images_per_second


def choose(args: argparse.Namespace) -> None:
    """The order size and the emulator's mode for R, unless given (see the module docstring)."""
    if args.order_size is None:
        args.order_size = 100 if args.rpm <= 300 else 1
    if args.mode is None:
        args.mode = "filter" if args.rpm <= 60 else "copy"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpm", type=int, default=60, help="the plan's limit R (default 60)")
    parser.add_argument("--minutes", type=int, default=3, help="whole windows measured (3)")
    parser.add_argument("--order-size", type=int, help="images per order (default: by R)")
    parser.add_argument("--mode", choices=["filter", "copy"], help="emulator (default: by R)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="max_concurrent_orders (default 0: the pipeline picks it from R)",
    )
    parser.add_argument("--quick", action="store_true", help="one measured window")
    parser.add_argument(
        "--capacity",
        action="store_true",
        help="also measure what the emulator sustains here without a limit (baseline client)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.minutes = 1
    choose(args)
    prefect_home()

    ceiling = args.rpm / CALLS * args.order_size
    orders = math.ceil(args.rpm / CALLS * (args.minutes + 1.5))  # ramp-up, measured, spare
    at_once = str(args.concurrency or f"automatic ({orders_at_once(0, args.rpm)})")
    print(
        f"ratelimit: R = {args.rpm}/min, {args.minutes} measured window(s); {orders} orders of "
        f"{args.order_size} 64x48 JPEG(s), emulator mode {args.mode}, orders at once: "
        f"{at_once}; ceiling {ceiling:,.0f} images/min\n  {machine()}"
    )
    size = (64, 48)
    files = write_images(CACHE / "images-64x48", orders * args.order_size, size=size)
    warm = write_images(CACHE / "images-64x48-warmup", args.order_size, size=size)
    figures, summary, wall = run(args, files, warm)
    if args.capacity:
        figures["capacity"] = rig_capacity(files[:3000], args.mode)
    report(args, figures, summary, wall, ceiling)


def run(args: argparse.Namespace, files: list[Path], warm: list[Path]) -> tuple[Any, Any, float]:
    """The measured ``protect`` run (after a warm-up run); its figures, summary and seconds."""
    from flows.protect import protect

    work = Path(tempfile.mkdtemp(prefix="ratelimit-", dir=CACHE))
    try:
        with (
            EmulatorProcess(rpm=args.rpm, mode=args.mode) as emu,
            environment(**client_env(emu, "bench-pipeline", rpm=args.rpm)),
            receiver(emu, "bench-pipeline", work / "audit" / "ledger.sqlite"),
        ):
            registered = time.monotonic()

            def drive(paths: list[Path], name: str) -> Any:
                manifest = image_manifest(work / f"{name}.csv", paths)
                return protect(
                    manifest=str(manifest),
                    output=str(work / "output"),
                    audit=str(work / "audit"),
                    order_size=args.order_size,
                    max_concurrent_orders=args.concurrency,
                )

            drive(warm, "warmup")  # Prefect's API server starts; not measured
            # The webhook registration and the warm-up were API calls too: start the measured run
            # in a fresh emulator window, so the run has the whole budget of its first minute.
            time.sleep(max(0.0, registered + 61 - time.monotonic()))
            sampler = Sampler(emu)
            sampler.start()
            cpu0 = (cpu_seconds(), children_cpu(exclude=emu.pids()), emu.cpu())
            started = time.monotonic()
            summary = drive(files, "manifest")
            wall = time.monotonic() - started
            cpu1 = (cpu_seconds(), children_cpu(exclude=emu.pids()), emu.cpu())
            sampler.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = measure(sampler.samples, args.minutes, args.order_size)
    images = max(1, summary.count("processed"))
    server = sum(v - cpu0[1].get(p, 0.0) for p, v in cpu1[1].items())
    used = [cpu1[0] - cpu0[0], server, cpu1[2] - cpu0[2]]
    names = ["pipeline process", "Prefect API server", "emulator + S3"]
    figures["cpu_ms_per_image"] = {k: v / images * 1000 for k, v in zip(names, used, strict=True)}
    figures["cpu_busy"] = sum(used) / (wall * (os.cpu_count() or 1))
    (_, api0, _, down0), (_, api1, _, down1) = sampler.samples[0], sampler.samples[-1]
    figures["per_order"] = (api1 - api0) / max(1, down1 - down0)
    figures["capacity"] = None
    return figures, summary, wall


def report(
    args: argparse.Namespace, figures: dict[str, Any], summary: Any, wall: float, ceiling: float
) -> None:
    share = figures["requests_per_minute"] / args.rpm
    image_share = figures["images_per_minute"] / ceiling
    rows = [
        ["API requests / min", figures["requests_per_minute"], args.rpm, f"{share:.1%}"],
        ["images / min", figures["images_per_minute"], ceiling, f"{image_share:.1%}"],
        ["429 answers", figures["rate_limited"], 0, ""],
        ["busiest 60 s (requests)", figures["busiest_minute"], args.rpm, ""],
        ["API calls per order", figures["per_order"], CALLS, ""],
    ]
    print()
    print(f"run: {summary.count('processed')} images processed in {wall:.0f} s; API requests per "
          f"minute from the first one: {figures['per_window']} (the first minute is the ramp-up); "
          f"measured over minutes 2-{args.minutes + 1} ({figures['minutes']:.2f} min)")  # fmt: skip
    print(table(rows, ["figure", "achieved", "plan / ceiling", "share"]))
    split = ", ".join(f"{k} {v:.1f}" for k, v in figures["cpu_ms_per_image"].items())
    print(f"CPU ms per image: {split}; the {os.cpu_count()} CPUs were "
          f"{figures['cpu_busy']:.0%} busy with these three during the run")  # fmt: skip
    if figures["capacity"] is not None:
        need = ceiling / 60
        print(f"rig capacity (unlimited key, baseline client): {figures['capacity']:.0f} images/s; "
              f"the ceiling at R = {args.rpm} needs {need:.0f} images/s")  # fmt: skip
    met = share >= TARGET_SHARE and figures["rate_limited"] == 0 and image_share >= TARGET_IMAGES
    print(
        f"\ntarget (≥ {TARGET_SHARE:.0%} of R, 0 × 429, images within "
        f"{1 - TARGET_IMAGES:.0%} of the ceiling): " + ("met" if met else "NOT met")
    )
    emit_json(
        args.json,
        {
            "rpm": args.rpm,
            "order_size": args.order_size,
            "mode": args.mode,
            **figures,
            "wall": wall,
        },
    )


if __name__ == "__main__":
    main()
