"""Image bytes: every accepted format, damaged and oversized files, the pixel limit, read errors."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mori import keys
from mori.batch.manifest import MAX_IMAGE_PIXELS, RowError, ValidationOptions, inspect_image, load
from mori.batch.manifest import images as images_module
from tests.support.images import FORMATS, image_bytes, write_image, write_manifest

from .support import MANIFEST_KINDS, DenyingStorage, gif_bytes, load_rows, noisy_jpeg, only


def row_error(data: bytes) -> RowError:
    """The :class:`RowError` ``inspect_image(data)`` raises."""
    with pytest.raises(RowError) as info:
        inspect_image(data)
    return info.value


def png_header(width: int, height: int) -> bytes:
    """A PNG (8-bit grey) claiming ``width`` x ``height``, with one tiny IDAT chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 9))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose frame header claims ``width`` x ``height``."""
    data = bytearray(image_bytes("JPEG", (8, 8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_every_accepted_format_is_read_and_fingerprinted(tmp_path: Path, kind: str) -> None:
    written: dict[str, tuple[bytes, tuple[int, int], str]] = {}
    for n, (fmt, ext) in enumerate(FORMATS.items()):
        size = (5 + n, 3 + 2 * n)
        rel = f"img/{fmt.lower()}.{ext}"
        written[rel] = (write_image(tmp_path / rel, fmt, size, seed=n), size, fmt)

    items = load_rows(tmp_path, [{"source": rel} for rel in written], kind=kind)

    assert [it.row_index for it in items] == list(range(len(written)))
    for it, (rel, (data, size, fmt)) in zip(items, written.items(), strict=True):
        assert it.ok, (it.error_code, it.error_message)
        digest = hashlib.sha256(data).hexdigest()
        assert it.kind == "file"
        assert it.source == rel
        assert it.location == str((tmp_path / rel).resolve())
        assert it.file_name == Path(rel).name
        assert (it.sha256, it.bytes, it.fingerprint) == (digest, len(data), f"sha256:{digest}")
        assert (it.width, it.height, it.format) == (*size, fmt)
        assert it.image_key == keys.image_key(it.fingerprint)
    assert len({it.image_key for it in items}) == len(items)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_inspect_image_reports_facts(fmt: str) -> None:
    data = image_bytes(fmt, (7, 4), seed=5)
    facts = inspect_image(data)
    assert (facts.width, facts.height, facts.format, facts.size) == (7, 4, fmt, len(data))
    assert facts.sha256 == hashlib.sha256(data).hexdigest()


def test_inspect_image_checks_size_before_decoding() -> None:
    data = b"not even an image" * 10
    with pytest.raises(RowError) as info:
        inspect_image(data, max_bytes=len(data) - 1)
    assert info.value.code == "FILE_TOO_LARGE"
    assert row_error(data).code == "INVALID_IMAGE"


def test_file_size_limit_is_inclusive(tmp_path: Path) -> None:
    data = write_image(tmp_path / "a.jpg", seed=3)
    rows = [{"source": "a.jpg"}]
    at_limit = only(load_rows(tmp_path, rows, ValidationOptions(max_file_bytes=len(data))))
    over = only(load_rows(tmp_path, rows, ValidationOptions(max_file_bytes=len(data) - 1)))
    assert at_limit.ok
    assert over.error_code == "FILE_TOO_LARGE"
    assert over.sha256 is None


@pytest.mark.parametrize(
    ("data", "code", "names"),
    [
        (b"", "EMPTY_FILE", ""),
        (gif_bytes(), "UNSUPPORTED_FORMAT", "GIF"),
        (b"this is not an image\n" * 10, "INVALID_IMAGE", ""),
        (b"\xff\xd8\xff" + b"\x00" * 64, "INVALID_IMAGE", ""),  # JPEG magic, no JPEG
        (b"RIFF\x10\x00\x00\x00WEBPjunk" + b"\x00" * 32, "INVALID_IMAGE", ""),
        (b"RIFF\x10\x00\x00\x00AVI LIST" + b"\x00" * 32, "INVALID_IMAGE", ""),
        (b"BMW cars are not bitmaps" * 4, "INVALID_IMAGE", ""),
        (noisy_jpeg()[:600], "INVALID_IMAGE", "truncated"),
    ],
    ids=["empty", "gif", "text", "jpeg-magic", "webp-magic", "riff-avi", "bm-text", "cut-jpeg"],
)
def test_bad_bytes(data: bytes, code: str, names: str) -> None:
    error = row_error(data)
    assert error.code == code
    assert names in error.message


def test_an_mpo_file_is_not_a_plain_jpeg() -> None:
    buffer = io.BytesIO()
    first, second = Image.new("RGB", (6, 4), (1, 2, 3)), Image.new("RGB", (6, 4), (4, 5, 6))
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    error = row_error(buffer.getvalue())
    assert (error.code, "MPO" in error.message) == ("UNSUPPORTED_FORMAT", True)


@pytest.mark.parametrize(
    "data",
    [png_header(20_000, 10_000), jpeg_claiming(15_000, 15_000), png_header(65_535, 65_535)],
    ids=["png-200M", "jpeg-225M", "png-4G"],
)
def test_images_over_the_pixel_limit_are_refused_from_the_header(
    data: bytes, recwarn: pytest.WarningsRecorder
) -> None:
    error = row_error(data)
    assert error.code == "INVALID_IMAGE"
    assert f"{MAX_IMAGE_PIXELS:,}-pixel limit" in error.message
    assert not recwarn.list  # no DecompressionBombWarning (nor any other)


def test_a_large_unaccepted_image_is_named_without_being_opened(
    recwarn: pytest.WarningsRecorder,
) -> None:
    gif = b"GIF89a" + struct.pack("<HH", 10_000, 10_000) + b"\x00" * 32  # 100M pixels
    error = row_error(gif)
    assert (error.code, "GIF" in error.message) == ("UNSUPPORTED_FORMAT", True)
    assert not recwarn.list


def limits(monkeypatch: pytest.MonkeyPatch, ours: int, pillows: int) -> None:
    """Scale both pixel limits down, so that tiny images sit between and above them."""
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", ours)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillows)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_pillows_own_limit_neither_warns_nor_refuses_below_ours(
    monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder, fmt: str
) -> None:
    limits(monkeypatch, ours=250, pillows=150)  # Pillow would warn above 150, refuse above 300
    assert inspect_image(image_bytes(fmt, (20, 10))).width == 20  # 200 pixels
    with pytest.raises(RowError) as info:
        inspect_image(image_bytes(fmt, (16, 16)))  # 256 pixels: over ours
    assert info.value.message.endswith("16x16 is 256 pixels, over the 250-pixel limit")
    assert not recwarn.list


def test_a_tiff_is_held_to_pillows_limit_when_that_is_lower(
    monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    limits(monkeypatch, ours=1_000, pillows=150)
    assert inspect_image(image_bytes("TIFF", (10, 10))).height == 10
    with pytest.raises(RowError) as info:
        inspect_image(image_bytes("TIFF", (20, 10)))  # Pillow's TIFF decoder would warn
    assert info.value.message.endswith("over the 150-pixel limit")
    assert not recwarn.list


def test_pillows_own_refusal_is_a_clean_row_error(
    monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    limits(monkeypatch, ours=10_000, pillows=100)  # WebP's header check refuses above 200
    error = row_error(image_bytes("WEBP", (30, 30)))
    assert (error.code, "decompression bomb" in error.message) == ("INVALID_IMAGE", True)
    assert not recwarn.list


def test_importing_the_manifest_package_changes_no_pillow_setting() -> None:
    script = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS\n"
        "import mori.batch.manifest\n"
        "assert Image.MAX_IMAGE_PIXELS == before, Image.MAX_IMAGE_PIXELS\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def full_decode_facts(data: bytes) -> tuple[Any, ...]:
    """``Image.open`` and a full-size decode of every format: the reference."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return ("ok", img.size, img.format)
    except (OSError, SyntaxError, ValueError) as exc:
        return ("INVALID_IMAGE", f"image is damaged or truncated: {exc}")


def jpeg_variants() -> list[bytes]:
    rng = random.Random(9)
    noisy = Image.frombytes("RGB", (120, 90), rng.randbytes(120 * 90 * 3))
    out = []
    for mode, options in (
        ("RGB", {}),
        ("RGB", {"progressive": True}),
        ("RGB", {"subsampling": 0, "quality": 95}),
        ("L", {}),
        ("CMYK", {}),
    ):
        buffer = io.BytesIO()
        noisy.convert(mode).save(buffer, "JPEG", **options)
        out.append(buffer.getvalue())
    return out


@pytest.mark.parametrize("n", range(5))
def test_jpeg_checks_at_reduced_scale_fail_exactly_like_a_full_decode(n: int) -> None:
    data = jpeg_variants()[n]
    rng = random.Random(n)
    damaged = [data]
    damaged += [data[: int(len(data) * f)] for f in (0.2, 0.5, 0.8, 0.95, 0.99, 0.999)]
    for _ in range(40):  # flipped bytes in the entropy-coded data
        b = bytearray(data)
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b) // 3, len(b) - 2)] = rng.randrange(256)
        damaged.append(bytes(b))
    for sample in damaged:
        expected = full_decode_facts(sample)
        try:
            facts = inspect_image(sample)
            got: tuple[Any, ...] = ("ok", (facts.width, facts.height), facts.format)
        except RowError as exc:
            got = (exc.code, exc.message)
        assert got == expected


SAMPLES = [image_bytes(fmt, (9, 7), seed=3) for fmt in FORMATS] + [gif_bytes()]


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow reports damaged TIFF metadata
@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
)
def test_any_damage_is_a_row_error_never_an_exception(
    sample: bytes, cut: float, flips: list[tuple[float, int]]
) -> None:
    data = bytearray(sample[: max(1, int(len(sample) * cut))] if cut < 0.98 else sample)
    for where, value in flips:
        data[min(len(data) - 1, int(len(data) * where))] = value
    try:
        facts = inspect_image(bytes(data))
    except RowError as exc:
        assert exc.code in {"INVALID_IMAGE", "UNSUPPORTED_FORMAT"}
    else:
        assert facts.format in images_module.PIL_FORMATS


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_arbitrary_bytes_are_a_row_error_never_an_exception(data: bytes) -> None:
    with pytest.raises(RowError):
        inspect_image(data)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.jpg"
    write_image(path)
    path.chmod(0)
    try:
        try:
            path.read_bytes()
        except PermissionError:
            pass
        else:
            pytest.skip("running with privileges that ignore file permissions")
        item = only(load_rows(tmp_path, [{"source": "locked.jpg"}]))
    finally:
        path.chmod(0o644)
    assert item.error_code == "FILE_UNREADABLE"


@pytest.mark.parametrize(
    "error", [PermissionError(13, "Permission denied"), OSError(5, "Input/output error")]
)
def test_read_errors_become_file_unreadable(tmp_path: Path, error: OSError) -> None:
    write_image(tmp_path / "a.jpg", seed=1)
    write_image(tmp_path / "b.jpg", seed=2)
    manifest = write_manifest(tmp_path / "m.csv", [{"source": "a.jpg"}, {"source": "b.jpg"}])
    storage = DenyingStorage((tmp_path / "a.jpg").resolve(), error)
    a, b = load(str(manifest), storage)
    assert a.error_code == "FILE_UNREADABLE"
    assert b.ok
