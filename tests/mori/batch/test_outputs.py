"""An output's check (header or full decode) and write: what is written, what fails and why."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from mori.batch.archive import OutputError
from mori.batch.ledger import ImageOutcome, Slot
from mori.batch.outputs import content_type, write_output
from mori.batch.storage import Storage
from mori.settings import Settings, Verification
from tests.mori.batch.manifest.support import noisy_jpeg

KEY = "0123456789abcdef" * 4


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (9, 8, 7)).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD = noisy_jpeg(size=64)
CUT = GOOD[: len(GOOD) // 2]  # the header is whole, the image data is cut short


@pytest.mark.parametrize(
    ("data", "verification", "error"),
    [
        (GOOD, "header", None),
        (GOOD, "decode", None),
        (CUT, "header", None),  # the header alone does not see the damage
        (CUT, "decode", "OUTPUT_INVALID"),
        (png(64, 32), "header", "OUTPUT_DIMENSIONS"),
        (png(64, 32), "decode", "OUTPUT_DIMENSIONS"),
        (b"not an image at all", "header", "OUTPUT_INVALID"),
        (b"", "header", "OUTPUT_INVALID"),
        (OutputError("OUTPUT_MISSING", "no file for it"), "header", "OUTPUT_MISSING"),
    ],
    ids=[
        "good-header",
        "good-decode",
        "cut-header",
        "cut-decode",
        "dimensions-header",
        "dimensions-decode",
        "garbage",
        "empty",
        "missing",
    ],
)
def test_write_output(
    tmp_path: Path, data: bytes | OutputError, verification: Verification, error: str | None
) -> None:
    slot = Slot(0, KEY, "cat.photo.jpg", "/in/cat.photo.jpg", 64, 64)
    outcome = write_output(Storage(), slot, data, str(tmp_path), verification)
    written = sorted(p.name for p in tmp_path.iterdir())
    if error is None:
        assert isinstance(data, bytes)
        uri = str(tmp_path / f"cat.photo-{KEY[:8]}.jpg")
        assert outcome == ImageOutcome(KEY, uri, hashlib.sha256(data).hexdigest())
        assert Path(uri).read_bytes() == data and written == [Path(uri).name]
    else:
        assert (outcome.image_key, outcome.output_uri, outcome.output_sha256) == (KEY, None, None)
        assert outcome.error_code == error and outcome.error_message
        assert written == []


def test_a_source_of_unknown_dimensions_accepts_any(tmp_path: Path) -> None:
    slot = Slot(0, KEY, "a.png", "/in/a.png")
    outcome = write_output(Storage(), slot, png(5, 7), str(tmp_path), "header")
    assert outcome.error_code is None
    assert outcome.output_uri == str(tmp_path / f"a-{KEY[:8]}.png")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.jpg", "image/jpeg"), ("b.JPEG", "image/jpeg"), ("c.png", "image/png"),
     ("d.webp", "image/webp"), ("e.tiff", "image/tiff"), ("f.bmp", "image/bmp"),
     ("g.gif", None), ("noext", None)],
)  # fmt: skip
def test_content_type(name: str, expected: str | None) -> None:
    assert content_type(name) == expected


def test_the_environment_chooses_the_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MORI_VERIFY_OUTPUTS", raising=False)
    assert Settings().verify_outputs == "header"
    monkeypatch.setenv("MORI_VERIFY_OUTPUTS", "decode")
    assert Settings().verify_outputs == "decode"
    monkeypatch.setenv("MORI_VERIFY_OUTPUTS", "pixels")
    with pytest.raises(ValidationError):
        Settings()
