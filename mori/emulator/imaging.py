"""The emulator's stand-in for MORI's Anti-AI filter: a small, deterministic pixel perturbation.

:func:`perturb` adds ±1..2 levels of seeded noise to every colour channel (alpha is kept, so
transparent areas stay transparent) and re-encodes in the input's format with the same size:
JPEG at quality 95 (4:4:4), PNG / TIFF / BMP / WebP losslessly. The seed is derived from the
input bytes, so the same input always gives the same output. The result stays above 35 dB PSNR.
"""

from __future__ import annotations

import hashlib
import io
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

#: Formats :func:`perturb` writes back (``MPO`` is a multi-picture JPEG and is written as JPEG).
SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "BMP"})
_FORMAT_ALIASES = {"MPO": "JPEG"}
_EIGHT_BIT_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_INDEX = {"LA": 1, "RGBA": 3}
_LOSSLESS_TIFF = frozenset({"raw", "tiff_lzw", "tiff_deflate", "tiff_adobe_deflate", "packbits"})
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class InvalidImageError(ValueError):
    """The bytes are not an image the filter can process."""

    code = "INVALID_IMAGE"


def perturb(data: bytes) -> bytes:
    """The filtered image: same format and size as ``data``, slightly different pixels."""
    image = _decode(data)
    fmt = _output_format(image)
    work = _normalise_mode(image)
    noisy = _add_noise(_pixels(work), work.mode, _seed(data))
    result = Image.frombytes(work.mode, work.size, noisy.tobytes())
    return _encode(result, fmt, {str(k): v for k, v in image.info.items()})


def psnr(a: bytes, b: bytes) -> float:
    """Peak signal-to-noise ratio of image ``b`` against image ``a`` in dB (``inf`` if equal)."""
    first, second = _decode(a), _decode(b)
    if first.size != second.size:
        raise ValueError(f"image sizes differ: {first.size} vs {second.size}")
    x, y = _comparable(first, second)
    peak = 65535.0 if x.dtype == np.uint16 else 255.0
    mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def image_format(data: bytes) -> str:
    """The Pillow format name of an encoded image (``JPEG``, ``PNG``...)."""
    return _output_format(_decode(data))


def _decode(data: bytes) -> Image.Image:
    """Open and fully load an image, or raise :class:`InvalidImageError`."""
    if not data:
        raise InvalidImageError("the file is empty")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except _DECODE_ERRORS as exc:
        raise InvalidImageError(f"not a decodable image ({type(exc).__name__}: {exc})") from exc
    return image


def _output_format(image: Image.Image) -> str:
    """The format to write back, or :class:`InvalidImageError` for unsupported ones."""
    fmt = _FORMAT_ALIASES.get(image.format or "", image.format or "")
    if fmt not in SUPPORTED_FORMATS:
        raise InvalidImageError(f"unsupported image format {image.format or 'unknown'}")
    return fmt


def _normalise_mode(image: Image.Image) -> Image.Image:
    """The image in a mode with plain 8- or 16-bit channels."""
    mode = image.mode
    if mode in _EIGHT_BIT_MODES:
        return image
    if mode in _SIXTEEN_BIT_MODES:
        return image if mode == "I;16" else image.convert("I;16")
    if mode == "1":
        return image.convert("L")
    has_alpha = "A" in mode or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _pixels(image: Image.Image) -> NDArray[Any]:
    """The image's samples as a numpy array (``uint8`` or native ``uint16``)."""
    if image.mode == "I;16":
        flat: NDArray[Any] = np.frombuffer(image.tobytes(), dtype="<u2")
        shaped: NDArray[Any] = flat.reshape(image.size[1], image.size[0])
        return shaped
    pixels: NDArray[Any] = np.asarray(image)
    return pixels


def _seed(data: bytes) -> int:
    """A noise seed derived from the input bytes."""
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def _add_noise(pixels: NDArray[Any], mode: str, seed: int) -> NDArray[Any]:
    """``pixels`` with ±1..2 levels on every colour sample, reflected back into range."""
    rng = np.random.default_rng(seed)
    sixteen_bit = pixels.dtype != np.uint8
    scale, top = (257, 65535) if sixteen_bit else (1, 255)
    values = pixels.astype(np.int64)
    steps = rng.integers(1, 3, size=values.shape) * rng.choice((-1, 1), size=values.shape)
    steps *= scale
    alpha = _ALPHA_INDEX.get(mode)
    if alpha is not None:
        steps[..., alpha] = 0
    moved = values + steps
    outside = (moved < 0) | (moved > top)
    moved[outside] = values[outside] - steps[outside]
    result: NDArray[Any] = moved.astype("<u2" if sixteen_bit else np.uint8)
    return result


def _encode(image: Image.Image, fmt: str, info: dict[str, Any]) -> bytes:
    """``image`` encoded as ``fmt`` with the source's colour profile and metadata."""
    if fmt == "BMP" and image.mode == "LA":
        image = image.convert("RGBA")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **_save_options(fmt, info))
    return buffer.getvalue()


def _save_options(fmt: str, info: dict[str, Any]) -> dict[str, Any]:
    """Encoder options: high-quality JPEG, lossless elsewhere, carried-over metadata."""
    options: dict[str, Any] = {
        key: info[key] for key in ("icc_profile", "dpi") if info.get(key) is not None
    }
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        options.update(lossless=True, quality=100, exact=True)
    elif fmt == "TIFF":
        compression = info.get("compression")
        options["compression"] = compression if compression in _LOSSLESS_TIFF else "tiff_lzw"
    if fmt in ("JPEG", "WEBP") and info.get("exif"):
        options["exif"] = info["exif"]
    return options


def _comparable(a: Image.Image, b: Image.Image) -> tuple[NDArray[Any], NDArray[Any]]:
    """Pixel arrays of two images in one shared mode."""
    if a.mode == b.mode and (a.mode in _EIGHT_BIT_MODES or a.mode in _SIXTEEN_BIT_MODES):
        return _pixels(_normalise_mode(a)), _pixels(_normalise_mode(b))
    alpha = any("A" in im.mode or "transparency" in im.info for im in (a, b))
    mode = "RGBA" if alpha else "RGB"
    return np.asarray(a.convert(mode)), np.asarray(b.convert(mode))
