"""Plain helpers for the batch tests: real images made with Pillow, manifests in every format."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class FakeTime:
    """A monotonic clock that only moves when :meth:`sleep` is called."""

    now: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.sleeps.append(seconds)
        self.now += seconds
