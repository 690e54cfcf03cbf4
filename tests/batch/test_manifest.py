"""Manifests: reading (CSV / Parquet / JSONL, local and S3), row validation, fingerprints, keys."""

from __future__ import annotations

import hashlib
import io
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from mori import keys
from mori.batch.manifest import (
    MAX_FILE_NAME_BYTES,
    Item,
    ManifestError,
    RowError,
    ValidationOptions,
    classify,
    inspect_image,
    load,
)
from mori.batch.storage import Storage

from .helpers import FORMATS, image_bytes, write_image, write_manifest

MANIFEST_KINDS = ("csv", "parquet", "jsonl")


def noisy_jpeg(seed: int = 1, size: int = 64) -> bytes:
    """A JPEG whose entropy-coded data is long enough that cutting it leaves a truncated image."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG")
    return buffer.getvalue()


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="GIF")
    return buffer.getvalue()


def load_rows(
    folder: Path,
    rows: list[dict[str, Any]],
    options: ValidationOptions | None = None,
    kind: str = "csv",
) -> list[Item]:
    """Write ``rows`` as a manifest in ``folder`` and load it."""
    manifest = write_manifest(folder / f"manifest.{kind}", rows)
    return load(str(manifest), Storage(), options)


def only(items: list[Item]) -> Item:
    assert len(items) == 1
    return items[0]


# -- every format, every manifest type ---------------------------------------------------------


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


def test_processing_options_are_part_of_the_image_key(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    opts = {"strength": "high"}
    plain = only(load_rows(tmp_path, [{"source": "a.jpg"}]))
    with_opts = only(
        load_rows(tmp_path, [{"source": "a.jpg"}], ValidationOptions(processing_options=opts))
    )
    assert with_opts.image_key == keys.image_key(with_opts.fingerprint or "", opts)
    assert with_opts.image_key != plain.image_key
    assert with_opts.fingerprint == plain.fingerprint


def test_absolute_paths_and_subfolders_are_accepted(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "abs.png"
    write_image(outside, "PNG", seed=1)
    write_image(tmp_path / "batch" / "deep" / "rel.jpg", seed=2)
    items = load_rows(tmp_path / "batch", [{"source": str(outside)}, {"source": "deep/rel.jpg"}])
    assert all(it.ok for it in items), [it.error_code for it in items]
    assert items[0].location == str(outside)
    assert items[1].location == str((tmp_path / "batch" / "deep" / "rel.jpg").resolve())


# -- row errors: files -------------------------------------------------------------------------

Setup = Callable[[Path], dict[str, Any]]


def _missing(d: Path) -> dict[str, Any]:
    return {"source": "nope.jpg"}


def _empty_source(d: Path) -> dict[str, Any]:
    return {"source": "", "id": "blank"}


def _empty_file(d: Path) -> dict[str, Any]:
    (d / "empty.jpg").write_bytes(b"")
    return {"source": "empty.jpg"}


def _truncated(d: Path) -> dict[str, Any]:
    data = noisy_jpeg()
    (d / "cut.jpg").write_bytes(data[: len(data) // 2])
    return {"source": "cut.jpg"}


def _gif_named_png(d: Path) -> dict[str, Any]:
    (d / "really-a-gif.png").write_bytes(gif_bytes())
    return {"source": "really-a-gif.png"}


def _gif_extension(d: Path) -> dict[str, Any]:
    (d / "anim.gif").write_bytes(gif_bytes())
    return {"source": "anim.gif"}


def _svg_extension(d: Path) -> dict[str, Any]:
    (d / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    return {"source": "logo.svg"}


def _text_named_jpg(d: Path) -> dict[str, Any]:
    (d / "notes.jpg").write_text("this is not an image\n" * 10)
    return {"source": "notes.jpg"}


def _no_extension(d: Path) -> dict[str, Any]:
    write_image(d / "photo")
    return {"source": "photo"}


def _traversal(d: Path) -> dict[str, Any]:
    write_image(d.parent / "x.jpg")  # exists, but outside the manifest's folder
    return {"source": "../x.jpg"}


def _traversal_via_subfolder(d: Path) -> dict[str, Any]:
    write_image(d.parent / "x.jpg")
    (d / "sub").mkdir()
    return {"source": "sub/../../x.jpg"}


def _symlink_out(d: Path) -> dict[str, Any]:
    write_image(d.parent / "secret.jpg")
    (d / "link.jpg").symlink_to(d.parent / "secret.jpg")
    return {"source": "link.jpg"}


def _folder_named_jpg(d: Path) -> dict[str, Any]:
    (d / "album.jpg").mkdir()
    return {"source": "album.jpg"}


def _folder(d: Path) -> dict[str, Any]:
    (d / "album").mkdir()
    return {"source": "album"}


def _long_name(d: Path) -> dict[str, Any]:
    write_image(d / "a.jpg")
    return {"source": "a.jpg", "file_name": "n" * (MAX_FILE_NAME_BYTES - 3) + ".jpg"}


def _long_utf8_name(d: Path) -> dict[str, Any]:
    write_image(d / "a.jpg")
    # 130 characters, but 256 bytes in UTF-8: the limit is in bytes.
    return {"source": "a.jpg", "file_name": "é" * 126 + ".jpg"}


def _name_with_slash(d: Path) -> dict[str, Any]:
    write_image(d / "a.jpg")
    return {"source": "a.jpg", "file_name": "dir/a.jpg"}


def _name_with_bad_extension(d: Path) -> dict[str, Any]:
    write_image(d / "a.jpg")
    return {"source": "a.jpg", "file_name": "a.gif"}


ROW_ERRORS: dict[str, tuple[Setup, str]] = {
    "missing file": (_missing, "FILE_NOT_FOUND"),
    "empty source": (_empty_source, "EMPTY_SOURCE"),
    "empty file": (_empty_file, "EMPTY_FILE"),
    "truncated jpeg": (_truncated, "INVALID_IMAGE"),
    "gif bytes named png": (_gif_named_png, "UNSUPPORTED_FORMAT"),
    "gif extension": (_gif_extension, "UNSUPPORTED_FORMAT"),
    "svg extension": (_svg_extension, "UNSUPPORTED_FORMAT"),
    "text named jpg": (_text_named_jpg, "INVALID_IMAGE"),
    "no extension": (_no_extension, "UNSUPPORTED_FORMAT"),
    "../ traversal": (_traversal, "PATH_TRAVERSAL"),
    "traversal through subfolder": (_traversal_via_subfolder, "PATH_TRAVERSAL"),
    "symlink leaving the folder": (_symlink_out, "PATH_TRAVERSAL"),
    "folder named .jpg": (_folder_named_jpg, "INVALID_SOURCE"),
    "folder": (_folder, "UNSUPPORTED_FORMAT"),
    "file name too long": (_long_name, "FILE_NAME_TOO_LONG"),
    "utf-8 file name too long": (_long_utf8_name, "FILE_NAME_TOO_LONG"),
    "file name with slash": (_name_with_slash, "INVALID_FILE_NAME"),
    "file name with bad extension": (_name_with_bad_extension, "UNSUPPORTED_FORMAT"),
}


@pytest.mark.parametrize("case", list(ROW_ERRORS))
@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_bad_row_gets_its_code_and_good_rows_stay_valid(
    tmp_path: Path, case: str, kind: str
) -> None:
    setup, code = ROW_ERRORS[case]
    folder = tmp_path / "batch"
    folder.mkdir()
    write_image(folder / "good-1.jpg", seed=11)
    write_image(folder / "good-2.png", "PNG", seed=12)
    bad = setup(folder)
    rows = [{"source": "good-1.jpg"}, bad, {"source": "good-2.png"}]

    items = load_rows(folder, rows, kind=kind)

    assert len(items) == 3
    assert items[1].error_code == code, items[1].error_message
    assert items[1].error_message
    assert not items[1].ok and items[1].image_key is None
    for good in (items[0], items[2]):
        assert good.ok, (good.error_code, good.error_message)
        assert good.image_key == keys.image_key(good.fingerprint or "")


def test_file_size_limit_is_inclusive(tmp_path: Path) -> None:
    data = write_image(tmp_path / "a.jpg", seed=3)
    rows = [{"source": "a.jpg"}]
    at_limit = only(load_rows(tmp_path, rows, ValidationOptions(max_file_bytes=len(data))))
    over = only(load_rows(tmp_path, rows, ValidationOptions(max_file_bytes=len(data) - 1)))
    assert at_limit.ok
    assert over.error_code == "FILE_TOO_LARGE"
    assert over.sha256 is None


def test_inspect_image_checks_size_before_decoding() -> None:
    data = b"not even an image" * 10
    with pytest.raises(RowError) as info:
        inspect_image(data, max_bytes=len(data) - 1)
    assert info.value.code == "FILE_TOO_LARGE"
    with pytest.raises(RowError) as info:
        inspect_image(data)
    assert info.value.code == "INVALID_IMAGE"


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_inspect_image_reports_facts(fmt: str) -> None:
    data = image_bytes(fmt, (7, 4), seed=5)
    facts = inspect_image(data)
    assert (facts.width, facts.height, facts.format, facts.size) == (7, 4, fmt, len(data))
    assert facts.sha256 == hashlib.sha256(data).hexdigest()


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


class DenyingStorage(Storage):
    """Local storage that refuses to read one path with a given error."""

    def __init__(self, denied: Path, error: OSError) -> None:
        super().__init__()
        self.denied, self.error = str(denied), error

    def read_bytes(self, uri: str) -> bytes:
        if uri == self.denied:
            raise self.error
        return super().read_bytes(uri)


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


def test_unreadable_manifest(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [{"source": "a.jpg"}])
    storage = DenyingStorage(manifest, PermissionError(13, "Permission denied"))
    assert manifest_error(manifest, storage).code == "MANIFEST_UNREADABLE"


def test_unicode_file_names_are_accepted(tmp_path: Path) -> None:
    names = ["写真 001.jpg", "café-Ünïcødé.png", "фото.webp"]
    for n, (name, fmt) in enumerate(zip(names, ["JPEG", "PNG", "WEBP"], strict=True)):
        write_image(tmp_path / name, fmt, seed=n)
    for kind in MANIFEST_KINDS:
        items = load_rows(tmp_path, [{"source": name} for name in names], kind=kind)
        assert [it.error_code for it in items] == [None] * len(names)
        assert [it.file_name for it in items] == names


def test_file_name_at_the_byte_limit_is_accepted(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    name = "n" * (MAX_FILE_NAME_BYTES - 4) + ".jpg"
    assert len(name.encode()) == MAX_FILE_NAME_BYTES
    item = only(load_rows(tmp_path, [{"source": "a.jpg", "file_name": name}]))
    assert item.ok and item.file_name == name


# -- duplicates --------------------------------------------------------------------------------


def test_duplicate_rows_point_at_the_first_row(tmp_path: Path) -> None:
    data = write_image(tmp_path / "a.jpg", seed=7)
    (tmp_path / "copy-of-a.jpg").write_bytes(data)  # same bytes, other name
    write_image(tmp_path / "b.jpg", seed=8)
    rows = [
        {"source": "b.jpg"},
        {"source": "a.jpg"},
        {"source": "a.jpg"},
        {"source": "copy-of-a.jpg"},
        {"source": "b.jpg"},
    ]
    items = load_rows(tmp_path, rows)
    assert [it.error_code for it in items] == [
        None,
        None,
        "DUPLICATE_ROW",
        "DUPLICATE_ROW",
        "DUPLICATE_ROW",
    ]
    for dup, first in ((items[2], 1), (items[3], 1), (items[4], 0)):
        assert f"row {first}" in (dup.error_message or "")
        assert dup.image_key is None
        assert dup.fingerprint == items[first].fingerprint


def test_same_url_in_two_spellings_is_a_duplicate(tmp_path: Path) -> None:
    rows = [
        {"source": "https://cdn.example.com/p/a.jpg"},
        {"source": "HTTPS://CDN.Example.com:443/p/a.jpg#top"},
        {"source": "https://cdn.example.com/p/a.jpg?v=2"},
    ]
    items = load_rows(tmp_path, rows)
    assert [it.error_code for it in items] == [None, "DUPLICATE_ROW", None]
    assert "row 0" in (items[1].error_message or "")


def test_same_bytes_with_other_options_are_not_duplicates_across_loads(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    a = only(
        load_rows(tmp_path, [{"source": "a.jpg"}], ValidationOptions(processing_options={"x": 1}))
    )
    b = only(
        load_rows(tmp_path, [{"source": "a.jpg"}], ValidationOptions(processing_options={"x": 2}))
    )
    assert a.ok and b.ok and a.image_key != b.image_key


# -- URL rows ----------------------------------------------------------------------------------


def test_public_url_row_needs_no_io(tmp_path: Path) -> None:
    url = "HTTPS://Images.Example.COM:443/a/b/Photo%20One.JPG?size=large#frag"
    item = only(load_rows(tmp_path, [{"source": url}]))
    assert item.ok, item.error_message
    assert item.kind == "url"
    assert item.location == keys.normalise_url(url)
    assert item.fingerprint == keys.url_fingerprint(url)
    assert item.image_key == keys.image_key(keys.url_fingerprint(url))
    assert item.file_name == "Photo One.JPG"
    assert item.sha256 is None and item.bytes is None


def test_url_without_extension_needs_a_file_name(tmp_path: Path) -> None:
    url = "https://cdn.example.com/render?id=3"
    bare, named = load_rows(
        tmp_path, [{"source": url}, {"source": url + "&x", "file_name": "r.png"}]
    )
    assert bare.error_code == "UNSUPPORTED_FORMAT"
    assert named.ok and named.file_name == "r.png"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd.jpg",
        "ftp://example.com/a.jpg",
        "javascript:alert(1)//a.jpg",
        "data:image/png;base64,iVBORw0KGgo=",
        "gopher://example.com/a.jpg",
    ],
)
def test_unsupported_schemes(tmp_path: Path, url: str) -> None:
    assert only(load_rows(tmp_path, [{"source": url}])).error_code == "UNSUPPORTED_SCHEME"


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2@example.com/a.jpg",
        "https://user@example.com/a.jpg",
        "http://:pw@example.com/a.jpg",
    ],
)
def test_urls_with_credentials_are_refused_without_echoing_them(tmp_path: Path, url: str) -> None:
    item = only(load_rows(tmp_path, [{"source": url}]))
    assert item.error_code == "URL_HAS_CREDENTIALS"
    assert "hunter2" not in (item.error_message or "")
    assert "pw" not in (item.error_message or "")


PRIVATE_URLS = [
    "http://127.0.0.1/a.jpg",
    "http://127.0.0.1:8080/a.jpg",
    "http://10.1.2.3/a.jpg",
    "http://172.16.5.4/a.jpg",
    "http://192.168.0.5/a.jpg",
    "http://100.64.0.1/a.jpg",
    "http://169.254.169.254/latest/a.jpg",
    "http://0.0.0.0/a.jpg",
    "http://[::1]/a.jpg",
    "http://[::1]:9000/a.jpg",
    "http://[fe80::1]/a.jpg",
    "http://[fd00::1]/a.jpg",
    "http://[::ffff:127.0.0.1]/a.jpg",
    "http://2130706433/a.jpg",
    "http://0x7f000001/a.jpg",
    "http://localhost/a.jpg",
    "http://LocalHost:3000/a.jpg",
    "http://metadata.google.internal/a.jpg",
    "http://printer.local/a.jpg",
    "http://app.localhost/a.jpg",
    "http://224.0.0.1/a.jpg",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_internal_addresses_are_refused(tmp_path: Path, url: str) -> None:
    assert only(load_rows(tmp_path, [{"source": url}])).error_code == "URL_PRIVATE_ADDRESS"


@pytest.mark.parametrize(
    "host", ["127.1", "0x7f.1", "0177.0.0.1", "localhost.", "metadata.google.internal."]
)
def test_internal_address_spellings_are_refused(host: str) -> None:
    item = Item(0, f"http://{host}/a.jpg")
    classify(item, "/tmp", ValidationOptions())
    assert item.error_code == "URL_PRIVATE_ADDRESS"


@pytest.mark.parametrize(
    "url", ["https://example.com/a.jpg", "http://8.8.8.8/a.jpg", "https://[2606:4700::1111]/a.jpg"]
)
def test_public_hosts_are_accepted(tmp_path: Path, url: str) -> None:
    assert only(load_rows(tmp_path, [{"source": url}])).ok


def test_allowed_private_hosts_let_exactly_that_host_through(tmp_path: Path) -> None:
    options = ValidationOptions(allowed_private_hosts=frozenset({"127.0.0.1:8123"}))
    rows = [
        {"source": "http://127.0.0.1:8123/a.jpg"},
        {"source": "http://127.0.0.1:9999/b.jpg"},
        {"source": "http://localhost:8123/c.jpg"},
        {"source": "http://127.0.0.1/d.jpg"},
    ]
    items = load_rows(tmp_path, rows, options)
    assert [it.error_code for it in items] == [None, *["URL_PRIVATE_ADDRESS"] * 3]
    assert items[0].kind == "url" and items[0].location == "http://127.0.0.1:8123/a.jpg"

    any_port = ValidationOptions(allowed_private_hosts=frozenset({"127.0.0.1"}))
    assert all(it.ok for it in load_rows(tmp_path, rows[:2], any_port))


# -- manifest-level errors ---------------------------------------------------------------------


def manifest_error(uri: str | Path, storage: Storage | None = None) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load(str(uri), storage or Storage())
    assert str(info.value).startswith(info.value.code + ": ")
    return info.value


def test_manifest_not_found(tmp_path: Path) -> None:
    err = manifest_error(tmp_path / "missing.csv")
    assert err.code == "MANIFEST_NOT_FOUND"
    assert "missing.csv" in err.message


def test_manifest_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    assert manifest_error(tmp_path / "dir.csv").code == "MANIFEST_NOT_FOUND"


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_manifest_without_source_column(tmp_path: Path, kind: str) -> None:
    path = write_manifest(tmp_path / f"m.{kind}", [{"path": "a.jpg", "id": "1"}])
    err = manifest_error(path)
    assert err.code == "MANIFEST_MISSING_COLUMN"
    assert "path" in err.message  # names the columns it did find


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("m.csv", b""),
        ("m.csv", b"  \n\n"),
        ("m.csv", b"source\n"),
        ("m.csv", b"source,id,extra\n"),
        ("m.jsonl", b""),
        ("m.parquet", b""),
    ],
)
def test_empty_manifest(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    assert manifest_error(tmp_path / name).code == "MANIFEST_EMPTY"


def test_parquet_with_no_rows_is_empty(tmp_path: Path) -> None:
    pd.DataFrame({"source": pd.Series([], dtype=str)}).to_parquet(tmp_path / "m.parquet")
    assert manifest_error(tmp_path / "m.parquet").code == "MANIFEST_EMPTY"


def test_parquet_with_integer_source_is_the_wrong_schema(tmp_path: Path) -> None:
    pd.DataFrame({"source": [1, 2, 3]}).to_parquet(tmp_path / "m.parquet")
    err = manifest_error(tmp_path / "m.parquet")
    assert err.code == "MANIFEST_WRONG_SCHEMA"
    assert "int" in err.message


@pytest.mark.parametrize("name", ["m.xlsx", "m.yaml", "m.zip"])
def test_unsupported_manifest_type(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"source\na.jpg\n")
    assert manifest_error(tmp_path / name).code == "MANIFEST_UNSUPPORTED_FORMAT"


@pytest.mark.parametrize(
    ("name", "content"), [("m.parquet", b"PAR1 this is not parquet"), ("m.jsonl", b"{not json\n")]
)
def test_unparseable_manifest(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    assert manifest_error(tmp_path / name).code == "MANIFEST_UNREADABLE"


def test_csv_with_a_utf8_bom(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    (tmp_path / "m.csv").write_bytes("\ufeffsource,id\na.jpg,first\n".encode())
    item = only(load(str(tmp_path / "m.csv"), Storage()))
    assert item.ok, item.error_message
    assert item.caller_id == "first"
    assert item.extra == {}


# -- columns -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_id_file_name_and_extra_columns(tmp_path: Path, kind: str) -> None:
    write_image(tmp_path / "a.jpg", seed=1)
    write_image(tmp_path / "b.png", "PNG", seed=2)
    rows = [
        {"source": "a.jpg", "id": "cust-1", "file_name": "renamed.jpg", "album": "x", "rank": "3"},
        {"source": "b.png", "id": "cust-2", "file_name": "", "album": "y", "rank": "4"},
    ]
    items = load_rows(tmp_path, rows, kind=kind)
    assert all(it.ok for it in items)
    assert [it.caller_id for it in items] == ["cust-1", "cust-2"]
    assert [it.file_name for it in items] == ["renamed.jpg", "b.png"]  # empty -> the base name
    assert [it.extra for it in items] == [{"album": "x", "rank": "3"}, {"album": "y", "rank": "4"}]


def test_parquet_extra_columns_keep_their_types(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    pd.DataFrame({"source": ["a.jpg"], "count": [7], "score": [0.5]}).to_parquet(
        tmp_path / "m.parquet"
    )
    item = only(load(str(tmp_path / "m.parquet"), Storage()))
    assert item.extra == {"count": 7, "score": 0.5}
    assert isinstance(item.extra["count"], int)
    assert isinstance(item.extra["score"], float)


def test_mixed_manifest_gives_one_item_per_row(tmp_path: Path) -> None:
    """Every row, good or bad, comes back once, in order, with its own outcome."""
    folder = tmp_path / "batch"
    expected: list[str | None] = []
    rows: list[dict[str, Any]] = []
    for n, (setup, code) in enumerate(ROW_ERRORS.values()):
        write_image(folder / f"good-{n}.jpg", seed=100 + n)
        rows.append({"source": f"good-{n}.jpg"})
        expected.append(None)
        if setup is _folder or setup is _folder_named_jpg:
            continue  # those need the folder; covered above
        folder.mkdir(exist_ok=True)
        rows.append(setup(folder))
        expected.append(code)
    rows.append({"source": "https://example.com/u.jpg"})
    expected.append(None)
    items = load_rows(folder, rows)
    assert [it.error_code for it in items] == expected
    assert [it.row_index for it in items] == list(range(len(rows)))
    assert all((it.image_key is not None) == it.ok for it in items)


# -- S3 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_s3_manifest_and_sources(tmp_path: Path, s3: Any, kind: str) -> None:
    rel = s3.put("batch/img/a.jpg", image_bytes("JPEG", (9, 4), seed=1))
    other = s3.put("other/b.png", image_bytes("PNG", (3, 3), seed=2))
    rows = [
        {"source": "img/a.jpg", "id": "rel"},
        {"source": other, "id": "abs"},
        {"source": f"s3://{s3.bucket}/batch/nope.jpg"},
        {"source": "img/missing.jpg"},
        {"source": "s3://no-such-bucket-for-tests/x.jpg"},
        {"source": f"s3://{s3.bucket}/"},
        {"source": "/etc/abs.jpg"},
    ]
    local = write_manifest(tmp_path / f"m.{kind}", rows)
    uri = s3.put(f"batch/manifest.{kind}", local.read_bytes())

    items = load(uri, s3.storage)

    assert [it.error_code for it in items] == [
        None,
        None,
        "FILE_NOT_FOUND",
        "FILE_NOT_FOUND",
        "FILE_NOT_FOUND",
        "INVALID_SOURCE",
        "INVALID_SOURCE",
    ]
    a, b = items[0], items[1]
    # A relative row in an S3 manifest resolves to an object beside the manifest (its ``kind`` is
    # "file", as for any relative path; only the location matters downstream).
    assert (a.location, a.file_name, a.width, a.height) == (rel, "a.jpg", 9, 4)
    assert a.kind != "url"
    assert (b.kind, b.location, b.format) == ("s3", other, "PNG")
    assert a.sha256 == hashlib.sha256(image_bytes("JPEG", (9, 4), seed=1)).hexdigest()


def test_s3_manifest_not_found(s3: Any) -> None:
    err = manifest_error(f"s3://{s3.bucket}/nope.csv", s3.storage)
    assert err.code == "MANIFEST_NOT_FOUND"


def test_s3_source_from_a_local_manifest_and_size_limit(tmp_path: Path, s3: Any) -> None:
    data = image_bytes("WEBP", seed=4)
    uri = s3.put("x/c.webp", data)
    write_manifest(tmp_path / "m.csv", [{"source": uri}])
    ok = only(load(str(tmp_path / "m.csv"), s3.storage))
    big = only(
        load(str(tmp_path / "m.csv"), s3.storage, ValidationOptions(max_file_bytes=len(data) - 1))
    )
    assert ok.ok and ok.format == "WEBP"
    assert big.error_code == "FILE_TOO_LARGE"


def test_relative_traversal_out_of_the_bucket_is_refused() -> None:
    item = Item(0, "../../x.jpg")
    classify(item, "s3://bucket/batch", ValidationOptions())
    assert item.error_code == "PATH_TRAVERSAL"


@pytest.mark.parametrize("source", ["../x.jpg", "img/../../x.jpg"])
def test_relative_traversal_out_of_an_s3_manifest_folder_is_refused(source: str) -> None:
    item = Item(0, source)
    classify(item, "s3://bucket/batch", ValidationOptions())
    assert item.error_code == "PATH_TRAVERSAL", item.location


def test_manifest_reading_is_independent_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_image(tmp_path / "batch" / "a.jpg")
    manifest = write_manifest(tmp_path / "batch" / "m.csv", [{"source": "a.jpg"}])
    monkeypatch.chdir(tmp_path)
    item = only(load(os.path.relpath(manifest), Storage()))
    assert item.ok and item.location == str((tmp_path / "batch" / "a.jpg").resolve())
