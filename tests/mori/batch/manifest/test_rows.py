"""Row-wise validation: sources, paths, file names and schemes; a bad row never stops the batch."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mori import keys
from mori.batch.manifest import MAX_FILE_NAME_BYTES, Item, ValidationOptions, classify, load
from mori.batch.manifest.rows import source_scheme
from tests.support.images import image_bytes, write_image, write_manifest

from .support import MANIFEST_KINDS, gif_bytes, load_rows, noisy_jpeg, only

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


def test_absolute_paths_and_subfolders_are_accepted(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "abs.png"
    write_image(outside, "PNG", seed=1)
    write_image(tmp_path / "batch" / "deep" / "rel.jpg", seed=2)
    items = load_rows(tmp_path / "batch", [{"source": str(outside)}, {"source": "deep/rel.jpg"}])
    assert all(it.ok for it in items), [it.error_code for it in items]
    assert items[0].location == str(outside)
    assert items[1].location == str((tmp_path / "batch" / "deep" / "rel.jpg").resolve())


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
    ("source", "code"),
    [
        ("s3://bucket/", "INVALID_SOURCE"),
        ("s3:///key.jpg", "INVALID_SOURCE"),
        ("s3://[bucket/key.jpg", "INVALID_SOURCE"),
        ("http://[::1/a.jpg", "INVALID_URL"),
        ("https://[zz]/a.jpg", "INVALID_URL"),
        ("c:\\photos\\a.jpg", "FILE_NOT_FOUND"),
    ],
)
def test_malformed_sources_are_row_errors(tmp_path: Path, source: str, code: str) -> None:
    assert only(load_rows(tmp_path, [{"source": source}], kind="jsonl")).error_code == code


def test_relative_traversal_out_of_the_bucket_is_refused() -> None:
    item = Item(0, "../../x.jpg")
    classify(item, "s3://bucket/batch", ValidationOptions())
    assert item.error_code == "PATH_TRAVERSAL"


@pytest.mark.parametrize("source", ["../x.jpg", "img/../../x.jpg"])
def test_relative_traversal_out_of_an_s3_manifest_folder_is_refused(source: str) -> None:
    item = Item(0, source)
    classify(item, "s3://bucket/batch", ValidationOptions())
    assert item.error_code == "PATH_TRAVERSAL", item.location


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


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("htps3fHTPS:/\\\t\n\x00 .-+a1@?#[]é"), max_size=16))
def test_source_scheme_is_the_scheme_urlsplit_finds(source: str) -> None:
    try:
        expected = urlsplit(source).scheme
    except ValueError:
        expected = None  # urlsplit gives up on the netloc; the scheme is still read
    if expected is not None:
        assert source_scheme(source) == expected


SOURCES = st.one_of(
    st.text(max_size=30),
    st.builds(
        "".join,
        st.lists(
            st.sampled_from(
                ["http", "s3", "c", ":", "//", "\\", "[", "]", "@", "..", "/", "a.jpg"]
            ),
            max_size=8,
        ),
    ),
)


@settings(max_examples=500, deadline=None)
@given(source=SOURCES, name=st.one_of(st.none(), st.text(max_size=12)))
def test_classify_never_raises(source: str, name: str | None) -> None:
    item = Item(0, source, file_name=name)
    classify(item, "/nonexistent-manifest-folder", ValidationOptions())
    assert item.ok or (item.error_code and item.error_message)
    if item.ok:
        assert item.kind and item.location and item.file_name
