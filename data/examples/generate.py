"""Make the example images of ``data/examples/`` (run once; the files are in the repository).

    .venv/bin/python data/examples/generate.py

Five small pictures, one per format MORI accepts, each a few hundred bytes: a colour gradient
with a shape, deterministic (the same bytes for the same Pillow version).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
#: file name -> (Pillow format, size, two gradient colours)
IMAGES = {
    "cat.jpg": ("JPEG", (40, 30), (230, 120, 40), (40, 20, 10)),
    "dog.png": ("PNG", (32, 32), (60, 140, 230), (250, 250, 250)),
    "fox.webp": ("WEBP", (48, 32), (240, 90, 20), (250, 220, 160)),
    "owl.tiff": ("TIFF", (24, 24), (90, 70, 50), (200, 190, 170)),
    "bee.bmp": ("BMP", (20, 16), (250, 200, 0), (20, 20, 20)),
}


def picture(size: tuple[int, int], top: tuple[int, ...], bottom: tuple[int, ...]) -> Image.Image:
    """A vertical gradient from ``top`` to ``bottom`` with a circle in the middle."""
    width, height = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for y in range(height):
        t = y / max(1, height - 1)
        colour = tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (width, y)], fill=colour)
    draw.ellipse([width // 4, height // 4, 3 * width // 4, 3 * height // 4], fill=bottom)
    return img


def main() -> None:
    """Write every image under ``images/``."""
    folder = HERE / "images"
    folder.mkdir(exist_ok=True)
    for name, (fmt, size, top, bottom) in IMAGES.items():
        extra = {"quality": 80} if fmt in ("JPEG", "WEBP") else {}
        picture(size, top, bottom).save(folder / name, fmt, **extra)
        print(f"{name}: {(folder / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
