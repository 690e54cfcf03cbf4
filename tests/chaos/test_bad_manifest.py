"""Bad input, end to end (bad rows never stop a batch; invariant 2 of docs/ARCHITECTURE.md).

ONE run of the real ``protect`` flow on a manifest mixing 45+ kinds of bad rows with good ones
(files of every format, a unicode name, S3 objects, public URL rows): every bad row gets its own
``failed`` audit row with its stable code and a message, every good row is ``processed``. Then
whole-manifest problems through the ``mori-pipeline run`` CLI: one clear line on stderr, exit
code 1, no audit folder and no ledger.

The unit-level corpus (every kind in every manifest format) is under ``tests/mori/batch/manifest/``.
"""

from __future__ import annotations

import io
import json
import random
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from deployments.stack import static_files
from mori.batch.manifest import MAX_FILE_BYTES, MAX_FILE_NAME_BYTES
from mori.emulator import EmulatorConfig, EmulatorServer
from mori.emulator.s3server import s3_client

from .helpers import (
    VENV_BIN,
    ChaosStack,
    audit_table,
    child_env,
    decodes,
    image_bytes,
)

Row = dict[str, Any]


def _noisy_jpeg(seed: int) -> bytes:
    return image_bytes(random.Random(seed), "JPEG", (64, 64))


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="GIF")
    return buffer.getvalue()


def _png_bomb() -> bytes:
    """A PNG header claiming 40000 x 40000 pixels (a decompression bomb), with no real data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


class Corpus:
    """Builds the folder and the manifest rows; remembers what each row expects."""

    def __init__(self, root: Path, host: str, bucket: str, s3: Any) -> None:
        self.root, self.host, self.bucket, self.s3 = root, host, bucket, s3
        self.rows: list[Row] = []
        self.expected: list[str | None] = []  # error code, or None for a good row
        self.kinds: list[str] = []
        self.rng = random.Random(99)

    def write(self, rel: str, data: bytes) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return rel

    def good_image(self, rel: str, fmt: str = "JPEG") -> str:
        return self.write(rel, image_bytes(self.rng, fmt))

    def add(self, kind: str, code: str | None, source: str, **extra: Any) -> None:
        self.rows.append({"source": source, "id": kind, **extra})
        self.expected.append(code)
        self.kinds.append(kind)


def build(c: Corpus) -> None:
    """Good rows first and between, bad rows of every kind."""
    h, b = c.host, c.bucket
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tiff")):
        c.add(f"good {ext}", None, c.good_image(f"images/good.{ext}", fmt))
    c.add("good bmp, absolute path", None, str(c.root / c.good_image("images/abs.bmp", "BMP")))
    c.add("good unicode name", None, c.good_image("images/写真 ü-ñ №1.jpg"))
    c.add("good jpg, own file_name", None, c.good_image("images/x.jpg"), file_name="renamed.jpeg")
    for i in range(3):
        c.good_image(f"web/u{i}.png", "PNG")
        c.add(f"good url {i}", None, f"http://{h}/u{i}.png")
    c.s3.put_object(Bucket=b, Key="in/good.png", Body=image_bytes(c.rng, "PNG"))
    c.add("good s3 object", None, f"s3://{b}/in/good.png")

    # -- files ---------------------------------------------------------------------------------
    c.add("missing file", "FILE_NOT_FOUND", "images/nope.jpg")
    c.add("missing absolute path", "FILE_NOT_FOUND", str(c.root / "nowhere" / "x.png"))
    c.add("windows drive path", "FILE_NOT_FOUND", "C:\\photos\\x.jpg")
    c.add("empty source", "EMPTY_SOURCE", "")
    c.add("empty file", "EMPTY_FILE", c.write("images/empty.jpg", b""))
    jpeg = _noisy_jpeg(3)
    c.add("truncated jpeg", "INVALID_IMAGE", c.write("images/cut.jpg", jpeg[: len(jpeg) // 2]))
    c.add("header-only jpeg", "INVALID_IMAGE", c.write("images/head.jpg", jpeg[:20]))
    c.add("gif bytes named png", "UNSUPPORTED_FORMAT", c.write("images/gif.png", _gif()))
    c.add("gif extension", "UNSUPPORTED_FORMAT", c.write("images/anim.gif", _gif()))
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    c.add("svg", "UNSUPPORTED_FORMAT", c.write("images/logo.svg", svg))
    c.add("text named jpg", "INVALID_IMAGE", c.write("images/notes.jpg", b"hello\n" * 50))
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    c.add("pdf named jpg", "INVALID_IMAGE", c.write("images/doc.jpg", pdf))
    c.add("zip named png", "INVALID_IMAGE", c.write("images/arch.png", b"PK\x03\x04" + b"\0" * 60))
    c.add("decompression bomb", "INVALID_IMAGE", c.write("images/bomb.png", _png_bomb()))
    c.add("no extension", "UNSUPPORTED_FORMAT", c.good_image("images/noext"))
    big = c.root / "images" / "huge.jpg"  # sparse: the size check needs no 30 MB of real data
    with big.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    c.add("over the size limit", "FILE_TOO_LARGE", "images/huge.jpg")
    c.good_image("../outside.jpg")
    c.add("../ traversal", "PATH_TRAVERSAL", "../outside.jpg")
    (c.root / "images" / "sub").mkdir(parents=True, exist_ok=True)
    c.add("traversal via subfolder", "PATH_TRAVERSAL", "images/sub/../../../outside.jpg")
    (c.root / "images" / "link.jpg").symlink_to(c.root.parent / "outside.jpg")
    c.add("symlink leaving the folder", "PATH_TRAVERSAL", "images/link.jpg")
    (c.root / "images" / "album.jpg").mkdir()
    c.add("folder named .jpg", "INVALID_SOURCE", "images/album.jpg")
    c.add("NUL byte in path", "INVALID_SOURCE", "images/a\x00.jpg")

    # -- file names ----------------------------------------------------------------------------
    src = c.good_image("images/named.jpg")
    long_ascii = "n" * (MAX_FILE_NAME_BYTES - 3) + ".jpg"
    c.add("file name too long", "FILE_NAME_TOO_LONG", src, file_name=long_ascii)
    c.add("utf-8 file name too long", "FILE_NAME_TOO_LONG", src, file_name="é" * 126 + ".jpg")
    c.add("file name with slash", "INVALID_FILE_NAME", src, file_name="dir/a.jpg")
    c.add("file name with control char", "INVALID_FILE_NAME", src, file_name="a\tb.jpg")
    c.add("file name ..", "INVALID_FILE_NAME", src, file_name="..")
    c.add("file name with quote", "INVALID_FILE_NAME", src, file_name='say"cheese".jpg')
    c.add("file name .exe", "UNSUPPORTED_FORMAT", src, file_name="run.exe")

    # -- duplicates ----------------------------------------------------------------------------
    c.add("duplicate row (same path)", "DUPLICATE_ROW", "images/good.jpg")
    c.write("images/copy-of-good.png", (c.root / "images" / "good.png").read_bytes())
    c.add("duplicate content, other path", "DUPLICATE_ROW", "images/copy-of-good.png")
    c.add("duplicate url, other spelling", "DUPLICATE_ROW", f"HTTP://{h}/u0.png#frag")

    # -- schemes and URLs ----------------------------------------------------------------------
    c.add("file: URL", "UNSUPPORTED_SCHEME", "file:///etc/passwd.jpg")
    c.add("ftp: URL", "UNSUPPORTED_SCHEME", "ftp://example.com/a.jpg")
    c.add("javascript: URL", "UNSUPPORTED_SCHEME", "javascript:alert(1)//.jpg")
    c.add("data: URL", "UNSUPPORTED_SCHEME", "data:image/png;base64,iVBORw0KGgo=")
    c.add("gopher: URL", "UNSUPPORTED_SCHEME", "gopher://example.com/1/a.jpg")
    c.add("credentials in URL", "URL_HAS_CREDENTIALS", "https://user:pw@example.com/a.jpg")
    c.add("user only in URL", "URL_HAS_CREDENTIALS", "https://token@example.com/a.jpg")
    private = {
        "loopback": "http://127.0.0.1:9/a.jpg",
        "localhost": "http://localhost/a.jpg",
        "private 10/8": "http://10.1.2.3/a.jpg",
        "private 192.168/16": "http://192.168.0.10/a.jpg",
        "private 172.16/12": "http://172.20.0.5/a.jpg",
        "link-local metadata": "http://169.254.169.254/latest/a.jpg",
        "ipv6 loopback": "http://[::1]/a.jpg",
        "ipv6 link-local": "http://[fe80::1]/a.jpg",
        "decimal loopback": "http://2130706433/a.jpg",
        "hex loopback": "http://0x7f.1/a.jpg",
        "unspecified 0.0.0.0": "http://0.0.0.0/a.jpg",
        ".internal host": "http://metadata.google.internal/a.jpg",
        ".local host": "http://printer.local/a.jpg",
    }
    for kind, url in private.items():
        c.add(f"{kind} URL", "URL_PRIVATE_ADDRESS", url)
    c.add("URL without host", "INVALID_URL", "http:///a.jpg")
    c.add("URL with bad port", "INVALID_URL", "http://example.com:99999/a.jpg")
    c.add("URL without file name", "INVALID_FILE_NAME", "https://example.com/")
    c.add("URL to a gif", "UNSUPPORTED_FORMAT", "https://example.com/anim.gif")

    # -- S3 ------------------------------------------------------------------------------------
    c.add("s3 bucket only", "INVALID_SOURCE", f"s3://{b}/")
    c.add("s3 missing object", "FILE_NOT_FOUND", f"s3://{b}/in/missing.jpg")
    c.s3.put_object(Bucket=b, Key="in/text.jpg", Body=b"not an image")
    c.add("s3 object not an image", "INVALID_IMAGE", f"s3://{b}/in/text.jpg")


def run_protect(manifest: Path, host: str) -> Any:
    from flows.protect import protect

    state = protect(
        manifest=str(manifest),
        completion="poll",
        poll_interval_seconds=0.3,
        wait_timeout_seconds=60,
        allowed_private_hosts=[host],
        return_state=True,
    )
    assert state.is_completed(), state.message
    return state.result()


@pytest.mark.slow
def test_every_bad_row_fails_alone_and_every_good_row_is_processed(
    prefect: str, tmp_path: Path
) -> None:
    root = tmp_path / "batch"
    (root / "web").mkdir(parents=True)
    with static_files(root / "web") as host, ChaosStack(url_hosts=frozenset({host})) as stack:
        s3 = s3_client(stack.env["AWS_ENDPOINT_URL"])
        s3.create_bucket(Bucket="inputs")
        corpus = Corpus(root, host, "inputs", s3)
        build(corpus)
        manifest = root / "manifest.jsonl"
        manifest.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in corpus.rows),
            encoding="utf-8",
        )
        summary = run_protect(manifest, host)
        stats = stack.stats()

    images = audit_table(root / "audit", "images").set_index("row_index").sort_index()
    bad_kinds = [k for k, code in zip(corpus.kinds, corpus.expected, strict=True) if code]
    print(
        f"\nbad manifest: {len(corpus.rows)} rows, {len(bad_kinds)} bad kinds, "
        f"{len(set(c for c in corpus.expected if c))} codes; {summary.counts}"
    )
    assert len(bad_kinds) >= 30
    assert list(images.index) == list(range(len(corpus.rows)))
    wrong = []
    for i, (kind, code) in enumerate(zip(corpus.kinds, corpus.expected, strict=True)):
        row = images.loc[i]
        if code is None and row.status != "processed":
            wrong.append(f"{kind}: {row.status} {row.error_code} {row.error_message}")
        elif code is not None and (
            row.status != "failed" or row.error_code != code or not row.error_message
        ):
            wrong.append(f"{kind}: expected {code}, got {row.status} {row.error_code}")
    assert wrong == [], "\n".join(wrong)
    good = images[images.status == "processed"]
    for uri in good.output_uri:
        decodes(Path(uri).read_bytes())
    assert stats["duplicate_files"] == 0
    assert stats["files_processed"] == len(good)


# -- a bad URL must not take its neighbours down -----------------------------------------------


@pytest.mark.slow
def test_one_dead_url_does_not_fail_the_good_urls_of_its_order(
    prefect: str, tmp_path: Path
) -> None:
    root = tmp_path / "batch"
    rng = random.Random(5)
    (root / "web").mkdir(parents=True)
    for i in range(5):
        (root / "web" / f"ok{i}.png").write_bytes(image_bytes(rng, "PNG"))
    with static_files(root / "web") as host, ChaosStack(url_hosts=frozenset({host})):
        rows = [{"source": f"http://{host}/ok{i}.png"} for i in range(5)]
        rows.append({"source": f"http://{host}/gone.png"})  # 404 when MORI fetches it
        manifest = root / "manifest.csv"
        pd.DataFrame(rows).to_csv(manifest, index=False)
        first = run_protect(manifest, host)
        second = run_protect(manifest, host)  # a rerun does not rescue them either
    print(f"\ndead url: first {first.counts}, rerun {second.counts}")
    images = audit_table(root / "audit", "images")
    last = images[images.run_id == second.run_id].set_index("row_index").sort_index()
    assert last.loc[5].status == "failed" and last.loc[5].error_code == "FETCH_FAILED"
    assert set(last.loc[0:4].status) <= {"processed", "skipped"}, last.loc[0:4].status


# -- whole-manifest problems through the CLI ---------------------------------------------------

Setup = Callable[[Path], Path]


def _not_found(d: Path) -> Path:
    return d / "no-such-manifest.csv"


def _missing_column(d: Path) -> Path:
    (d / "m.csv").write_text("path,id\nimages/a.jpg,1\n", encoding="utf-8")
    return d / "m.csv"


def _empty_file(d: Path) -> Path:
    (d / "m.csv").write_bytes(b"")
    return d / "m.csv"


def _header_only(d: Path) -> Path:
    (d / "m.csv").write_text("source,id\n", encoding="utf-8")
    return d / "m.csv"


def _wrong_parquet_schema(d: Path) -> Path:
    pd.DataFrame({"source": [1, 2, 3], "id": ["a", "b", "c"]}).to_parquet(d / "m.parquet")
    return d / "m.parquet"


def _garbage_parquet(d: Path) -> Path:
    (d / "m.parquet").write_bytes(b"PAR1 this is not really parquet")
    return d / "m.parquet"


WHOLE_MANIFEST: dict[str, tuple[Setup, str]] = {
    "not found": (_not_found, "MANIFEST_NOT_FOUND"),
    "missing source column": (_missing_column, "MANIFEST_MISSING_COLUMN"),
    "empty file": (_empty_file, "MANIFEST_EMPTY"),
    "header only": (_header_only, "MANIFEST_EMPTY"),
    "parquet, wrong schema": (_wrong_parquet_schema, "MANIFEST_WRONG_SCHEMA"),
    "parquet, garbage": (_garbage_parquet, "MANIFEST_UNREADABLE"),
}


@pytest.mark.slow
def test_whole_manifest_problems_end_the_cli_run_with_one_line(
    prefect: str, tmp_path: Path
) -> None:
    # ``run`` checks MORI before it reads the manifest: a reachable emulator passes the check
    mori = EmulatorServer(EmulatorConfig(api_keys=frozenset({"sk-live-SECRET123"})))
    with mori:
        env = child_env(prefect, {"MORI_API_KEY": "sk-live-SECRET123", "MORI_API_URL": mori.url})
        _run_bad_manifests(env, tmp_path)
        assert mori.stats()["orders_created"] == 0


def _run_bad_manifests(env: dict[str, str], tmp_path: Path) -> None:
    started = {}
    for name, (setup, code) in WHOLE_MANIFEST.items():
        folder = tmp_path / name.replace(" ", "-").replace(",", "")
        folder.mkdir()
        manifest = setup(folder)
        started[name] = (
            folder,
            code,
            subprocess.Popen(
                [str(VENV_BIN / "mori-pipeline"), "run", "--manifest", str(manifest)],
                env=env,
                cwd=folder,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    problems = []
    for name, (folder, code, child) in started.items():
        out, err = child.communicate(timeout=120)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        if child.returncode != 1:
            problems.append(f"{name}: exit {child.returncode}")
        if len(errors) != 1 or code not in errors[0]:
            problems.append(f"{name}: expected one 'error: {code}...' line, got {errors}")
        if "Traceback" in err or "Traceback" in out:
            problems.append(f"{name}: a traceback was printed")
        left = sorted(p.name for p in folder.iterdir())
        if {"audit", "output", "ledger.sqlite"} & set(left):
            problems.append(f"{name}: wrote {left}")
        print(f"\n{name}: exit {child.returncode}; {errors}; stderr lines {len(err.splitlines())}")
    assert problems == [], "\n".join(problems)
