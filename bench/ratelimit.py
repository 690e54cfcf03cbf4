"""Rate limit: does the pipeline drive one API key at its plan's requests per minute, no 429s?

``python -m bench.ratelimit --rpm 60`` starts the emulator with a limit of R requests per minute
per key (a fixed 60 s window, as MORI's), sets ``MORI_RATE_LIMIT_RPM=R`` for the pipeline
(client-side sliding window, 0.5 s margin) and runs the ``protect`` flow on enough full
100-file orders to keep the limiter busy for ``--minutes`` whole windows. A sampler reads the
emulator's counters twice a second; from them it prints

* API requests per minute achieved over the measured windows, against R (target ≥ 95 %);
* the number of 429 answers (target 0);
* images delivered per minute against the plan's ceiling, R ÷ API calls per order × 100
  (target within 5 %), and the API calls per order actually made.

Only ``/api/v2`` calls count against the limit: uploads and result downloads go to presigned
storage URLs. Images are small (64x48 JPEGs) so that the emulator's processing, not the limit,
is never what runs out first on a small machine; see BENCHMARKS.md for what that allows.
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

ORDER = 100
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
TARGET_SHARE = 0.95


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


def measure(samples: list[tuple[float, int, int, int]], windows: int) -> dict[str, Any]:
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
        "images_per_minute": (down_b - down_a) * ORDER / minutes,
        "rate_limited": samples[-1][2] - samples[0][2],
    }


def rig_capacity(files: list[Path]) -> float:
    """Images/s the emulator sustains on this machine with an unlimited key (baseline client)."""
    from bench import baseline

    with EmulatorProcess() as emu:
        baseline.run(emu.api, "bench-baseline", files[:200])
        return baseline.run(emu.api, "bench-baseline", files).images_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpm", type=int, default=60, help="the plan's limit R (default 60)")
    parser.add_argument("--minutes", type=int, default=2, help="whole windows measured")
    parser.add_argument("--concurrency", type=int, default=16, help="orders in flight")
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
    prefect_home()
    from flows.protect import protect

    calls = 3  # create, confirm, get-download (completion comes by webhook)
    ceiling = args.rpm / calls * ORDER
    # Enough orders to keep the limiter busy through the ramp-up minute and the measured ones.
    orders = math.ceil(args.rpm / calls * (args.minutes + 1)) + args.concurrency // 2
    print(
        f"ratelimit: R = {args.rpm}/min, {args.minutes} measured window(s), {orders} orders of "
        f"{ORDER}; ceiling {ceiling:,.0f} images/min\n  {machine()}"
    )
    files = write_images(CACHE / "images-64x48", orders * ORDER, size=(64, 48))
    warm = write_images(CACHE / "images-64x48-warmup", ORDER, size=(64, 48))
    work = Path(tempfile.mkdtemp(prefix="ratelimit-", dir=CACHE))
    try:
        with (
            EmulatorProcess(rpm=args.rpm) as emu,
            environment(**client_env(emu, "bench-pipeline", rpm=args.rpm)),
            receiver(emu, "bench-pipeline", work / "audit" / "ledger.sqlite"),
        ):
            registered = time.monotonic()

            def run(paths: list[Path], name: str) -> Any:
                manifest = image_manifest(work / f"{name}.csv", paths)
                return protect(
                    manifest=str(manifest),
                    output=str(work / "output"),
                    audit=str(work / "audit"),
                    max_concurrent_orders=args.concurrency,
                )

            run(warm, "warmup")  # Prefect's API server starts; not measured
            # The webhook registration and the warm-up were API calls too: start the measured run
            # in a fresh emulator window, so the run has the whole budget of its first minute.
            time.sleep(max(0.0, registered + 61 - time.monotonic()))
            sampler = Sampler(emu)
            sampler.start()
            cpu0 = (cpu_seconds(), children_cpu(exclude=emu.pids()), emu.cpu())
            started = time.monotonic()
            summary = run(files, "manifest")
            wall = time.monotonic() - started
            cpu1 = (cpu_seconds(), children_cpu(exclude=emu.pids()), emu.cpu())
            sampler.stop()
        capacity = rig_capacity(files[:3000]) if args.capacity else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = measure(sampler.samples, args.minutes)
    images = summary.count("processed")
    figures["cpu_ms_per_image"] = {
        "pipeline process": (cpu1[0] - cpu0[0]) / images * 1000,
        "Prefect API server": sum(v - cpu0[1].get(p, 0.0) for p, v in cpu1[1].items())
        / images
        * 1000,
        "emulator + S3": (cpu1[2] - cpu0[2]) / images * 1000,
    }
    figures["cpu_busy"] = (
        (cpu1[0] - cpu0[0])
        + sum(v - cpu0[1].get(p, 0.0) for p, v in cpu1[1].items())
        + (cpu1[2] - cpu0[2])
    ) / (wall * (os.cpu_count() or 1))
    figures["capacity"] = capacity
    (_, api0, _, down0), (_, api1, _, down1) = sampler.samples[0], sampler.samples[-1]
    per_order = (api1 - api0) / max(1, down1 - down0)
    report(args, figures, summary, wall, per_order, ceiling)


def report(
    args: argparse.Namespace,
    figures: dict[str, Any],
    summary: Any,
    wall: float,
    per_order: float,
    ceiling: float,
) -> None:
    share = figures["requests_per_minute"] / args.rpm
    image_share = figures["images_per_minute"] / ceiling
    rows = [
        ["API requests / min", figures["requests_per_minute"], args.rpm, f"{share:.1%}"],
        ["images / min", figures["images_per_minute"], ceiling, f"{image_share:.1%}"],
        ["429 answers", figures["rate_limited"], 0, ""],
        ["API calls per order", per_order, 3, ""],
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
    met = share >= TARGET_SHARE and figures["rate_limited"] == 0 and image_share >= TARGET_SHARE
    print(
        "\ntarget (≥ 95 % of R, 0 × 429, images within 5 % of the ceiling): "
        + ("met" if met else "NOT met")
    )
    emit_json(args.json, {"rpm": args.rpm, **figures, "per_order": per_order, "wall": wall})


if __name__ == "__main__":
    main()
