"""The stand-in filter: real, deterministic, small perturbations in the input's format."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from mori.emulator.imaging import InvalidImageError, image_format, perturb, psnr
from tests.support.images import make_image

CASES = [
    ("JPEG", "RGB"),
    ("JPEG", "L"),
    ("JPEG", "CMYK"),
    ("PNG", "RGB"),
    ("PNG", "RGBA"),
    ("PNG", "L"),
    ("PNG", "LA"),
    ("WEBP", "RGB"),
    ("WEBP", "RGBA"),
    ("TIFF", "RGB"),
    ("TIFF", "CMYK"),
    ("BMP", "RGB"),
    ("BMP", "L"),
]


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(("fmt", "mode"), CASES)
def test_perturb_keeps_format_and_size_and_changes_pixels(fmt: str, mode: str) -> None:
    source = make_image(fmt, mode)
    output = perturb(source)
    before, after = _open(source), _open(output)
    assert after.format == fmt
    assert after.size == before.size
    assert after.mode == before.mode
    assert not np.array_equal(np.asarray(before), np.asarray(after))
    assert psnr(source, output) >= 35


def test_perturb_is_deterministic() -> None:
    source = make_image("PNG")
    assert perturb(source) == perturb(source)
    assert perturb(make_image("PNG", size=(48, 33))) != perturb(source)


def test_alpha_is_kept() -> None:
    source = make_image("PNG", "RGBA")
    alpha_before = np.asarray(_open(source))[..., 3]
    alpha_after = np.asarray(_open(perturb(source)))[..., 3]
    assert np.array_equal(alpha_before, alpha_after)


def test_every_pixel_changes_even_at_the_range_limits() -> None:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buffer, format="PNG")
    white = buffer.getvalue()
    pixels = np.asarray(_open(perturb(white)))
    assert (pixels < 255).all() and (pixels >= 253).all()


def test_palette_and_bilevel_images_are_converted() -> None:
    for mode, expected in (("P", "RGB"), ("1", "L")):
        buffer = io.BytesIO()
        Image.open(io.BytesIO(make_image("PNG"))).convert(mode).save(buffer, format="PNG")
        output = perturb(buffer.getvalue())
        assert _open(output).mode == expected
        assert psnr(buffer.getvalue(), output) >= 35


def test_sixteen_bit_png_stays_sixteen_bit() -> None:
    values = (np.arange(32 * 16, dtype=np.uint16) * 97).reshape(16, 32)
    buffer = io.BytesIO()
    Image.frombytes("I;16", (32, 16), values.astype("<u2").tobytes()).save(buffer, format="PNG")
    output = perturb(buffer.getvalue())
    assert _open(output).mode in ("I;16", "I")
    assert psnr(buffer.getvalue(), output) >= 35


@pytest.mark.parametrize("data", [b"", b"not an image", make_image("PNG")[:40]])
def test_undecodable_input_is_an_invalid_image(data: bytes) -> None:
    with pytest.raises(InvalidImageError) as caught:
        perturb(data)
    assert caught.value.code == "INVALID_IMAGE"


def test_unsupported_format_is_an_invalid_image() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="GIF")
    with pytest.raises(InvalidImageError, match="GIF"):
        perturb(buffer.getvalue())


def test_psnr() -> None:
    source = make_image("PNG")
    assert math.isinf(psnr(source, source))
    with pytest.raises(ValueError, match="sizes differ"):
        psnr(source, make_image("PNG", size=(10, 10)))
    assert image_format(make_image("WEBP")) == "WEBP"
