"""Shared helpers of the benchmarks: sample images, process CPU and memory, tables, medians."""

from __future__ import annotations

import io
import json
import os
import platform
import random
import resource
import statistics
import struct
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE = Path(__file__).resolve().parent / ".cache"


# -- sample images -----------------------------------------------------------------------------


def base_jpeg(seed: int, size: tuple[int, int] = (640, 480), noise: float = 0.2) -> bytes:
    """A photo-like JPEG (gradient, shapes, grain); ~50 KB at 640x480 with the defaults."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    width, height = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    top, bottom = [tuple(rng.randrange(256) for _ in range(3)) for _ in range(2)]
    for y in range(height):
        t = y / max(1, height - 1)
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = [x0, y0, x0 + rng.randrange(10, width // 2 + 11), y0 + rng.randrange(10, height)]
        draw.ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    if noise:
        img = Image.blend(img, Image.effect_noise(size, 24).convert("RGB"), noise)
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def stamp(jpeg: bytes, label: str) -> bytes:
    """``jpeg`` with a COM segment holding ``label``: unique bytes, the same picture."""
    comment = label.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


def write_images(
    folder: Path,
    count: int,
    *,
    size: tuple[int, int] = (640, 480),
    noise: float = 0.2,
    bases: int = 16,
) -> list[Path]:
    """``count`` distinct JPEGs under ``folder`` (kept between runs); their paths, in order."""
    tag = f"{size[0]}x{size[1]}-n{noise}-b{bases}"
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / f".complete-{tag}-{count}"
    paths = [folder / f"{i // 1000:03d}" / f"img-{i:07d}.jpg" for i in range(count)]
    if done.exists():
        return paths
    originals = [base_jpeg(seed, size, noise) for seed in range(bases)]
    for i, path in enumerate(paths):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(stamp(originals[i % bases], f"mori-bench {tag} {i}"))
    done.touch()
    return paths


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> Path:
    """A CSV manifest (values must not need quoting)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(header) + "\n")
        for row in rows:
            fh.write(",".join(row) + "\n")
    return path


# -- measuring ---------------------------------------------------------------------------------


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (all threads), or of ``pid`` via /proc."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int | None = None) -> list[int]:
    """Every live process below ``pid`` (default: this one), from /proc."""
    root = pid or os.getpid()
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        current = frontier.pop()
        children = [p for p, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def children_cpu(exclude: Iterable[int] = ()) -> dict[int, float]:
    """CPU seconds of every live descendant process, by pid (``exclude`` left out)."""
    skip = set(exclude)
    return {pid: cpu_seconds(pid) for pid in descendants() if pid not in skip}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


@dataclass
class Timer:
    """Wall and process-CPU seconds of a block: ``with Timer() as t: ...; t.wall, t.cpu``."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = cpu_seconds() - self._cpu


# -- reporting ---------------------------------------------------------------------------------


def machine() -> str:
    """One line about where the figures come from: the load average, and the speed of one CPU
    right now (:func:`cpu_speed`), since a shared host's speed varies by 2x from hour to hour."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, load average {load}, CPU speed {cpu_speed():.0f} ms"
    )


def cpu_speed(rounds: int = 5) -> float:
    """Milliseconds one CPU takes for a fixed pure-Python workload (best of ``rounds``).

    About 100 ms on an idle modern core; compare it between runs of a benchmark to tell a
    slower hour of a shared host from a slower program.
    """
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        table: dict[int, int] = {}
        for i in range(300_000):
            table[i * 7919 % 300_007] = i
        sorted(table.items(), key=lambda kv: kv[1] % 1000)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain-text table, columns right-aligned except the first."""
    cells = [[str(h) for h in header]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def emit_json(path: str | None, payload: dict[str, Any]) -> None:
    """Write the figures as JSON too, when ``--json PATH`` was given."""
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"figures written to {path}", file=sys.stderr)
