"""Matching MORI's result files to an order's images: every layout, and the ambiguous cases."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import pytest

from mori.batch.archive import OutputError, extract_outputs, is_zip


@dataclass(frozen=True)
class S:
    position: int
    file_name: str


def zipped(*entries: str | tuple[str, bytes]) -> bytes:
    """A zip of ``entries``: a name (content ``b"<name>"``, a folder when it ends in ``/``)
    or a ``(name, content)`` pair."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for entry in entries:
            name, data = entry if isinstance(entry, tuple) else (entry, entry.encode())
            if name.endswith("/"):
                zf.writestr(zipfile.ZipInfo(name), b"")
            else:
                zf.writestr(name, data)
    return buffer.getvalue()


def outputs(archive: bytes, *names: str) -> dict[int, bytes | str]:
    """The result per position: the entry's bytes, or the error code."""
    found = extract_outputs(archive, [S(i, n) for i, n in enumerate(names)])
    return {p: v.code if isinstance(v, OutputError) else v for p, v in found.items()}


CAT, DOG, BIRD = "cat.jpg", "dog.png", "bird.webp"


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        # 1. index folders (MORI's {index}/{fileName}), whatever the names say
        (["0/cat.jpg", "1/dog.png", "2/bird.webp"], ["0/cat.jpg", "1/dog.png", "2/bird.webp"]),
        (["2/x.jpg", "0/y.jpg", "1/z.jpg"], ["0/y.jpg", "1/z.jpg", "2/x.jpg"]),
        (
            ["order-9/0/cat.jpg", "order-9/1/dog.png", "order-9/2/bird.webp"],
            ["order-9/0/cat.jpg", "order-9/1/dog.png", "order-9/2/bird.webp"],
        ),
        (["1/cat.jpg", "2/dog.png", "3/bird.webp"], ["1/cat.jpg", "2/dog.png", "3/bird.webp"]),
        # 2. exact file names
        (["dog.png", "bird.webp", "cat.jpg"], ["cat.jpg", "dog.png", "bird.webp"]),
        (
            ["out/dog.png", "out/cat.jpg", "out/bird.webp"],
            ["out/cat.jpg", "out/dog.png", "out/bird.webp"],
        ),
        # 3. stem plus a suffix, any extension
        (
            ["cat_protected.jpg", "dog-protected.png", "bird.protected.png"],
            ["cat_protected.jpg", "dog-protected.png", "bird.protected.png"],
        ),
        (["dog.jpg", "cat.png", "bird.jpg"], ["cat.png", "dog.jpg", "bird.jpg"]),
        # mixed rounds: an index folder, an exact name, a stem
        (["0/cat.jpg", "dog.png", "bird_v2.webp"], ["0/cat.jpg", "dog.png", "bird_v2.webp"]),
        # 4. archive order when nothing matched and the counts agree
        (["a.jpg", "b.jpg", "c.jpg"], ["a.jpg", "b.jpg", "c.jpg"]),
    ],
    ids=[
        "index",
        "index-unordered",
        "index-nested",
        "index-1-based",
        "names",
        "names-in-folder",
        "stems",
        "stems-other-ext",
        "mixed-rounds",
        "archive-order",
    ],
)
def test_layouts(entries: list[str], expected: list[str]) -> None:
    found = outputs(zipped(*entries), CAT, DOG, BIRD)
    assert found == {i: name.encode() for i, name in enumerate(expected)}


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_two_images_with_the_same_name_named_by_file_name_only() -> None:
    found = outputs(zipped("cat.jpg", "cat.jpg", "dog.png"), CAT, CAT, DOG)
    assert found == {0: "OUTPUT_AMBIGUOUS", 1: "OUTPUT_AMBIGUOUS", 2: b"dog.png"}
    message = extract_outputs(zipped("cat.jpg", "cat.jpg"), [S(0, CAT), S(1, CAT)])[0]
    assert isinstance(message, OutputError) and "cat.jpg" in message.message


def test_two_images_with_the_same_name_in_index_folders() -> None:
    archive = zipped(("0/cat.jpg", b"first"), ("1/cat.jpg", b"second"))
    assert outputs(archive, CAT, CAT) == {0: b"first", 1: b"second"}


def test_same_stem_different_extensions_prefer_the_same_extension() -> None:
    archive = zipped("cat_protected.png", "cat_protected.jpg")
    assert outputs(archive, "cat.jpg", "cat.png") == {
        0: b"cat_protected.jpg",
        1: b"cat_protected.png",
    }


def test_same_stem_and_no_extension_to_tell_them_apart() -> None:
    archive = zipped("cat_protected.webp", "cat_protected2.webp")
    assert outputs(archive, "cat.jpg", "cat.png") == {0: "OUTPUT_AMBIGUOUS", 1: "OUTPUT_AMBIGUOUS"}


def test_the_longest_stem_wins() -> None:
    archive = zipped("cat_2_protected.jpg", "cat_protected.jpg")
    assert outputs(archive, "cat.jpg", "cat_2.jpg") == {
        0: b"cat_protected.jpg",
        1: b"cat_2_protected.jpg",
    }


def test_two_files_in_one_index_folder() -> None:
    archive = zipped("0/cat.jpg", "0/cat_copy.jpg", "1/dog.png")
    assert outputs(archive, CAT, DOG) == {0: "OUTPUT_AMBIGUOUS", 1: b"1/dog.png"}


def test_missing_entries() -> None:
    assert outputs(zipped("0/cat.jpg"), CAT, DOG) == {0: b"0/cat.jpg", 1: "OUTPUT_MISSING"}
    assert outputs(zipped("x.jpg"), CAT, DOG) == {0: "OUTPUT_MISSING", 1: "OUTPUT_MISSING"}
    assert outputs(zipped(), CAT) == {0: "OUTPUT_MISSING"}


def test_no_archive_order_once_something_matched() -> None:
    archive = zipped("cat.jpg", "zzz.jpg", "yyy.jpg")
    assert outputs(archive, CAT, DOG, BIRD) == {
        0: b"cat.jpg",
        1: "OUTPUT_MISSING",
        2: "OUTPUT_MISSING",
    }


def test_directories_and_junk_are_skipped() -> None:
    archive = zipped(
        "0/",
        "0/cat.jpg",
        "__MACOSX/",
        "__MACOSX/0/._cat.jpg",
        ".DS_Store",
        "1/.DS_Store",
        "1/dog.png",
        "Thumbs.db",
        ".hidden/cat.jpg",
    )
    assert outputs(archive, CAT, DOG) == {0: b"0/cat.jpg", 1: b"1/dog.png"}


def test_junk_does_not_break_the_archive_order_round() -> None:
    archive = zipped("__MACOSX/._a.jpg", "a.jpg", "b.jpg", "results/")
    assert outputs(archive, CAT, DOG) == {0: b"a.jpg", 1: b"b.jpg"}


@pytest.mark.parametrize("image", [b"\xff\xd8\xff\xe0jpeg", b"\x89PNG\r\n\x1a\nrest"])
def test_a_single_image_order_may_get_the_image_itself(image: bytes) -> None:
    assert not is_zip(image)
    assert extract_outputs(image, [S(3, CAT)]) == {3: image}


def test_a_single_image_order_may_get_a_zip_with_any_name() -> None:
    assert outputs(zipped(("protected.jpg", b"img")), CAT) == {0: b"img"}


def test_a_bare_image_for_several_images_is_missing() -> None:
    found = outputs(b"\xff\xd8\xff\xe0jpeg", CAT, DOG)
    assert found == {0: "OUTPUT_MISSING", 1: "OUTPUT_MISSING"}


def test_a_corrupt_archive() -> None:
    assert outputs(b"PK\x03\x04" + b"\x00" * 40, CAT, DOG) == {
        0: "OUTPUT_UNREADABLE",
        1: "OUTPUT_UNREADABLE",
    }


def test_positions_need_not_start_at_zero() -> None:
    archive = zipped("cat.jpg", "dog.png")
    found = extract_outputs(archive, [S(5, DOG), S(2, CAT)])
    assert found == {5: b"dog.png", 2: b"cat.jpg"}
