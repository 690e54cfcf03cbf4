"""``mori-pipeline demo``: the whole path on the embedded default, no network, no credentials.

Makes ~40 sample images of mixed formats and sizes (or uses the ones in ``data/samples/``),
writes a manifest mixing local files and public-URL rows (served by a local HTTP server),
starts the local stack (S3, MORI emulator, webhook receiver) and runs the ``protect`` flow.
Everything goes under the work folder (default ``data/demo``); running it again processes
nothing twice: every row comes back ``skipped``.
"""

from __future__ import annotations

import csv
import random
import shutil
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from deployments.stack import LocalStack, static_files
from mori.batch.ledger import ledger_location
from mori.batch.outcomes import RunSummary
from mori.settings import Settings

FORMATS = (("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"), ("tiff", "TIFF"), ("bmp", "BMP"))
SAMPLES = Path("data/samples")
DEMO_PORT_FILE = ".url-port"


def make_image(path: Path, rng: random.Random, fmt: str) -> None:
    """A small synthetic picture: a gradient with a few shapes, deterministic from ``rng``."""
    width, height = rng.choice([(320, 240), (640, 480), (512, 512), (800, 600), (257, 129)])
    top, bottom = [tuple(rng.randrange(256) for _ in range(3)) for _ in range(2)]
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    for y in range(height):
        t = y / max(1, height - 1)
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    for _ in range(rng.randrange(3, 9)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = [x0, y0, x0 + rng.randrange(10, width // 2), y0 + rng.randrange(10, height // 2)]
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    extra = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
    img.save(path, fmt, **extra)


def prepare(workdir: Path, count: int = 40, url_share: float = 0.25, seed: int = 7) -> Path:
    """Sample images and a manifest under ``workdir`` (kept if already there); the manifest."""
    manifest = workdir / "manifest.csv"
    if manifest.exists():
        return manifest
    images, web = workdir / "images", workdir / "web"
    images.mkdir(parents=True, exist_ok=True)
    web.mkdir(parents=True, exist_ok=True)
    samples = sorted(p for p in SAMPLES.glob("*") if p.is_file()) if SAMPLES.is_dir() else []
    rng = random.Random(seed)
    n_urls = round(count * url_share)
    rows = []
    for i in range(count):
        folder = web if i < n_urls else images
        if samples:
            src = samples[i % len(samples)]
            name = f"{i:03d}-{src.name}"
            shutil.copyfile(src, folder / name)
        else:
            ext, fmt = FORMATS[i % len(FORMATS)]
            name = f"sample-{i:03d}.{ext}"
            make_image(folder / name, rng, fmt)
        source = f"http://{{host}}/{name}" if folder is web else f"images/{name}"
        rows.append({"source": source, "id": f"demo-{i:03d}", "collection": "demo"})
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["source", "id", "collection"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def run_demo(
    workdir: Path, count: int = 40, processing_seconds: float = 1.0
) -> tuple[RunSummary, dict[str, Any]]:
    """Prepare the samples, start the local stack, run ``protect``; its summary and MORI stats."""
    from flows.protect import protect  # imported late: Prefect's import is slow

    workdir = workdir.resolve()
    template = prepare(workdir, count)
    port_file = workdir / DEMO_PORT_FILE
    port = int(port_file.read_text()) if port_file.exists() else 0
    with static_files(workdir / "web", port) as host:
        port_file.write_text(host.rsplit(":", 1)[1])
        manifest = workdir / "manifest.resolved.csv"
        manifest.write_text(
            template.read_text(encoding="utf-8").replace("{host}", host), encoding="utf-8"
        )
        ledger = Path(ledger_location(str(workdir / "audit"), Settings()))
        with LocalStack(
            ledger, processing_seconds=processing_seconds, url_hosts=frozenset({host})
        ) as stack:
            started = time.monotonic()
            summary = protect(
                manifest=str(manifest), allowed_private_hosts=[host], poll_interval_seconds=0.5
            )
            summary.wall_seconds = time.monotonic() - started
            stats = stack.stats()
    print_summary(summary, stats)
    return summary, stats


def print_summary(summary: RunSummary, stats: dict[str, object] | None = None) -> None:
    """The few lines a person reads after a run."""
    print()
    print(f"run {summary.run_id}: {summary.rows} rows in {summary.wall_seconds:.1f} s")
    print(
        "  "
        + ", ".join(
            f"{s} {summary.count(s)}" for s in ("processed", "skipped", "failed", "pending")
        )
    )
    for code, n in sorted(summary.failures.items()):
        print(f"  failed {code}: {n}")
    print(f"  orders driven: {summary.orders}")
    if stats is not None:
        print(
            f"  emulator: orders_created {stats.get('orders_created')}, files_processed "
            f"{stats.get('files_processed')}, duplicate_files {stats.get('duplicate_files')}"
        )
    print(f"  outputs: {summary.output_uri}")
    print(f"  audit:   {summary.audit_uri}  (images/, orders/, runs/ by run_date=)")
