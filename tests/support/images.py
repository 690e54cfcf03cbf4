"""Real images made with Pillow, and manifests in every format, for any test."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

#: Pillow format name -> a file extension MORI accepts for it.
FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tiff", "BMP": "bmp"}


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (8, 6), seed: int = 0) -> bytes:
    """A small real image; ``seed`` changes the pixels (hence the bytes and the sha256)."""
    img = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 13 + 7) % 256))
    img.putpixel((0, 0), (seed % 256, (seed // 256) % 256, 1))
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def write_image(
    path: Path, fmt: str = "JPEG", size: tuple[int, int] = (8, 6), seed: int = 0
) -> bytes:
    """Write a real image at ``path`` (folders created) and return its bytes."""
    data = image_bytes(fmt, size, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def write_manifest(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` as a CSV, Parquet or JSONL manifest, chosen by ``path``'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        pd.DataFrame(list(rows)).to_csv(path, index=False)
    elif suffix == ".parquet":
        pd.DataFrame(list(rows)).to_parquet(path, index=False)
    elif suffix == ".jsonl":
        path.write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
        )
    else:
        raise ValueError(suffix)
    return path


def make_image(fmt: str = "PNG", mode: str = "RGB", size: tuple[int, int] = (48, 32)) -> bytes:
    """A smooth test image (gradient plus a little texture) encoded as ``fmt``."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 200 // max(width - 1, 1) + y * 40 // max(height - 1, 1)) % 256
    bands = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4}[mode]
    layers = [(base + 37 * band) % 256 for band in range(bands)]
    if mode in ("RGBA", "LA"):
        layers[-1] = np.where(x < width // 2, 255, 90)
    array = np.stack(layers, axis=-1).astype(np.uint8)
    image = Image.frombytes(mode, size, array.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def make_manifest(folder: Path, count: int, seed: int = 11) -> Path:
    """``count`` pictures of mixed formats (the demo's) and a ``source,id`` CSV manifest of
    them under ``folder``; ``seed`` makes them (and their names) differ."""
    from deployments.demo import FORMATS as DEMO_FORMATS
    from deployments.demo import make_image as demo_image

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        ext, fmt = DEMO_FORMATS[i % len(DEMO_FORMATS)]
        name = f"img-{seed}-{i:03d}.{ext}"
        demo_image(images / name, rng, fmt)
        rows.append({"source": f"images/{name}", "id": f"row-{i:03d}"})
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["source", "id"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
